"""Job export_duckdb: the de-identified OMOP tables -> one DuckDB file or a Parquet folder for a laptop.

Allow-list only: note_deid (exported as `note`), note_nlp, note_code and the vocabulary. The original `note`,
`phi_span`, quarantine and every other operational table are never exported, whatever the lake holds.
Rows travel through the driver as Arrow batches of --batch-rows, a partition at a time, so a table never
has to fit in driver memory at once (and the export works the same when executors are on a cluster).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import os
import shutil
import sys
from pathlib import Path
from typing import Iterator

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run as a plain script from a checkout

import pyarrow as pa  # noqa: E402
from omegaconf import DictConfig  # noqa: E402
from pyspark.sql import DataFrame, SparkSession  # noqa: E402
from pyspark.sql import functions as F  # noqa: E402
from pyspark.sql import types as T  # noqa: E402

from clinlake import delta  # noqa: E402
from clinlake.cli import base_parser, run_job  # noqa: E402
from clinlake.config import lake_path  # noqa: E402
from clinlake.errors import UserError  # noqa: E402

log = logging.getLogger("clinlake.export_duckdb")

# lake table -> exported name. An allow-list on purpose: a new lake table is not exported until added here.
EXPORT_TABLES = {
    "note_deid": "note",
    "note_nlp": "note_nlp",
    "note_code": "note_code",
    "concept": "concept",
    "concept_synonym": "concept_synonym",
    "concept_relationship": "concept_relationship",
    "concept_ancestor": "concept_ancestor",
}
NEVER_EXPORTED = ("note", "phi_span", "note_quarantine")  # original text and PHI audit: restricted
REDACTED_COLUMNS = ("snippet", "lexical_variant")  # verbatim note text inside NOTE_NLP (OHDSI privacy guidance)
MANIFEST = "export_info"


def with_redacted_text(df: DataFrame) -> DataFrame:
    """Blank the NOTE_NLP columns that copy note text (snippet, lexical_variant) to ''."""
    for c in REDACTED_COLUMNS:
        if c in df.columns:
            df = df.withColumn(c, F.when(F.col(c).isNotNull(), F.lit("")))
    return df


def with_portable_types(df: DataFrame) -> DataFrame:
    """Timestamps as wall-clock (session time zone, NTZ) so Python and DuckDB never shift them by the host zone."""
    for f in df.schema.fields:
        if isinstance(f.dataType, T.TimestampType):
            df = df.withColumn(f.name, F.col(f.name).cast(T.TimestampNTZType()))
    return df


def arrow_schema(df: DataFrame) -> pa.Schema:
    """Arrow schema of a DataFrame (pyspark's own Spark -> Arrow type mapping)."""
    from pyspark.sql.pandas.types import to_arrow_schema

    return to_arrow_schema(df.schema)


def arrow_batches(df: DataFrame, batch_rows: int) -> Iterator[pa.RecordBatch]:
    """Arrow record batches of at most batch_rows, pulled one partition at a time via toLocalIterator."""
    schema = arrow_schema(df)
    names = df.columns
    buf: list = []
    for row in df.toLocalIterator(prefetchPartitions=False):
        buf.append(row)
        if len(buf) >= batch_rows:
            yield pa.RecordBatch.from_pylist([dict(zip(names, r)) for r in buf], schema=schema)
            buf = []
    if buf:
        yield pa.RecordBatch.from_pylist([dict(zip(names, r)) for r in buf], schema=schema)


def export_frames(spark: SparkSession, cfg: DictConfig, redact_text: bool, note_text: bool) -> dict:
    """Exported name -> (DataFrame at a pinned Delta version, lake table, version) for the tables present."""
    frames = {}
    for table, name in EXPORT_TABLES.items():
        path = lake_path(cfg, table)
        version = delta.version(spark, path)
        if version is None:
            log.info("%s not in the lake: not exported", table)
            continue
        df = spark.read.format("delta").option("versionAsOf", version).load(path)
        if table == "note_deid" and not note_text:
            df = df.drop("note_text")
        if table == "note_nlp" and redact_text:
            df = df.transform(with_redacted_text)
        frames[name] = (df.transform(with_portable_types), table, version)
    if not frames:
        raise UserError(f"no exportable table in the lake {lake_path(cfg, '')}: run the pipeline first")
    return frames


def manifest_rows(info: list[dict]) -> pa.Table:
    """The export_info table: what was exported from which Delta version, with which redactions."""
    return pa.Table.from_pylist(info)


def write_duckdb(frames: dict, out: Path, batch_rows: int, meta: dict) -> list[dict]:
    """Write every frame into one DuckDB file (atomically: built next to it, then renamed)."""
    import duckdb

    tmp = out.with_name(out.name + ".partial")
    tmp.unlink(missing_ok=True)
    info = []
    con = duckdb.connect(str(tmp))
    try:
        for name, (df, table, version) in frames.items():
            con.register("arrow_batch", pa.Table.from_batches([], schema=arrow_schema(df)))
            con.execute(f'CREATE TABLE "{name}" AS SELECT * FROM arrow_batch')
            n = 0
            for batch in arrow_batches(df, batch_rows):
                con.register("arrow_batch", pa.Table.from_batches([batch]))
                con.execute(f'INSERT INTO "{name}" SELECT * FROM arrow_batch')
                n += batch.num_rows
            con.unregister("arrow_batch")
            info.append({"table_name": name, "source_table": table, "delta_version": version, "rows": n, **meta})
        con.register("arrow_batch", manifest_rows(info))
        con.execute(f"CREATE TABLE {MANIFEST} AS SELECT * FROM arrow_batch")
        con.unregister("arrow_batch")
    finally:
        con.close()
    os.replace(tmp, out)
    return info


def write_parquet(frames: dict, out: Path, batch_rows: int, meta: dict) -> list[dict]:
    """Write one Parquet file per table into a folder, plus export_info.json."""
    import pyarrow.parquet as pq

    tmp = out.with_name(out.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    info = []
    for name, (df, table, version) in frames.items():
        n = 0
        with pq.ParquetWriter(str(tmp / f"{name}.parquet"), arrow_schema(df)) as writer:
            for batch in arrow_batches(df, batch_rows):
                writer.write_batch(batch)
                n += batch.num_rows
        info.append({"table_name": name, "source_table": table, "delta_version": version, "rows": n, **meta})
    (tmp / f"{MANIFEST}.json").write_text(json.dumps(info, indent=2, default=str))
    if out.exists():
        shutil.rmtree(out)
    os.replace(tmp, out)
    return info


def check_out(out: Path, fmt: str, overwrite: bool) -> None:
    """Refuse to clobber anything that is not an earlier export (or without --overwrite)."""
    if not out.exists():
        return
    if not overwrite:
        raise UserError(f"{out} exists: pass --overwrite to replace it")
    if fmt == "parquet" and not (out.is_dir() and (out / f"{MANIFEST}.json").exists()):
        raise UserError(f"{out} is not an earlier Parquet export (no {MANIFEST}.json): not replacing it")
    if fmt == "duckdb" and out.is_dir():
        raise UserError(f"{out} is a folder, not a DuckDB file")


def run(spark: SparkSession, cfg: DictConfig, args: argparse.Namespace) -> dict:
    """Pin Delta versions, stream each allowed table to DuckDB / Parquet, record what was exported."""
    out = Path(args.out).resolve()
    fmt = args.format or ("duckdb" if out.suffix in (".duckdb", ".db") else "parquet")
    check_out(out, fmt, args.overwrite)
    out.parent.mkdir(parents=True, exist_ok=True)
    frames = export_frames(spark, cfg, args.redact_text, not args.no_note_text)
    meta = {"redact_text": bool(args.redact_text), "note_text": not args.no_note_text,
            "exported_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
            "lake": lake_path(cfg, "").rstrip("/")}
    writer = write_duckdb if fmt == "duckdb" else write_parquet
    info = writer(frames, out, max(1, int(args.batch_rows)), meta)
    return {"out": str(out), "format": fmt, "tables": {i["table_name"]: i["rows"] for i in info},
            "redact_text": bool(args.redact_text), "note_text": not args.no_note_text}


def main(argv: list[str] | None = None) -> None:
    """CLI entry point."""
    parser = base_parser(__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, help="FILE.duckdb, or a folder for Parquet")
    parser.add_argument("--format", choices=["duckdb", "parquet"], help="default: duckdb for *.duckdb/*.db, else parquet")
    parser.add_argument("--redact-text", action="store_true", help="blank note_nlp.snippet and lexical_variant")
    parser.add_argument("--no-note-text", action="store_true", help="drop note.note_text from the export")
    parser.add_argument("--batch-rows", type=int, default=50_000, help="rows per Arrow batch (driver memory bound)")
    parser.add_argument("--overwrite", action="store_true", help="replace an earlier export at --out")
    run_job("export_duckdb", parser.parse_args(argv), run)


if __name__ == "__main__":
    main()
