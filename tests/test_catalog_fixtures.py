"""A small lake in the shapes of clinlake/omop.py, shared by the catalog, SQL, export, notebook and query tests.

Written directly with Spark (seconds) instead of running the job chain (minutes): these tests are about
reading a lake by name, not about producing one. Rows are generated in Python from a seeded RNG with dates
relative to today, and kept in `SmallLake.rows`, so tests compute expected answers independently of SQL.
No tests here; import `small_lake` (the builder caches per process, so importing it into several modules
still builds one lake). The lead may move the fixture into conftest.py.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

NLP_SYSTEM_V1 = "ner-gazetteer-es@1"
TITLES = ("Informe de alta", "Evolución", "Urgencias")
# (vocabulary, code, concept_id, name, label)
CODES = [
    ("ICD10CM", "E11.9", 1001, "Diabetes mellitus tipo 2 sin complicaciones", "DIAGNOSTICO"),
    ("ICD10CM", "E10.9", 1002, "Diabetes mellitus tipo 1 sin complicaciones", "DIAGNOSTICO"),
    ("ICD10CM", "I10", 1003, "Hipertensión esencial", "DIAGNOSTICO"),
    ("ICD10CM", "J18.9", 1004, "Neumonía no especificada", "DIAGNOSTICO"),
    ("ICD10PCS", "0DTJ4ZZ", 2001, "Resección de apéndice, endoscópica", "PROCEDIMIENTO"),
    ("ICDO3", "8140/3", 3001, "Adenocarcinoma, SAI", "MORFOLOGIA_NEOPLASIA"),
]
PARENTS = [("ICD10CM", "E11", 1000, "Diabetes mellitus tipo 2"), ("ICD10CM", "E10", 999, "Diabetes mellitus tipo 1")]
PHI_NAME = "Juan Pérez García"  # the "original" PHI that must never leave the lake


@dataclass
class SmallLake:
    """Where the lake is, its config, and the rows written (by table) for computing expectations."""

    root: Path
    cfg: Any
    rows: dict[str, list[dict]] = field(default_factory=dict)
    note_nlp_versions: list[int] = field(default_factory=list)


_CACHE: dict[str, SmallLake] = {}


def make_rows(today: dt.date, seed: int = 7) -> dict[str, list[dict]]:
    """Plain-Python rows for every table (seeded; dates relative to `today`)."""
    rng = random.Random(seed)
    persons = [{"person_id": 500 + i, "gender_concept_id": rng.choice([8507, 8532]),
                "year_of_birth": rng.randint(1935, 2005), "month_of_birth": None, "day_of_birth": None,
                "birth_datetime": None, "race_concept_id": 0, "ethnicity_concept_id": 0,
                "location_id": None, "provider_id": None, "care_site_id": None,
                "person_source_value": None, "gender_source_value": None, "gender_source_concept_id": 0,
                "race_source_value": None, "race_source_concept_id": 0, "ethnicity_source_value": None,
                "ethnicity_source_concept_id": 0} for i in range(8)]
    notes, deid, nlp, codes, phi = [], [], [], [], []
    for i in range(16):
        note_id = 1000 + i
        person = persons[i % len(persons)]["person_id"]
        days_ago = rng.choice([10, 40, 120, 200, 300, 500, 800, 1200])
        date = today - dt.timedelta(days=days_ago)
        title = TITLES[i % len(TITLES)]
        body = f"Paciente valorado en {title.lower()}. Refiere antecedentes relevantes."
        text, text_deid = f"Nombre: {PHI_NAME}. {body}", f"Nombre: [NOMBRE]. {body}"
        base = {"note_id": note_id, "person_id": person, "note_date": date,
                "note_datetime": dt.datetime.combine(date, dt.time(9, 30)), "note_type_concept_id": 32817,
                "note_class_concept_id": 0, "note_title": title, "encoding_concept_id": 32678,
                "language_concept_id": 4182511, "provider_id": None, "visit_occurrence_id": None,
                "visit_detail_id": None, "note_source_value": f"doc-{note_id}", "note_event_id": None,
                "note_event_field_concept_id": None, "ingest_run_id": "run-ingest", "ingested_at": None}
        notes.append({**base, "note_text": text, "text_sha256": hashlib.sha256(text.encode()).hexdigest()})
        deid.append({**base, "note_text": text_deid, "text_sha256": hashlib.sha256(text_deid.encode()).hexdigest()})
        phi.append({"note_id": note_id, "start": 8, "end": 8 + len(PHI_NAME), "new_start": 8, "new_end": 16,
                    "phi_type": "NOMBRE_SUJETO_ASISTENCIA", "replacement": "[NOMBRE]", "detector": "rules",
                    "original_text": PHI_NAME})
        for k in range(rng.randint(1, 4)):
            vocab, code, cid, name, label = rng.choice(CODES)
            negated = rng.random() < 0.3
            certainty = rng.choice(["certain", "certain", "probable", "possible"])
            start = 20 + 10 * k
            variant = name.split()[0].lower()
            present = not negated and certainty != "possible"
            nlp.append({
                "note_nlp_id": note_id * 10 + k, "note_id": note_id, "section_concept_id": 0,
                "snippet": f"... {variant} ...", "offset": f"{start}-{start + len(variant)}",
                "lexical_variant": variant, "note_nlp_concept_id": cid, "note_nlp_source_concept_id": cid,
                "nlp_system": NLP_SYSTEM_V1, "nlp_date": today, "nlp_datetime": None,
                "term_exists": "Y" if present else "N", "term_temporal": None,
                "term_modifiers": f"negated={str(negated).lower()},certainty={certainty}",
                "offset_start": start, "offset_end": start + len(variant), "label": label,
                "vocabulary_id": vocab, "concept_code": code, "score": round(rng.uniform(0.5, 1.0), 3),
                "negated": negated, "certainty": certainty, "experiencer": "patient", "temporality": "current",
                "negation_trigger": "no" if negated else None, "certainty_trigger": None,
                "experiencer_trigger": None, "temporality_trigger": None,
                "note_text_sha256": deid[-1]["text_sha256"],
            })
    for r in nlp:
        if not any(c["note_id"] == r["note_id"] and c["concept_code"] == r["concept_code"] for c in codes):
            codes.append({"note_id": r["note_id"], "vocabulary_id": r["vocabulary_id"],
                          "concept_code": r["concept_code"], "concept_id": r["note_nlp_concept_id"],
                          "rank": 1 + sum(c["note_id"] == r["note_id"] for c in codes), "score": r["score"],
                          "nlp_system": NLP_SYSTEM_V1})
    concept = [{"concept_id": cid, "concept_name": name, "domain_id": "Condition", "vocabulary_id": vocab,
                "concept_class_id": "Code", "standard_concept": None, "concept_code": code,
                "valid_start_date": dt.date(1970, 1, 1), "valid_end_date": dt.date(2099, 12, 31),
                "invalid_reason": None, "vocabulary_version": "test"}
               for vocab, code, cid, name, *_ in CODES + [(*p, None) for p in PARENTS]]
    synonym = [{"concept_id": c["concept_id"], "concept_synonym_name": c["concept_name"].lower(),
                "language_concept_id": 4182511, "vocabulary_version": "test"} for c in concept]
    relationship = [{"concept_id_1": 1001, "concept_id_2": 1000, "relationship_id": "Is a",
                     "valid_start_date": None, "valid_end_date": None, "invalid_reason": None,
                     "vocabulary_version": "test"}]
    ancestor = [{"ancestor_concept_id": c["concept_id"], "descendant_concept_id": c["concept_id"],
                 "min_levels_of_separation": 0, "max_levels_of_separation": 0} for c in concept]
    ancestor += [{"ancestor_concept_id": 1000, "descendant_concept_id": 1001, "min_levels_of_separation": 1,
                  "max_levels_of_separation": 1},
                 {"ancestor_concept_id": 999, "descendant_concept_id": 1002, "min_levels_of_separation": 1,
                  "max_levels_of_separation": 1}]
    gazetteer = [{"mention": name.lower(), "label": label, "vocabulary_id": vocab, "concept_code": code,
                  "count": 1, "source": "test"} for vocab, code, _, name, label in CODES]
    quarantine = [{"note_id": 9999, "reason": "empty_text", "row_json": f'{{"text": "", "name": "{PHI_NAME}"}}',
                   "job": "ingest_notes", "run_id": "run-ingest"}]
    return {"person": persons, "note": notes, "note_deid": deid, "note_nlp": nlp, "note_code": codes,
            "concept": concept, "concept_synonym": synonym, "concept_relationship": relationship,
            "concept_ancestor": ancestor, "gazetteer": gazetteer, "phi_span": phi, "note_quarantine": quarantine}


def _schema(table: str, rows: list[dict]):
    """Spark schema: the OMOP shape from clinlake/omop.py where there is one, else inferred."""
    from pyspark.sql.types import LongType, StringType, StructField, StructType, TimestampType

    from clinlake import omop

    note_like = StructType(omop.NOTE.fields + [StructField("text_sha256", StringType()),
                                               StructField("ingest_run_id", StringType()),
                                               StructField("ingested_at", TimestampType())])
    shapes = {"note": note_like, "note_deid": note_like, "note_nlp": omop.NOTE_NLP, "concept": omop.CONCEPT,
              "concept_synonym": omop.CONCEPT_SYNONYM, "concept_relationship": omop.CONCEPT_RELATIONSHIP,
              "concept_ancestor": omop.CONCEPT_ANCESTOR}
    if table in shapes:
        return shapes[table]
    if table == "person":  # OMOP PERSON (CDM 5.4), ids as long
        from pyspark.sql.types import IntegerType

        ints = {"gender_concept_id", "year_of_birth", "month_of_birth", "day_of_birth", "race_concept_id",
                "ethnicity_concept_id", "gender_source_concept_id", "race_source_concept_id",
                "ethnicity_source_concept_id"}
        return StructType([StructField(k, LongType() if k.endswith("_id") and k not in ints else
                                       IntegerType() if k in ints else
                                       TimestampType() if k == "birth_datetime" else StringType())
                           for k in rows[0]])
    return None


def build_small_lake(spark, root: Path) -> SmallLake:
    """Write every table as Delta under root (note_nlp in two commits with job metadata); cached per root."""
    key = str(root)
    if key in _CACHE:
        return _CACHE[key]
    from clinlake import delta
    from clinlake.config import load_config

    cfg = load_config("test", [f"mlflow.dir={root / 'mlruns'}"], lake=str(root / "lake"))
    rows = make_rows(dt.date.today())
    lake = SmallLake(root=root / "lake", cfg=cfg, rows=rows)
    for table, data in rows.items():
        df = spark.createDataFrame(data, _schema(table, data)) if _schema(table, data) else spark.createDataFrame(data)
        path = str(lake.root / table)
        if table != "note_nlp":
            df.coalesce(1).write.format("delta").save(path)
            continue
        # Two commits, as two extract_concepts runs would leave them: history and time travel have something to show.
        first_notes = sorted({r["note_id"] for r in data})[:8]
        with delta.commit_metadata(spark, job="extract_concepts", run_id="run-1", models=NLP_SYSTEM_V1):
            df.filter(df.note_id.isin(first_notes)).coalesce(1).write.format("delta").save(path)
        with delta.commit_metadata(spark, job="extract_concepts", run_id="run-2", models=NLP_SYSTEM_V1):
            df.filter(~df.note_id.isin(first_notes)).coalesce(1).write.format("delta").mode("append").save(path)
        lake.note_nlp_versions = [0, 1]
    _CACHE[key] = lake
    return lake


@pytest.fixture(scope="session")
def small_lake(spark, tmp_path_factory) -> SmallLake:
    """The shared small lake (built once per test session)."""
    if _CACHE:
        return next(iter(_CACHE.values()))
    return build_small_lake(spark, tmp_path_factory.mktemp("small_lake"))
