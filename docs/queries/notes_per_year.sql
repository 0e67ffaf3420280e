-- Notes per year: notes, patients, and notes with at least one concept asserted present.
SELECT year(d.note_date) AS year,
       count(*) AS notes,
       count(DISTINCT d.person_id) AS patients,
       count(DISTINCT CASE WHEN n.note_id IS NOT NULL THEN d.note_id END) AS notes_with_concepts
FROM omop.note_deid d
LEFT JOIN (SELECT DISTINCT note_id FROM omop.note_nlp WHERE term_exists = 'Y') n ON n.note_id = d.note_id
GROUP BY year(d.note_date)
ORDER BY year
