-- Negation and uncertainty rates by note type (note_title): how often a mention is negated, or asserted
-- with less than full certainty (certainty 'probable' or 'possible').
SELECT d.note_title,
       count(*) AS mentions,
       count(DISTINCT n.note_id) AS notes,
       round(avg(CASE WHEN n.negated THEN 1 ELSE 0 END), 3) AS negated_rate,
       round(avg(CASE WHEN n.certainty <> 'certain' THEN 1 ELSE 0 END), 3) AS uncertain_rate
FROM omop.note_nlp n
JOIN omop.note_deid d ON d.note_id = n.note_id
GROUP BY d.note_title
ORDER BY mentions DESC, d.note_title
