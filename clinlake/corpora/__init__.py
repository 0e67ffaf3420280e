"""Corpus readers: brat standoff, CodiEsp TSVs, CoNLL BIO, and their Spark DataFrame views."""
