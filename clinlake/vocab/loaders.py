"""Vocabulary loaders: standard source files -> OMOP CONCEPT / CONCEPT_SYNONYM / CONCEPT_RELATIONSHIP /
CONCEPT_ANCESTOR DataFrames in exactly the shapes of clinlake/omop.py (vocabulary_version filled).

Every loader is ``load_<source>(spark, path, version, ...) -> dict[str, DataFrame]`` with keys among
'concept', 'concept_synonym', 'concept_relationship', 'concept_ancestor'. ``path`` may be the source file
itself or a folder holding it (the repo sample keeps one folder per vocabulary). Big text sources are read
with Spark readers; the ICD-10-CM XML (17 MB) and the CANTEMIST brat files are parsed once on the driver,
at vocabulary build time only. Non-Athena concept ids come from clinlake.vocab.ids (> 2,000,000,000).
Choices (classes, domains, relationship names, GEM flags) are documented in docs/vocabulary.md.
"""

from __future__ import annotations

import csv
import io
import re
import tempfile
import xml.etree.ElementTree as ET
import zipfile
from datetime import date
from pathlib import Path

from pyspark.sql import Column, DataFrame, SparkSession, Window
from pyspark.sql import functions as F
from pyspark.sql.types import ArrayType, StringType, StructField, StructType

from clinlake.omop import (
    CONCEPT,
    CONCEPT_ANCESTOR,
    CONCEPT_RELATIONSHIP,
    CONCEPT_SYNONYM,
    LANGUAGE_ENGLISH,
    LANGUAGE_SPANISH,
)
from clinlake.vocab.ids import with_concept_ids

VALID_START = date(1970, 1, 1)  # OMOP convention when a source gives no validity dates
VALID_END = date(2099, 12, 31)
IS_A, SUBSUMES = "Is a", "Subsumes"
PCS_PREFIX_CLASS = "PCS prefix"  # Athena calls these 'ICD10PCS Hierarchy'
ATHENA_TABLES = {
    "concept": ("CONCEPT", CONCEPT),
    "concept_synonym": ("CONCEPT_SYNONYM", CONCEPT_SYNONYM),
    "concept_relationship": ("CONCEPT_RELATIONSHIP", CONCEPT_RELATIONSHIP),
    "concept_ancestor": ("CONCEPT_ANCESTOR", CONCEPT_ANCESTOR),
}
# Input of build_local_vocabulary: one row per code; ancestors nearest first, excluding the code itself.
RECORD = StructType(
    [
        StructField("concept_code", StringType(), False),
        StructField("concept_name", StringType(), True),
        StructField("domain_id", StringType(), True),
        StructField("concept_class_id", StringType(), True),
        StructField("ancestors", ArrayType(StringType()), True),
        StructField("synonyms", ArrayType(StringType()), True),
    ]
)


# ---------------------------------------------------------------- shared helpers


def conform(df: DataFrame, schema: StructType) -> DataFrame:
    """Select schema's columns in order with its types; rows with a null in a NOT NULL column are dropped.

    coalesce() with a typed literal makes Spark mark a column non-nullable and when() without otherwise()
    marks it nullable, so the result's schema *equals* the omop.py StructType, nullability included.
    """
    for f in schema.fields:
        if not f.nullable:
            df = df.filter(F.col(f.name).isNotNull())
    cols = []
    for f in schema.fields:
        c = F.col(f.name).cast(f.dataType)
        if not f.nullable:
            c = F.coalesce(c, F.lit(0 if f.dataType.typeName() in ("integer", "long") else "").cast(f.dataType))
        else:
            c = F.when(c.isNotNull(), c)  # a literal would otherwise be marked NOT NULL
        cols.append(c.alias(f.name))
    return df.select(*cols)


def resolve_file(path: str | Path, *patterns: str) -> Path:
    """path itself when it is a file, else the single file under it matching the first pattern that hits."""
    p = Path(path)
    if p.is_file():
        return p
    if not p.is_dir():
        raise FileNotFoundError(f"vocabulary source not found: {p}")
    for pattern in patterns:
        hits = sorted(h for h in p.glob(pattern) if h.is_file())
        if len(hits) == 1:
            return hits[0]
        if len(hits) > 1:
            raise ValueError(f"several files match {pattern!r} under {p}: {[h.name for h in hits]}")
    raise FileNotFoundError(f"no file matching {patterns} under {p}")


def _read_lines(spark: SparkSession, path: Path, encoding: str = "UTF-8") -> DataFrame:
    """One string column 'value' per line; the CSV reader is used because it honours an encoding."""
    return (
        spark.read.option("sep", "\u0001").option("quote", "\u0000").option("encoding", encoding)
        .option("header", False).schema("value string").csv(str(path))
    )


def dotted_icd10(code: str) -> str:
    """A000 -> A00.0 (no change for 3-character codes, ranges or codes already dotted)."""
    c = code.strip().upper()
    if "." in c or "-" in c or len(c) <= 3:
        return c
    return f"{c[:3]}.{c[3:]}"


