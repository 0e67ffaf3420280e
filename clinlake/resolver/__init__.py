"""Trained terminology resolver: a searchable index (gazetteer mentions + vocabulary synonyms, char 3-grams) and a
Spark ML ranker over its candidates, versioned together in MLflow as `resolver-es` (docs/resolution.md)."""
