"""A small synthetic site lake for federated-study tests and demos (no real patient data, deterministic by seed).

Tables: note_deid (NOTE + text_sha256), note_nlp (NOTE_NLP of clinlake.omop), person (OMOP PERSON) and a
hand-made ICD10CM/ICD10PCS-like vocabulary (concept + concept_ancestor with chapters and sections, named as
the build_vocabulary job names them, e.g. chapter 'I00-I99'). Sites differ in size and prevalence so some
strata fall below 5. Ids are large and site-specific so a leak is easy to spot by searching output files.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import random
from typing import Any

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql.types import IntegerType, LongType, StringType, StructField, StructType, TimestampType

from clinlake import omop

PERSON = StructType(
    [
        StructField("person_id", LongType(), False),
        StructField("gender_concept_id", IntegerType(), False),
        StructField("year_of_birth", IntegerType(), False),
        StructField("month_of_birth", IntegerType(), True),
        StructField("day_of_birth", IntegerType(), True),
        StructField("birth_datetime", TimestampType(), True),
        StructField("race_concept_id", IntegerType(), False),
        StructField("ethnicity_concept_id", IntegerType(), False),
        StructField("location_id", LongType(), True),
        StructField("provider_id", LongType(), True),
        StructField("care_site_id", LongType(), True),
        StructField("person_source_value", StringType(), True),
        StructField("gender_source_value", StringType(), True),
        StructField("gender_source_concept_id", IntegerType(), True),
        StructField("race_source_value", StringType(), True),
        StructField("race_source_concept_id", IntegerType(), True),
        StructField("ethnicity_source_value", StringType(), True),
        StructField("ethnicity_source_concept_id", IntegerType(), True),
    ]
)
NOTE_DEID = StructType(omop.NOTE.fields + [StructField("text_sha256", StringType(), True)])

# (code, name, class, parent code or None, Spanish mention); chapters and sections as build_vocabulary names them
ICD10CM = [
    ("E00-E89", "Endocrine, nutritional and metabolic diseases (E00-E89)", "ICD10 Chapter", None, None),
    ("E08-E13", "Diabetes mellitus (E08-E13)", "ICD10 SubChapter", "E00-E89", None),
    ("E11", "Type 2 diabetes mellitus", "3-char nonbill code", "E08-E13", None),
    ("E11.9", "Type 2 diabetes mellitus without complications", "4-char billing code", "E11", "diabetes mellitus tipo 2"),
    ("E11.65", "Type 2 diabetes mellitus with hyperglycemia", "5-char billing code", "E11", "diabetes tipo 2 con hiperglucemia"),
    ("E65-E68", "Overweight, obesity and other hyperalimentation (E65-E68)", "ICD10 SubChapter", "E00-E89", None),
    ("E66.9", "Obesity, unspecified", "4-char billing code", "E65-E68", "obesidad"),
    ("E70-E88", "Metabolic disorders (E70-E88)", "ICD10 SubChapter", "E00-E89", None),
    ("E78.5", "Hyperlipidemia, unspecified", "4-char billing code", "E70-E88", "hiperlipidemia"),
    ("I00-I99", "Diseases of the circulatory system (I00-I99)", "ICD10 Chapter", None, None),
    ("I10-I1A", "Hypertensive diseases (I10-I1A)", "ICD10 SubChapter", "I00-I99", None),
    ("I10", "Essential (primary) hypertension", "3-char billing code", "I10-I1A", "hipertensión arterial"),
    ("I20-I25", "Ischemic heart diseases (I20-I25)", "ICD10 SubChapter", "I00-I99", None),
    ("I25.10", "Atherosclerotic heart disease of native coronary artery without angina pectoris", "5-char billing code",
     "I20-I25", "cardiopatía isquémica"),
    ("I30-I5A", "Other forms of heart disease (I30-I5A)", "ICD10 SubChapter", "I00-I99", None),
    ("I48.91", "Unspecified atrial fibrillation", "5-char billing code", "I30-I5A", "fibrilación auricular"),
    ("I50.9", "Heart failure, unspecified", "4-char billing code", "I30-I5A", "insuficiencia cardiaca"),
    ("J00-J99", "Diseases of the respiratory system (J00-J99)", "ICD10 Chapter", None, None),
    ("J09-J18", "Influenza and pneumonia (J09-J18)", "ICD10 SubChapter", "J00-J99", None),
    ("J18.9", "Pneumonia, unspecified organism", "4-char billing code", "J09-J18", "neumonía"),
    ("J40-J4A", "Chronic lower respiratory diseases (J40-J4A)", "ICD10 SubChapter", "J00-J99", None),
    ("J44.9", "Chronic obstructive pulmonary disease, unspecified", "4-char billing code", "J40-J4A", "EPOC"),
    ("J45.909", "Unspecified asthma, uncomplicated", "6-char billing code", "J40-J4A", "asma"),
    ("N00-N99", "Diseases of the genitourinary system (N00-N99)", "ICD10 Chapter", None, None),
    ("N17-N19", "Acute kidney failure and chronic kidney disease (N17-N19)", "ICD10 SubChapter", "N00-N99", None),
    ("N18.9", "Chronic kidney disease, unspecified", "4-char billing code", "N17-N19", "enfermedad renal crónica"),
]
ICD10PCS = [
    ("0DTJ4ZZ", "Resection of Appendix, Percutaneous Endoscopic Approach", "ICD10PCS", None, "apendicectomía laparoscópica"),
    ("5A1955Z", "Respiratory Ventilation, Greater than 96 Consecutive Hours", "ICD10PCS", None, "ventilación mecánica"),
]
TITLES = [("Informe de alta", 40), ("Informe de urgencias", 25), ("Consulta externa", 25), ("Evolución", 9)]
RARE_TITLE = "Informe Dr. Gil Ramos"  # a free-text title naming someone: must never be published as a label
FIRST, LAST = dt.date(2016, 1, 1), dt.date(2023, 12, 31)
PERSON_BASE, NOTE_BASE = 7_310_000_000, 8_420_000_000  # + site * 10_000_000: distinctive, site-disjoint


def concept_id(vocabulary_id: str, code: str) -> int:
    """Stable id in the local (> 2,000,000,000) range; the sample is tiny, so a plain hash cannot collide here."""
    h = int(hashlib.sha256(f"{vocabulary_id}|{code}".encode()).hexdigest()[:12], 16)
    return 2_000_000_000 + h % 140_000_000


def vocabulary_rows() -> tuple[list[tuple], list[tuple]]:
    """CONCEPT and CONCEPT_ANCESTOR rows (with level-0 self rows, as Athena has) for the sample codes."""
    concepts, ancestors = [], []
    for vocab, rows in (("ICD10CM", ICD10CM), ("ICD10PCS", ICD10PCS)):
        parent = {code: par for code, _, _, par, _ in rows}
        for code, name, cls, _, _ in rows:
            cid = concept_id(vocab, code)
            domain = "Procedure" if vocab == "ICD10PCS" else "Condition"
            concepts.append((cid, name, domain, vocab, cls, None, code, dt.date(1970, 1, 1), dt.date(2099, 12, 31), None,
                             f"{vocab} (synthetic sample)"))
            ancestors.append((cid, cid, 0, 0))
            level, up = 1, parent[code]
            while up is not None:
                ancestors.append((concept_id(vocab, up), cid, level, level))
                level, up = level + 1, parent[up]
    return concepts, ancestors


def mention_codes() -> list[tuple[str, str, str]]:
    """(vocabulary_id, code, Spanish mention) a note can contain."""
    return [("ICD10CM", c, m) for c, _, _, _, m in ICD10CM if m] + [("ICD10PCS", c, m) for c, _, _, _, m in ICD10PCS]


SENTENCES = {  # assertion -> template; the columns note_nlp gets for it
    "present": ("Presenta {t} en seguimiento.", dict(term_exists="Y", negated=False, experiencer="patient",
                                                    temporality="current", certainty="certain")),
    "negated": ("Se descarta {t}.", dict(term_exists="N", negated=True, experiencer="patient", temporality="current",
                                          certainty="certain")),
    "family": ("Madre con {t}.", dict(term_exists="Y", negated=False, experiencer="family", temporality="current",
                                       certainty="certain")),
    "historical": ("Antecedente de {t} ya resuelto.", dict(term_exists="Y", negated=False, experiencer="patient",
                                                           temporality="historical", certainty="certain")),
}


def site_rows(site: int, n_persons: int, seed: int = 0) -> dict[str, list[tuple]]:
    """All rows of one site lake as tuples in the schemas' column order (pure Python, deterministic)."""
    rng = random.Random(f"{seed}-{site}")
    codes = mention_codes()
    # site-specific prevalence: each site favours a different part of the list
    weights = [1.0 + 4.0 * ((i + site) % 5 == 0) + rng.random() for i in range(len(codes))]
    nlp_system = f"ner-gazetteer-es@{1 + (site % 2)}"
    persons, notes, nlp = [], [], []
    now = dt.datetime(2024, 1, 15, 10, 0, 0)
    for p in range(n_persons):
        pid = PERSON_BASE + site * 10_000_000 + rng.randrange(1_000_000) * 10 + p % 10
        while any(r[0] == pid for r in persons):
            pid += 10
        gender = rng.choices([8507, 8532, 0], weights=[48, 49, 3])[0]
        yob = rng.randint(1925, 2012)
        persons.append((pid, gender, yob, None, None, None, 0, 0, None, None, None, None,
                        {8507: "H", 8532: "M"}.get(gender), 0, None, 0, None, 0))
        for _ in range(rng.choice([1, 1, 2, 2, 3, 4])):
            nid = NOTE_BASE + site * 10_000_000 + len(notes) * 7 + 3
            date = FIRST + dt.timedelta(days=rng.randrange((LAST - FIRST).days + 1))
            title = RARE_TITLE if rng.random() < 0.01 else rng.choices([t for t, _ in TITLES], [w for _, w in TITLES])[0]
            text = "Paciente valorado en consulta."
            picks = rng.choices(range(len(codes)), weights=weights, k=rng.choice([1, 2, 2, 3, 4]))
            spans = []
            for i in dict.fromkeys(picks):  # one mention per code and note
                kind = rng.choices(list(SENTENCES), weights=[70, 12, 8, 10])[0]
                template, cols = SENTENCES[kind]
                before, after = template.split("{t}")
                start = len(text) + 1 + len(before)
                text += " " + before + codes[i][2] + after
                spans.append((i, start, start + len(codes[i][2]), cols))
            sha = hashlib.sha256(text.encode("utf-8")).hexdigest()
            notes.append((nid, pid, date, dt.datetime.combine(date, dt.time(9, 30)), omop.NOTE_TYPE_EHR, 0, title, text,
                          omop.ENCODING_UTF8, omop.LANGUAGE_SPANISH, None, None, None, f"doc-{site}-{len(notes)}", None,
                          None, sha))
            for i, start, end, cols in spans:
                vocab, code, term = codes[i]
                snippet = " ".join(text[max(start - 60, 0): end + 60].split())
                label = "PROCEDIMIENTO" if vocab == "ICD10PCS" else "DIAGNOSTICO"
                modifiers = ",".join(f"{k}={str(v).lower()}" for k, v in cols.items() if k != "term_exists")
                nlp.append((nid * 100 + len(nlp) % 100, nid, 0, snippet, f"{start}-{end}", term, 0, concept_id(vocab, code),
                            nlp_system, now.date(), now, cols["term_exists"], None, modifiers,
                            start, end, label, vocab, code, 0.9, cols["negated"], cols["certainty"], cols["experiencer"],
                            cols["temporality"], None, None, None, None, sha, None, None))
    concepts, ancestors = vocabulary_rows()
    return {"person": persons, "note_deid": notes, "note_nlp": nlp, "concept": concepts, "concept_ancestor": ancestors}


SCHEMAS = {"person": PERSON, "note_deid": NOTE_DEID, "note_nlp": omop.NOTE_NLP, "concept": omop.CONCEPT,
           "concept_ancestor": omop.CONCEPT_ANCESTOR}


def site_frames(spark: SparkSession, site: int, n_persons: int, seed: int = 0,
                with_person: bool = True) -> dict[str, DataFrame]:
    """The site's tables as DataFrames (person left out when with_person is False, like the demo lake)."""
    rows = site_rows(site, n_persons, seed)
    return {name: spark.createDataFrame(r, SCHEMAS[name]) for name, r in rows.items()
            if with_person or name != "person"}


def write_site_lake(spark: SparkSession, lake: str, site: int, n_persons: int, seed: int = 0,
                    with_person: bool = True) -> dict[str, Any]:
    """Write the site's tables as Delta folders <lake>/<table>; returns row counts per table."""
    from pathlib import Path

    counts = {}
    for name, rows in site_rows(site, n_persons, seed).items():
        if name == "person" and not with_person:
            continue
        spark.createDataFrame(rows, SCHEMAS[name]).coalesce(1).write.format("delta").mode("overwrite").save(
            str(Path(lake) / name))
        counts[name] = len(rows)
    return counts