def _dotted_icd10_col(code: Column) -> Column:
    """Spark version of dotted_icd10."""
    c = F.upper(F.trim(code))
    plain = c.rlike(r"^[A-Z0-9]{4,}$")
    return F.when(plain, F.concat(F.substring(c, 1, 3), F.lit("."), c.substr(F.lit(4), F.length(c)))).otherwise(c)


def _dotted_icd9_col(code: Column, procedures: bool) -> Column:
    """CMS ICD-9 codes come without dots; OMOP/Athena keep them (diag 250.00, E code E812.0, proc 45.13)."""
    c = F.upper(F.trim(code))
    if procedures:
        return F.when(F.length(c) > 2, F.concat(c.substr(1, 2), F.lit("."), c.substr(F.lit(3), F.length(c)))).otherwise(c)
    head = F.when(c.startswith("E"), F.lit(4)).otherwise(F.lit(3))
    return F.when(
        F.length(c) > head,
        F.concat(c.substr(F.lit(1), head), F.lit("."), c.substr(head + 1, F.length(c))),
    ).otherwise(c)


def _lit_date(d: date) -> Column:
    return F.lit(d.isoformat()).cast("date")


def build_local_vocabulary(records: DataFrame, vocabulary_id: str, version: str,
                           synonym_language: int) -> dict[str, DataFrame]:
    """OMOP tables for one local vocabulary from RECORD-shaped rows (one per code).

    Synonyms include the concept name itself so the resolver can search concept_synonym alone.
    concept_ancestor has the self row (level 0) like Athena's, and one row per ancestor in the tree.
    """
    # cached: every output table reads it, and recomputing the id window per table is the slow part
    with_ids = with_concept_ids(records, vocabulary_id).cache()
    idmap = with_ids.select(F.col("concept_code").alias("_code"), F.col("concept_id").alias("_id"))
    v = F.lit(version)
    concept = conform(
        with_ids.select(
            "concept_id", "concept_name", "domain_id", F.lit(vocabulary_id).alias("vocabulary_id"),
            "concept_class_id", F.lit(None).cast("string").alias("standard_concept"), "concept_code",
            _lit_date(VALID_START).alias("valid_start_date"), _lit_date(VALID_END).alias("valid_end_date"),
            F.lit(None).cast("string").alias("invalid_reason"), v.alias("vocabulary_version"),
        ),
        CONCEPT,
    )
    names = F.filter(
        F.array_union(F.array(F.col("concept_name")), F.coalesce(F.col("synonyms"), F.array().cast("array<string>"))),
        lambda s: s.isNotNull() & (F.length(F.trim(s)) > 0),
    )
    synonym = conform(
        with_ids.select("concept_id", F.explode(names).alias("concept_synonym_name"))
        .select("concept_id", F.trim("concept_synonym_name").alias("concept_synonym_name"),
                F.lit(synonym_language).alias("language_concept_id"), v.alias("vocabulary_version"))
        .dropDuplicates(["concept_id", "concept_synonym_name"]),
        CONCEPT_SYNONYM,
    )
    parent = with_ids.select("concept_id", F.element_at("ancestors", 1).alias("_parent")).filter("_parent is not null")
    pairs = parent.join(idmap, F.col("_parent") == F.col("_code")).select(
        F.col("concept_id").alias("child"), F.col("_id").alias("parent"))
    relationship = relationships(pairs.select(F.col("child").alias("a"), F.col("parent").alias("b")), IS_A, SUBSUMES, version)
    anc = with_ids.select("concept_id", F.posexplode(F.coalesce("ancestors", F.array().cast("array<string>"))).alias("pos", "_anc"))
    anc = anc.join(idmap, F.col("_anc") == F.col("_code")).select(
        F.col("_id").alias("ancestor_concept_id"), F.col("concept_id").alias("descendant_concept_id"),
        (F.col("pos") + 1).alias("min_levels_of_separation"), (F.col("pos") + 1).alias("max_levels_of_separation"))
    self_rows = with_ids.select(F.col("concept_id").alias("ancestor_concept_id"), F.col("concept_id").alias("descendant_concept_id"),
                                F.lit(0).alias("min_levels_of_separation"), F.lit(0).alias("max_levels_of_separation"))
    ancestor = conform(anc.unionByName(self_rows), CONCEPT_ANCESTOR)
    return {"concept": concept, "concept_synonym": synonym, "concept_relationship": relationship,
            "concept_ancestor": ancestor}


