"""Synthetic lake generator: gold PHI spans point at the text, valid DNI letters, determinism, partitioned output."""

from __future__ import annotations

import statistics
from pathlib import Path

import pytest

from tests.script_modules import load_script

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def gen():
    return load_script("make_synthetic_lake")


@pytest.fixture(scope="module")
def parts(gen):
    return gen.phrase_bank(), gen.phi_pools(7)


def test_phrase_bank_is_the_samples_language_without_phi(gen, parts):
    bank, pools = parts
    assert len(bank) > 200
    sample = "\n".join(p.read_text(encoding="utf-8") for p in (ROOT / "sample/corpora/meddocan").glob("*.txt"))
    assert all(s in sample for s in bank[:50])
    # gold PHI strings of the sample never survive into the bank
    ann = [line.split("\t")[2] for p in (ROOT / "sample/corpora/meddocan").glob("*.ann")
           for line in p.read_text(encoding="utf-8").splitlines() if line.startswith("T")]
    long_phi = {a for a in ann if len(a) > 8}
    assert not any(a in s for s in bank for a in long_phi)


def test_gold_spans_point_at_their_text_and_dni_letters_are_valid(gen, parts):
    from stdnum.es import dni

    bank, pools = parts
    labels, lengths = set(), []
    for nid in range(1, 301):
        note, spans = gen.make_note(7, nid, 25, bank, pools)
        text = note["note_text"]
        lengths.append(len(text.split()))
        for s, e, label, surface in spans:
            assert text[s:e] == surface
            labels.add(label)
            if label == "ID_SUJETO_ASISTENCIA" and surface[-1].isalpha():
                assert dni.is_valid(surface)
        assert [s for s, *_ in spans] == sorted(s for s, *_ in spans)
    assert {"NOMBRE_SUJETO_ASISTENCIA", "FECHAS", "ID_SUJETO_ASISTENCIA", "CALLE", "NUMERO_TELEFONO",
            "HOSPITAL", "TERRITORIO"} <= labels
    assert min(lengths) >= 50 and max(lengths) <= 3300
    assert 350 <= statistics.mean(lengths) <= 700


def test_same_person_same_identity_and_notes_over_years(gen, parts):
    bank, pools = parts
    by_person: dict[int, list] = {}
    for nid in range(1, 401):
        note, spans = gen.make_note(7, nid, 20, bank, pools)
        dni = next(t for _, _, lab, t in spans if lab == "ID_SUJETO_ASISTENCIA" and t[-1].isalpha())
        by_person.setdefault(note["person_id"], []).append((note["note_year"], dni))
    assert len(by_person) == 20
    assert all(len({d for _, d in v}) == 1 for v in by_person.values())
    assert sum(len({y for y, _ in v}) > 1 for v in by_person.values()) >= 15


def test_deterministic_and_seed_sensitive(gen, parts):
    bank, pools = parts
    a = gen.make_note(7, 42, 10, bank, pools)
    assert a == gen.make_note(7, 42, 10, bank, pools)
    assert a[0]["note_text"] != gen.make_note(8, 42, 10, bank, pools)[0]["note_text"]
    assert gen.phi_pools(7).first == pools.first


def test_spark_lake_is_partitioned_deterministic_and_has_a_huge_note(spark, gen, tmp_path):
    from pyspark.sql import functions as F

    out1, out2 = str(tmp_path / "a"), str(tmp_path / "b")
    gen.write_lake(gen.generate(spark, 60, seed=3, partitions=3, huge_notes=1, huge_chars=200_000), out1)
    gen.write_lake(gen.generate(spark, 60, seed=3, partitions=2, huge_notes=1, huge_chars=200_000), out2)
    assert any(p.name.startswith("note_year=") for p in (tmp_path / "a" / "notes").iterdir())
    n1 = spark.read.parquet(f"{out1}/notes")
    n2 = spark.read.parquet(f"{out2}/notes")
    assert n1.count() == 61 and n1.select("note_id").distinct().count() == 61
    # same seed, different partitioning: identical rows
    assert n1.exceptAll(n2).count() == 0
    assert n1.filter(F.length("note_text") >= 200_000).count() == 1
    gold = spark.read.parquet(f"{out1}/phi_gold")
    bad = (gold.join(n1.select("note_id", "note_text"), "note_id")
           .filter(F.expr("substring(note_text, start + 1, `end` - start) <> text")))
    assert gold.count() > 61 * 10 and bad.count() == 0
    assert {r[0] for r in n1.select(F.year("note_date")).distinct().collect()} == \
           {r[0] for r in n1.select("note_year").distinct().collect()}
