-- Cohort count: patients with a mention asserted present (term_exists = 'Y') of ICD-10-CM E11
-- "Type 2 diabetes mellitus" or any of its descendants in the vocabulary hierarchy (concept_ancestor).
WITH t2dm AS (
  SELECT c.vocabulary_id, c.concept_code
  FROM omop.concept a
  JOIN omop.concept_ancestor ca ON ca.ancestor_concept_id = a.concept_id
  JOIN omop.concept c ON c.concept_id = ca.descendant_concept_id
  WHERE a.vocabulary_id = 'ICD10CM' AND a.concept_code = 'E11'
)
SELECT count(DISTINCT d.person_id) AS patients,
       count(DISTINCT n.note_id) AS notes
FROM omop.note_nlp n
JOIN t2dm t ON t.vocabulary_id = n.vocabulary_id AND t.concept_code = n.concept_code
JOIN omop.note_deid d ON d.note_id = n.note_id
WHERE n.term_exists = 'Y'