def relationships(pairs: DataFrame, forward: str, reverse: str | None, version: str) -> DataFrame:
    """CONCEPT_RELATIONSHIP rows a -forward-> b (and b -reverse-> a when reverse is given) from columns a, b."""
    rows = pairs.select(F.col("a").alias("concept_id_1"), F.col("b").alias("concept_id_2"), F.lit(forward).alias("relationship_id"))
    if reverse:
        rows = rows.unionByName(pairs.select(F.col("b").alias("concept_id_1"), F.col("a").alias("concept_id_2"),
                                             F.lit(reverse).alias("relationship_id")))
    return conform(
        rows.select("*", _lit_date(VALID_START).alias("valid_start_date"), _lit_date(VALID_END).alias("valid_end_date"),
                    F.lit(None).cast("string").alias("invalid_reason"), F.lit(version).alias("vocabulary_version")),
        CONCEPT_RELATIONSHIP,
    )


def _records_df(spark: SparkSession, rows: list[dict]) -> DataFrame:
    """RECORD-shaped DataFrame from driver-side rows (plain tuples: pandas->Spark breaks on numpy 2 here)."""
    names = [f.name for f in RECORD.fields]
    return spark.createDataFrame([tuple(r[n] for n in names) for r in rows], RECORD)


# ---------------------------------------------------------------- Athena bundle


def _sniff_sep(header_line: str) -> str:
    """Athena exports are tab-separated, some samples (Eunomia) comma-separated: pick the one in the header."""
    return "\t" if header_line.count("\t") >= header_line.count(",") and "\t" in header_line else ","


def _athena_folder(path: str | Path, extract_dir: str | Path | None) -> Path:
    """Folder with the Athena CSVs; a zip is extracted (vocabulary tables only) to extract_dir or a temp dir.

    The extracted files are kept: Spark reads lazily, so they must outlive this call.
    """
    p = Path(path)
    if p.is_dir():
        return p
    if not zipfile.is_zipfile(p):
        raise ValueError(f"{p} is neither a folder nor a zip of Athena CSVs")
    out = Path(extract_dir) if extract_dir else Path(tempfile.mkdtemp(prefix="clinlake-athena-"))
    out.mkdir(parents=True, exist_ok=True)
    wanted = {name for name, _ in ATHENA_TABLES.values()} | {"VOCABULARY"}
    with zipfile.ZipFile(p) as zf:
        for info in zf.infolist():
            member = Path(info.filename)
            if member.stem.upper() in wanted and "__MACOSX" not in member.parts and not info.is_dir():
                with zf.open(info) as src, open(out / f"{member.stem.upper()}{member.suffix.lower()}", "wb") as dst:
                    while chunk := src.read(1 << 20):
                        dst.write(chunk)
    return out


def _athena_file(folder: Path, table: str) -> Path | None:
    """CONCEPT.csv (any case, also .txt/.tsv) in the folder, or None."""
    for f in folder.iterdir():
        if f.is_file() and f.stem.upper() == table and f.suffix.lower() in (".csv", ".tsv", ".txt"):
            return f
    return None


def _athena_date(c: Column) -> Column:
    """Athena writes 20200101, other exports 2020-01-01: accept both."""
    s = F.trim(c)
    return (F.when(s.rlike(r"^\d{8}$"), F.to_date(s, "yyyyMMdd"))
            .when(s.rlike(r"^\d{4}-\d{2}-\d{2}"), F.to_date(F.substring(s, 1, 10), "yyyy-MM-dd")))


def athena_version(folder: Path) -> str | None:
    """The bundle's version: VOCABULARY.csv row 'None' (Athena puts the release there), else None."""
    f = _athena_file(folder, "VOCABULARY")
    if f is None:
        return None
    with open(f, encoding="utf-8", newline="") as fh:
        head = fh.readline()
        reader = csv.DictReader(io.StringIO(head + fh.read(1 << 20)), delimiter=_sniff_sep(head))
        for row in reader:
            if row.get("vocabulary_id") == "None":
                return row.get("vocabulary_version")
    return None


def load_athena(spark: SparkSession, path: str | Path, version: str | None = None,
                extract_dir: str | Path | None = None) -> dict[str, DataFrame]:
    """Athena vocabulary export (folder or zip; tab- or comma-separated, sniffed per file) -> OMOP tables.

    Only the tables present are returned. vocabulary_version is `version`, else the bundle's own
    (VOCABULARY.csv, vocabulary_id 'None'), else 'unknown'.
    """
    folder = _athena_folder(path, extract_dir)
    ver = version or athena_version(folder) or "unknown"
    out: dict[str, DataFrame] = {}
    for key, (name, schema) in ATHENA_TABLES.items():
        f = _athena_file(folder, name)
        if f is None:
            continue
        with open(f, encoding="utf-8", newline="") as fh:
            header = fh.readline().rstrip("\r\n")
        sep = _sniff_sep(header)
        reader = spark.read.option("header", True).option("sep", sep).option("inferSchema", False)
        # Athena's tab export has no quoting at all (names contain bare quotes); CSV samples quote with ".
        reader = reader.option("quote", "\u0000") if sep == "\t" else reader.option("quote", '"').option("escape", '"')
        raw = reader.csv(str(f))
        raw = raw.toDF(*[c.strip().lower() for c in raw.columns])
        cols = []
        for fld in schema.fields:
            if fld.name == "vocabulary_version":
                cols.append(F.lit(ver).alias(fld.name))
            elif fld.name not in raw.columns:
                cols.append(F.lit(None).cast(fld.dataType).alias(fld.name))
            elif fld.dataType.typeName() == "date":
                cols.append(_athena_date(F.col(fld.name)).alias(fld.name))
            elif fld.dataType.typeName() == "string":
                # empty strings (Eunomia writes "" for a NULL standard_concept) are NULL in OMOP
                cols.append(F.when(F.col(fld.name) != "", F.col(fld.name)).alias(fld.name))
            else:
                cols.append(F.trim(F.col(fld.name)).cast(fld.dataType).alias(fld.name))
        out[key] = conform(raw.select(*cols), schema)
    if not out:
        raise FileNotFoundError(f"no Athena vocabulary tables (CONCEPT.csv, ...) in {path}")
    return out


