"""In-domain Word2Vec embeddings and NerDL recognisers (de-identification, diagnoses/procedures, morphology, drugs)."""
