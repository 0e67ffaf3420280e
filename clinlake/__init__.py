"""clinlake: Spanish clinical notes to a coded, de-identified OMOP research lake on Spark."""

__version__ = "0.1.0"