# ---------------------------------------------------------------- ICD-10-CM tabular XML

_CHAPTER_RANGE = re.compile(r"\(([A-Z0-9]{3}-[A-Z0-9]{3})\)\s*$")


def _icd10cm_class(code: str, billable: bool) -> str:
    """Athena's ICD10CM concept classes: '<n>-char billing code' / '<n>-char nonbill code'."""
    n = len(code.replace(".", ""))
    return f"{n}-char {'billing' if billable else 'nonbill'} code"


def _icd10cm_domain(code: str) -> str:
    """Domain heuristic without Athena's maps: external causes (V-Y) and factors (Z) are Observation."""
    return "Observation" if code[:1] in "VWXYZ" else "Condition"


def parse_icd10cm_xml(path: str | Path, valid_codes: set[str] | None = None) -> list[dict]:
    """Parse the ICD-10-CM tabular XML with iterparse into RECORD dicts (pure Python, driver side).

    Emits chapters (code = the range in the title, class 'ICD10 Chapter'), sections ('ICD10 SubChapter';
    a one-code section 'B99' becomes 'B99-B99' so it cannot clash with the category), every <diag>, and the
    7th-character codes the XML only describes (sevenChrDef, inherited down the tree; a leaf shorter than
    6 characters is padded with the placeholder X, e.g. S02.0 + A -> S02.0XXA, and the padded stem S02.0XX
    is emitted too because CodiEsp's gold codes use it). Synonyms are the
    inclusionTerm and includes notes of diag elements. Codes keep the dot, upper case (N44.8).
    valid_codes (CMS code list, no dots) drops generated 7th-character codes the XML's notes forbid
    (e.g. S06.308D: 7th characters 7/8 only with A); listed codes are never dropped.
    """
    records: list[dict] = []
    tags: list[str] = []  # element tag stack
    frames: list[dict] = []  # chapter/section/diag stack
    for event, elem in ET.iterparse(str(path), events=("start", "end")):
        tag = elem.tag
        if event == "start":
            tags.append(tag)
            if tag in ("chapter", "section", "diag"):
                code = elem.get("id") if tag == "section" else None
                if code and "-" not in code:
                    code = f"{code}-{code}"
                frames.append({"kind": tag, "code": code, "name": None, "syn": [], "seven": None,
                               "children": 0, "chapter_no": None})
                if len(frames) > 1:
                    frames[-2]["children"] += tag == "diag"
            continue
        # end event
        tags.pop()
        parent_tag = tags[-1] if tags else None
        frame = frames[-1] if frames else None
        text = (elem.text or "").strip()
        if frame is not None and parent_tag == frame["kind"]:
            if tag == "name":
                if frame["kind"] == "diag":
                    frame["code"] = text.upper()
                else:
                    frame["chapter_no"] = text
            elif tag == "desc":
                frame["name"] = text
                if frame["kind"] == "chapter":
                    m = _CHAPTER_RANGE.search(text)
                    frame["code"] = m.group(1) if m else f"Chapter {frame['chapter_no']}"
        elif tag == "note" and len(tags) >= 2 and tags[-1] in ("inclusionTerm", "includes") and tags[-2] == "diag":
            if text:
                frame["syn"].append(text)
        elif tag == "extension" and parent_tag == "sevenChrDef" and frame is not None:
            frame["seven"] = frame["seven"] or {}
            frame["seven"][elem.get("char")] = text
        if tag in ("chapter", "section", "diag"):
            done = frames.pop()
            ancestors = [f["code"] for f in reversed(frames) if f["code"]]
            code = done["code"]
            if done["kind"] == "chapter":
                cls, domain = "ICD10 Chapter", _icd10cm_domain(code.split("-")[0])
            elif done["kind"] == "section":
                cls, domain = "ICD10 SubChapter", _icd10cm_domain(code)
            else:
                cls, domain = _icd10cm_class(code, done["children"] == 0), _icd10cm_domain(code)
            seven = done["seven"] or next((f["seven"] for f in reversed(frames) if f["seven"]), None)
            if done["kind"] == "diag" and done["children"] == 0 and seven:
                cls = _icd10cm_class(code, False)  # needs a 7th character: not billable itself
                plain = code.replace(".", "").ljust(6, "X")
                parent = code
                stem = f"{plain[:3]}.{plain[3:]}"
                if stem != code:
                    # CodiEsp writes some codes without their 7th character but padded (S02.0XX): keep that
                    # stem as a non-billable concept between the leaf and its 7-character codes.
                    records.append({"concept_code": stem, "concept_name": done["name"], "domain_id": domain,
                                    "concept_class_id": _icd10cm_class(stem, False),
                                    "ancestors": [code, *ancestors], "synonyms": []})
                    parent = stem
                for char, ext in seven.items():
                    full = f"{plain[:3]}.{plain[3:]}{char}"
                    if valid_codes is not None and full.replace(".", "") not in valid_codes:
                        continue
                    records.append({"concept_code": full, "concept_name": f"{done['name']}, {ext}",
                                    "domain_id": domain, "concept_class_id": _icd10cm_class(full, True),
                                    "ancestors": [parent, *([code] if parent != code else []), *ancestors],
                                    "synonyms": []})
            records.append({"concept_code": code, "concept_name": done["name"], "domain_id": domain,
                            "concept_class_id": cls, "ancestors": ancestors,
                            "synonyms": done["syn"] if done["kind"] == "diag" else []})
            elem.clear()
    return records


