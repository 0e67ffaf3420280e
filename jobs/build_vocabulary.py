"""Job build_vocabulary: configured vocabulary sources -> Delta concept, concept_synonym, concept_relationship,
concept_ancestor and gazetteer (OMOP shape, with vocabulary version). Skips when sources and config are unchanged."""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run as a plain script from a checkout

from omegaconf import DictConfig  # noqa: E402
from pyspark.sql import DataFrame, SparkSession  # noqa: E402
from pyspark.sql import functions as F  # noqa: E402

from clinlake import catalog, delta, tracking  # noqa: E402
from clinlake.config import lake_path, path_of, require_path, to_dict  # noqa: E402
from clinlake.cli import base_parser, run_job  # noqa: E402
from clinlake.errors import UserError  # noqa: E402

log = logging.getLogger("clinlake.build_vocabulary")
TABLES = ("concept", "concept_synonym", "concept_relationship", "concept_ancestor")


def fingerprint(cfg: DictConfig) -> str:
    """sha256 over the vocabulary config and the size+mtime of every source file (cheap change detection)."""
    h = hashlib.sha256(json.dumps(to_dict(cfg)["vocabulary"], sort_keys=True).encode())
    for src in (cfg.vocabulary.sources or {}).values():
        for key in ("path", "gem_path", "code_list"):
            if src.get(key):
                p = Path(path_of(cfg, src[key]))
                files = sorted(p.rglob("*")) if p.is_dir() else [p]
                for f in files:
                    if f.is_file():
                        st = f.stat()
                        h.update(f"{f}:{st.st_size}:{int(st.st_mtime)}".encode())
    return h.hexdigest()


def load_sources(spark: SparkSession, cfg: DictConfig) -> tuple[dict[str, list[DataFrame]], DataFrame | None]:
    """Call each configured loader; returns the OMOP parts per table and the gazetteer (if configured)."""
    from clinlake.vocab import gazetteer as gz
    from clinlake.vocab import loaders as ld

    parts: dict[str, list[DataFrame]] = {t: [] for t in TABLES}

    def add(tables: dict[str, DataFrame]) -> None:
        for name, df in tables.items():
            parts[name].append(df.cache())  # each part is read by several writes and counts

    sources = cfg.vocabulary.sources or {}
    icd10cm_concept = None
    # ICD-10-CM first: the WHO Spanish names attach to its concepts as synonyms.
    order = sorted(sources, key=lambda n: n != "icd10cm")
    for name in order:
        src = sources[name]
        if name in ("gazetteer", "corrections", "gem"):
            continue
        path = require_path(path_of(cfg, src.path), f"vocabulary source '{name}' not found: {path_of(cfg, src.path)}")
        version = str(src.get("version") or cfg.vocabulary.version)
        log.info("loading %s from %s", name, path)
        if name == "icd10cm":
            tables = ld.load_icd10cm(spark, path, version)
            add(tables)
            icd10cm_concept = parts["concept"][-1]
        elif name == "icd10pcs":
            add(ld.load_icd10pcs(spark, path, version))
        elif name == "icd9cm":
            add(ld.load_icd9cm(spark, path, version))
        elif name == "cie10_who_es":
            add(ld.load_cie10_who_es(spark, path, version, icd10cm_concept=icd10cm_concept))
        elif name == "icdo3":
            add(ld.load_icdo3(spark, path, version))
        elif name == "athena":
            add(ld.load_athena(spark, path, version))
        else:
            raise UserError(f"unknown vocabulary source '{name}' in vocabulary.sources")
    if not parts["concept"]:
        raise UserError("no vocabulary source configured (vocabulary.sources)")
    concept = _union(parts["concept"])
    if "gem" in sources:
        add(ld.load_gem(spark, path_of(cfg, sources.gem.path), str(sources.gem.get("version") or ""), concept))
    gazetteer = None
    if "gazetteer" in sources:
        gpath = path_of(cfg, sources.gazetteer.path)
        require_path(gpath, f"gazetteer not found: {gpath}")
        gazetteer = gz.read_gazetteer(spark, gpath)
        if "corrections" in sources and Path(path_of(cfg, sources.corrections.path)).exists():
            gazetteer = gz.apply_corrections(gazetteer, gz.load_corrections(spark, path_of(cfg, sources.corrections.path)))
        parts["concept_synonym"].append(
            gz.gazetteer_synonyms(gazetteer, concept, str(sources.gazetteer.get("version") or cfg.vocabulary.version)))
    return parts, gazetteer


def _union(frames: list[DataFrame]) -> DataFrame:
    out = frames[0]
    for f in frames[1:]:
        out = out.unionByName(f)
    return out


def run(spark: SparkSession, cfg: DictConfig, args: argparse.Namespace) -> dict:
    """Load every source, then overwrite the vocabulary tables atomically (one Delta commit per table)."""
    fp = fingerprint(cfg)
    concept_path = lake_path(cfg, "concept")
    if delta.exists(spark, concept_path) and not getattr(args, "force", False):
        from delta.tables import DeltaTable

        meta = DeltaTable.forPath(spark, concept_path).history(1).select("userMetadata").first()[0] or "{}"
        if json.loads(meta).get("fingerprint") == fp:
            counts = {t: spark.read.format("delta").load(lake_path(cfg, t)).count() for t in TABLES}
            return {"skipped": "sources and configuration unchanged", **counts}
    with tracking.job_run(cfg, "build_vocabulary", {"vocabulary_version": cfg.vocabulary.version,
                                                    "sources": ",".join(cfg.vocabulary.sources or {})}) as mrun:
        import mlflow

        parts, gazetteer = load_sources(spark, cfg)
        counts = {}
        with delta.commit_metadata(spark, job="build_vocabulary", run_id=mrun.info.run_id, fingerprint=fp,
                                   vocabulary_version=str(cfg.vocabulary.version)):
            for table in TABLES:
                frames = parts[table]
                if not frames:
                    continue
                df = _union(frames)
                keys = {"concept": ["concept_id"], "concept_synonym": ["concept_id", "concept_synonym_name"],
                        "concept_relationship": ["concept_id_1", "concept_id_2", "relationship_id"],
                        "concept_ancestor": ["ancestor_concept_id", "descendant_concept_id"]}[table]
                df = df.dropDuplicates(keys)
                df.write.format("delta").mode("overwrite").option("overwriteSchema", "true").save(lake_path(cfg, table))
                counts[table] = spark.read.format("delta").load(lake_path(cfg, table)).count()
            if gazetteer is not None:
                gazetteer.write.format("delta").mode("overwrite").option("overwriteSchema", "true") \
                    .save(lake_path(cfg, "gazetteer"))
                counts["gazetteer"] = spark.read.format("delta").load(lake_path(cfg, "gazetteer")).count()
        per_vocab = {r["vocabulary_id"]: r["n"] for r in spark.read.format("delta").load(concept_path)
                     .groupBy("vocabulary_id").agg(F.count("*").alias("n")).collect()}
        mlflow.log_metrics({f"rows_{k}": float(v) for k, v in counts.items()})
        for table in counts:
            catalog.register(spark, cfg, table)
        return {**counts, "concepts_per_vocabulary": per_vocab, "fingerprint": fp[:12]}


def main(argv: list[str] | None = None) -> None:
    """CLI entry point."""
    parser = base_parser(__doc__)
    parser.add_argument("--force", action="store_true", help="rebuild even when sources are unchanged")
    run_job("build_vocabulary", parser.parse_args(argv), run)


if __name__ == "__main__":
    main()
