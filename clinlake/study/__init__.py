"""Federated studies: definition (definition.py), cohort query (cohort.py, Spark), published tables and
suppression (tables.py, suppression.py), package and audit log (package.py), network merge (merge.py),
synthetic site lakes for tests and demos (synthetic.py). See docs/federated.md."""