def read_code_list(path: str | Path) -> set[str]:
    """CMS code list (one code per line, no dots; chapter numbers and ranges included) as a set."""
    with open(path, encoding="utf-8") as fh:
        return {line.split()[0].upper() for line in fh if line.strip()}


def load_icd10cm(spark: SparkSession, path: str | Path, version: str,
                 code_list: str | Path | None = None) -> dict[str, DataFrame]:
    """ICD-10-CM tabular XML (file or folder with *tabular*.xml) -> ICD10CM tables (English names/synonyms).

    code_list: the CMS code list of the same release; in folder mode a '*code-list*.txt' beside the XML
    is used when present. It only prunes generated 7th-character codes (see parse_icd10cm_xml).
    """
    f = resolve_file(path, "*tabular*.xml", "*.xml")
    if code_list is None and Path(path).is_dir():
        found = sorted(Path(path).glob("*code-list*.txt"))
        code_list = found[0] if len(found) == 1 else None
    valid = read_code_list(code_list) if code_list is not None else None
    return build_local_vocabulary(_records_df(spark, parse_icd10cm_xml(f, valid)), "ICD10CM", version, LANGUAGE_ENGLISH)


# ---------------------------------------------------------------- ICD-10-PCS

_CONNECTORS = r"(?:to|with|of|from|in|on|into|using|and|for|via|by|through)"


def _common_prefix_name(descs: Column) -> Column:
    """Longest common word prefix of an array of descriptions, minus trailing connectors and commas."""
    words = F.transform(descs, lambda d: F.split(d, " "))
    lcp = F.aggregate(
        words,
        F.element_at(words, 1),
        lambda acc, x: F.slice(
            acc, 1,
            F.when(
                F.array_position(F.zip_with(acc, x, lambda a, b: a.eqNullSafe(b)), False) == 0, F.size(acc)
            ).otherwise(F.array_position(F.zip_with(acc, x, lambda a, b: a.eqNullSafe(b)), False) - 1),
        ),
    )
    name = F.concat_ws(" ", lcp)
    name = F.regexp_replace(name, rf"(?:[ ,]+{_CONNECTORS})+[ ,]*$", "")
    return F.regexp_replace(name, r"[ ,]+$", "")


