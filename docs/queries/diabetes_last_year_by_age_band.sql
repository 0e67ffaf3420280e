-- Patients with a non-negated diabetes mention (ICD-10-CM E08-E13, about the patient) in a note of the
-- last 365 days, by age band today. Needs omop.person (year_of_birth) from the site's OMOP CDM.
WITH diabetes AS (
  SELECT DISTINCT d.person_id
  FROM omop.note_nlp n
  JOIN omop.note_deid d ON d.note_id = n.note_id
  WHERE n.vocabulary_id = 'ICD10CM'
    AND substr(n.concept_code, 1, 3) IN ('E08', 'E09', 'E10', 'E11', 'E13')
    AND NOT n.negated
    AND n.experiencer = 'patient'
    AND d.note_date >= date_sub(current_date(), 365)
)
SELECT CASE WHEN year(current_date()) - p.year_of_birth < 40 THEN '00-39'
            WHEN year(current_date()) - p.year_of_birth < 65 THEN '40-64'
            ELSE '65+' END AS age_band,
       count(*) AS patients
FROM diabetes x
JOIN omop.person p ON p.person_id = x.person_id
GROUP BY 1
ORDER BY 1
