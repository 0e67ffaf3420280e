-- Top 5 codes per vocabulary: mentions, notes, and mentions asserted present (term_exists = 'Y').
WITH counts AS (
  SELECT n.vocabulary_id, n.concept_code, c.concept_name,
         count(*) AS mentions,
         count(DISTINCT n.note_id) AS notes,
         sum(CASE WHEN n.term_exists = 'Y' THEN 1 ELSE 0 END) AS present
  FROM omop.note_nlp n
  LEFT JOIN omop.concept c
    ON c.vocabulary_id = n.vocabulary_id AND c.concept_code = n.concept_code
  WHERE n.concept_code IS NOT NULL
  GROUP BY n.vocabulary_id, n.concept_code, c.concept_name
)
SELECT vocabulary_id, rank, concept_code, concept_name, mentions, notes, present
FROM (
  SELECT *, row_number() OVER (PARTITION BY vocabulary_id ORDER BY mentions DESC, concept_code) AS rank
  FROM counts
)
WHERE rank <= 5
ORDER BY vocabulary_id, rank