def load_icd10pcs(spark: SparkSession, path: str | Path, version: str) -> dict[str, DataFrame]:
    """ICD-10-PCS 'code description' text -> ICD10PCS tables, plus 3- and 4-character prefix concepts.

    CodiEsp's procedure gold codes are often truncated to 4 characters, so every 3- and 4-character prefix
    becomes a concept (class PCS_PREFIX_CLASS) whose name is the longest common word prefix of its
    codes' descriptions (e.g. 0DT6 'Resection of Stomach', 0DT 'Resection'), else their most frequent
    first word; tree: 3 -> 4 -> 7 characters (Subsumes).
    """
    f = resolve_file(path, "*pcs*codes*.txt", "*order*.txt", "*.txt")
    parts = F.regexp_extract(F.col("value"), r"^\s*(\S+)\s+(.*\S)\s*$", 1), F.regexp_extract(F.col("value"), r"^\s*(\S+)\s+(.*\S)\s*$", 2)
    codes = (_read_lines(spark, f).select(F.upper(parts[0]).alias("concept_code"), parts[1].alias("concept_name"))
             .filter(F.length("concept_code") == 7).dropDuplicates(["concept_code"]))
    empty = F.array().cast("array<string>")
    full = codes.select("concept_code", "concept_name", F.lit("Procedure").alias("domain_id"),
                        F.lit("ICD10PCS").alias("concept_class_id"),
                        F.array(F.substring("concept_code", 1, 4), F.substring("concept_code", 1, 3)).alias("ancestors"),
                        empty.alias("synonyms"))
    prefixes = []
    for n in (3, 4):
        prefix = F.substring("concept_code", 1, n).alias("concept_code")
        grouped = codes.groupBy(prefix).agg(F.sort_array(F.collect_list("concept_name")).alias("_descs"))
        # fallback when the descriptions share no leading word (249 prefixes, e.g. 8E0 'Robotic Assisted
        # ...' / 'Computer Assisted ...'): their most frequent first word, ties broken alphabetically
        first = codes.groupBy(prefix, F.split("concept_name", " ")[0].alias("_first")).count()
        first = first.withColumn("_r", F.row_number().over(
            Window.partitionBy("concept_code").orderBy(F.desc("count"), "_first"))).filter("_r = 1")
        grouped = grouped.join(first.select("concept_code", "_first"), "concept_code")
        name = _common_prefix_name(F.col("_descs"))
        prefixes.append(grouped.select(
            "concept_code", F.when(name != "", name).otherwise(F.col("_first")).alias("concept_name"),
            F.lit("Procedure").alias("domain_id"), F.lit(PCS_PREFIX_CLASS).alias("concept_class_id"),
            (F.array(F.substring("concept_code", 1, 3)) if n == 4 else empty).alias("ancestors"), empty.alias("synonyms")))
    records = full.unionByName(prefixes[0]).unionByName(prefixes[1])
    return build_local_vocabulary(records, "ICD10PCS", version, LANGUAGE_ENGLISH)


# ---------------------------------------------------------------- ICD-9-CM and GEMs


def _icd9_descriptions(spark: SparkSession, f: Path, encoding: str, name: str) -> DataFrame:
    """CMS 'code<spaces>description' lines -> (code, name) with the CMS code (no dot)."""
    rx = r"^\s*(\S+)\s+(.*\S)\s*$"
    return _read_lines(spark, f, encoding).select(
        F.upper(F.regexp_extract("value", rx, 1)).alias("_raw"), F.regexp_extract("value", rx, 2).alias(name)
    ).filter(F.col("_raw") != "")


def load_icd9cm(spark: SparkSession, path: str | Path, version: str, gem_path: str | Path | None = None,
                icd10cm_concept: DataFrame | None = None, encoding: str = "ISO-8859-1") -> dict[str, DataFrame]:
    """CMS ICD-9-CM v32 DX/SG long+short descriptions -> 'ICD9CM' and 'ICD9Proc' (codes dotted as in Athena).

    Name = long description; the short description is an English synonym. CMS ships these files in
    Latin-1 (e.g. Ménière). With gem_path and the ICD10CM concept table, the GEM rows are added to
    concept_relationship (see load_gem).
    """
    folder = Path(path)
    out: dict[str, list[DataFrame]] = {}
    for vocab, kind, dom, proc in (("ICD9CM", "DX", "Condition", False), ("ICD9Proc", "SG", "Procedure", True)):
        long_ = _icd9_descriptions(spark, resolve_file(folder, f"*LONG*{kind}*.txt"), encoding, "concept_name")
        short = _icd9_descriptions(spark, resolve_file(folder, f"*SHORT*{kind}*.txt"), encoding, "_short")
        joined = long_.join(short, "_raw", "full_outer").dropDuplicates(["_raw"])
        domain = dom if proc else F.when(F.col("_raw").rlike("^[VE]"), "Observation").otherwise(dom)
        records = joined.select(
            _dotted_icd9_col(F.col("_raw"), proc).alias("concept_code"),
            F.coalesce("concept_name", "_short").alias("concept_name"),
            (F.lit(domain) if isinstance(domain, str) else domain).alias("domain_id"),
            F.concat(F.length("_raw").cast("string"), F.lit("-dig billing code")).alias("concept_class_id"),
            F.array().cast("array<string>").alias("ancestors"),
            F.when(F.col("_short").isNotNull(), F.array("_short")).otherwise(F.array().cast("array<string>")).alias("synonyms"),
        )
        for key, df in build_local_vocabulary(records, vocab, version, LANGUAGE_ENGLISH).items():
            if key != "concept_ancestor":  # CMS lists billable codes only: no tree to take ancestors from
                out.setdefault(key, []).append(df)
    tables = {k: v[0].unionByName(v[1]) for k, v in out.items()}
    if gem_path is not None:
        if icd10cm_concept is None:
            raise ValueError("GEM rows need the ICD10CM concept table (icd10cm_concept)")
        gem = load_gem(spark, gem_path, version, icd10cm_concept.unionByName(tables["concept"]))
        tables["concept_relationship"] = tables["concept_relationship"].unionByName(gem["concept_relationship"])
    return tables


