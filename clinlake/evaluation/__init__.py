"""The evaluation job: submission parsing, deployed-pipeline seam, scoring and reporting."""