GEM_FLAG_NAMES = ("approximate", "no_map", "combination", "scenario", "choice_list")


def _gem_file(spark: SparkSession, f: Path) -> DataFrame:
    """One GEM file (CMS fixed text 'src tgt flags' or the CSV with a header) -> (source, target, flags)."""
    if f.suffix.lower() == ".csv":
        raw = spark.read.option("header", True).csv(str(f))
        return raw.select(F.col(raw.columns[0]).alias("source_code"), F.col(raw.columns[1]).alias("target_code"),
                          F.lpad(F.col("flags"), 5, "0").alias("flags"))
    rx = r"^\s*(\S+)\s+(\S+)\s+(\d+)\s*$"
    return _read_lines(spark, f).select(*(F.regexp_extract("value", rx, i).alias(n)
                                          for i, n in ((1, "source_code"), (2, "target_code"), (3, "flags"))))


def read_gem(spark: SparkSession, path: str | Path) -> DataFrame:
    """Both GEM directions with every flag: source/target vocabulary and dotted code, flags as ints."""
    folder = Path(path)
    parts = []
    for pattern, src, tgt in (("*10*to*9*", "ICD10CM", "ICD9CM"), ("*9*to*10*", "ICD9CM", "ICD10CM")):
        f = resolve_file(folder, pattern + ".csv", pattern + ".txt", pattern)
        g = _gem_file(spark, f)
        to_code = {"ICD10CM": _dotted_icd10_col, "ICD9CM": lambda c: _dotted_icd9_col(c, False)}
        parts.append(g.select(
            F.lit(src).alias("source_vocabulary_id"), to_code[src](F.col("source_code")).alias("source_code"),
            F.lit(tgt).alias("target_vocabulary_id"), to_code[tgt](F.col("target_code")).alias("target_code"),
            *(F.substring("flags", i + 1, 1).cast("int").alias(n) for i, n in enumerate(GEM_FLAG_NAMES)),
        ))
    return parts[0].unionByName(parts[1])


def gem_relationship_id(source_vocabulary: str, target_vocabulary: str, approximate: Column, combination: Column) -> Column:
    """'ICD10CM - ICD9CM eq' (exact), '... apx' (approximate), '... cmb' (part of a combination entry)."""
    prefix = f"{source_vocabulary} - {target_vocabulary} "
    kind = F.when(combination == 1, "cmb").when(approximate == 1, "apx").otherwise("eq")
    return F.concat(F.lit(prefix), kind)


def load_gem(spark: SparkSession, path: str | Path, version: str, concept: DataFrame) -> dict[str, DataFrame]:
    """GEM rows (both directions) -> concept_relationship between ICD10CM and ICD9CM concepts in `concept`.

    'No map' rows are dropped; rows whose codes are not in `concept` (retired codes) are dropped; scenario
    and choice-list flags only live in read_gem(). Each GEM is kept in its own direction: the backward
    GEM is a separate curation, not the reverse of the forward one.
    """
    gem = read_gem(spark, path).filter(F.col("no_map") == 0)
    ids = concept.select("vocabulary_id", "concept_code", "concept_id")
    s, t = ids.alias("s"), ids.alias("t")
    joined = (gem.join(s, (F.col("s.vocabulary_id") == F.col("source_vocabulary_id")) & (F.col("s.concept_code") == F.col("source_code")))
              .join(t, (F.col("t.vocabulary_id") == F.col("target_vocabulary_id")) & (F.col("t.concept_code") == F.col("target_code"))))
    rows = joined.select(
        F.col("s.concept_id").alias("concept_id_1"), F.col("t.concept_id").alias("concept_id_2"),
        F.when(F.col("source_vocabulary_id") == "ICD10CM", gem_relationship_id("ICD10CM", "ICD9CM", F.col("approximate"), F.col("combination")))
        .otherwise(gem_relationship_id("ICD9CM", "ICD10CM", F.col("approximate"), F.col("combination"))).alias("relationship_id"),
    ).dropDuplicates()
    rel = conform(rows.select("*", _lit_date(VALID_START).alias("valid_start_date"), _lit_date(VALID_END).alias("valid_end_date"),
                              F.lit(None).cast("string").alias("invalid_reason"), F.lit(version).alias("vocabulary_version")),
                  CONCEPT_RELATIONSHIP)
    return {"concept_relationship": rel}


# ---------------------------------------------------------------- WHO ICD-10 in Spanish


def load_cie10_who_es(spark: SparkSession, path: str | Path, version: str,
                      icd10cm_concept: DataFrame | None = None) -> dict[str, DataFrame]:
    """WHO ICD-10 Spanish CSV (code,code_0..code_4,description,level,source) -> Spanish synonyms.

    A code that exists in ICD10CM (same dotted code, or the same chapter/section range) gets its Spanish
    description as a synonym of that ICD10CM concept (language 4182511). Other codes (WHO-only, e.g. codes
    CM re-structured) become concepts of vocabulary 'CIE10ES-WHO' with an 'Is a' link to the parent code
    (code_0..code_4), looked up in ICD10CM first.
    """
    f = resolve_file(path, "cie-10.csv", "*.csv")
    raw = spark.read.option("header", True).option("quote", '"').option("escape", '"').csv(str(f))
    parent = F.coalesce(*(F.when(F.col(f"code_{i}") != "", F.col(f"code_{i}")) for i in range(4, -1, -1)))
    rows = raw.select(_dotted_icd10_col(F.col("code")).alias("concept_code"), F.trim("description").alias("concept_name"),
                      _dotted_icd10_col(parent).alias("_parent")).filter("concept_code is not null and concept_name != ''")
    rows = rows.dropDuplicates(["concept_code"])
    if icd10cm_concept is None:
        cm = spark.createDataFrame([], "concept_code string, concept_id int")
    else:
        cm = icd10cm_concept.filter(F.col("vocabulary_id") == "ICD10CM").select("concept_code", "concept_id")
    matched = rows.join(cm, "concept_code", "left_semi")
    own = rows.join(cm, "concept_code", "left_anti")
    records = own.select(
        "concept_code", "concept_name",
        F.when(F.substring("concept_code", 1, 1).isin("V", "W", "X", "Y", "Z"), "Observation").otherwise("Condition").alias("domain_id"),
        F.when(F.col("concept_code").contains("-"), "ICD10 SubChapter").otherwise(
            F.concat(F.length(F.regexp_replace("concept_code", r"\.", "")).cast("string"), F.lit("-char code"))).alias("concept_class_id"),
        F.array().cast("array<string>").alias("ancestors"), F.array().cast("array<string>").alias("synonyms"))
    tables = build_local_vocabulary(records, "CIE10ES-WHO", version, LANGUAGE_SPANISH)
    tables.pop("concept_ancestor")
    on_cm = matched.join(cm, "concept_code").select(
        "concept_id", F.col("concept_name").alias("concept_synonym_name"),
        F.lit(LANGUAGE_SPANISH).alias("language_concept_id"), F.lit(version).alias("vocabulary_version"))
    tables["concept_synonym"] = tables["concept_synonym"].unionByName(conform(on_cm, CONCEPT_SYNONYM))
    # WHO-only concepts hang under their WHO parent, which is usually an ICD10CM concept
    parents = cm.unionByName(tables["concept"].select("concept_code", "concept_id"))
    child = own.join(tables["concept"].select("concept_code", F.col("concept_id").alias("a")), "concept_code")
    pairs = child.join(parents.select(F.col("concept_code").alias("_parent"), F.col("concept_id").alias("b")), "_parent")
    tables["concept_relationship"] = relationships(pairs.select("a", "b"), IS_A, SUBSUMES, version)
    return tables


# ---------------------------------------------------------------- CIE-O-3.1 (ICD-O-3 Spanish)


def load_icdo3(spark: SparkSession, path: str | Path, version: str) -> dict[str, DataFrame]:
    """CIE-O-3.1 morphology JSONL (concept_id '8140/3', definition, aliases) -> 'ICDO3' tables, Spanish.

    Name = definition. The 'aliases' list of this file is one abbreviated name split at commas ('Ca
    indiferenciado', 'SAI - G4'), so its parts are joined back with a space into one synonym; a name with
    ', SAI' ('sin otra indicación') also gets a synonym without it. Codes with a 6th digit (grade,
    8140/31) are 'Is a' children of the 5-character code (8140/3) when it exists.
    """
    f = resolve_file(path, "*.jsonl", "*.json")
    raw = spark.read.json(str(f))
    code = F.trim(F.col("concept_id"))
    name = F.trim(F.col("definition"))
    alias = F.concat_ws(" ", F.transform(F.coalesce("aliases", F.array().cast("array<string>")), F.trim))
    no_sai = F.trim(F.regexp_replace(name, r"\s*,\s*SAI\b", ""))
    records = raw.select(
        code.alias("concept_code"), name.alias("concept_name"), F.lit("Observation").alias("domain_id"),
        F.lit("ICDO Histology").alias("concept_class_id"),
        F.when(F.length(code) == 7, F.array(F.substring(code, 1, 6))).otherwise(F.array().cast("array<string>")).alias("ancestors"),
        F.array_distinct(F.filter(F.array(alias, no_sai), lambda s: (s != "") & (s != name))).alias("synonyms"),
    ).filter("concept_code is not null").dropDuplicates(["concept_code"])
    tables = build_local_vocabulary(records, "ICDO3", version, LANGUAGE_SPANISH)
    return tables
