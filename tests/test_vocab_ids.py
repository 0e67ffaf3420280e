"""Local concept ids: inside OMOP's local range, deterministic, collision-free over the full vocabularies."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from clinlake.vocab import ids
from clinlake.vocab.ids import (
    BLOCK_SIZE,
    INT32_MAX,
    LOCAL_CONCEPT_BASE,
    VOCABULARY_BLOCKS,
    assign_concept_ids,
    block_base,
)
from clinlake.vocab.loaders import parse_icd10cm_xml, read_code_list


def _check_block(vocabulary_id: str, mapping: dict[str, int]) -> None:
    """All ids distinct, > 2e9, inside the vocabulary's block and a 32-bit INTEGER."""
    values = list(mapping.values())
    assert len(set(values)) == len(values)
    lo = block_base(vocabulary_id)
    assert all(lo < v < lo + BLOCK_SIZE and LOCAL_CONCEPT_BASE < v <= INT32_MAX for v in values)


def test_blocks_are_disjoint_and_fit_int32():
    bases = sorted(block_base(v) for v in VOCABULARY_BLOCKS)
    assert len(set(bases)) == len(bases)
    assert bases[0] >= LOCAL_CONCEPT_BASE and bases[-1] + BLOCK_SIZE - 1 <= INT32_MAX


def test_unknown_vocabulary_has_no_block():
    with pytest.raises(KeyError):
        block_base("SNOMED")


def test_ids_do_not_depend_on_input_order_or_duplicates():
    codes = [f"C{i:05d}" for i in range(3000)]
    shuffled = codes[:] + codes[:100]
    random.Random(7).shuffle(shuffled)
    assert assign_concept_ids("ICD10CM", codes) == assign_concept_ids("ICD10CM", shuffled)


def test_same_code_gets_different_ids_in_different_vocabularies():
    a = assign_concept_ids("ICD10CM", ["A00"])["A00"]
    b = assign_concept_ids("CIE10ES-WHO", ["A00"])["A00"]
    assert a != b and abs(a - b) >= BLOCK_SIZE - ids.PRIMARY_SIZE


def test_collisions_are_resolved_into_the_overflow_region(monkeypatch):
    monkeypatch.setattr(ids, "PRIMARY_SIZE", 50)  # force many collisions
    codes = [f"X{i}" for i in range(400)]
    mapping = assign_concept_ids("ICDO3", codes)
    _check_block("ICDO3", mapping)
    base = block_base("ICDO3")
    overflow = [c for c, v in mapping.items() if v - base >= ids.OVERFLOW_START]
    assert len(overflow) == 400 - 50
    # the winner of each primary slot is the smallest code that hashes there
    winners = {}
    for c in sorted(codes):
        winners.setdefault(ids.primary_offset("ICDO3", c), c)
    assert {mapping[c] - base for c in winners.values()} == set(winners)


@pytest.fixture(scope="module")
def full_vocab(shared_dir: Path) -> Path:
    return shared_dir / "vocab"


def test_no_collision_over_full_icd10cm(full_vocab):
    xml = full_vocab / "icd10cm" / "icd10c-tabular-April-1-2026.xml"
    records = parse_icd10cm_xml(xml, read_code_list(full_vocab / "icd10cm" / "code-list-April-2026.txt"))
    codes = [r["concept_code"] for r in records]
    assert len(codes) == len(set(codes)) > 95_000
    _check_block("ICD10CM", assign_concept_ids("ICD10CM", codes))


def test_no_collision_over_full_icd10pcs_with_prefixes(full_vocab):
    lines = (full_vocab / "icd10pcs" / "icd10pcs-codes-2024.txt").read_text(encoding="utf-8").splitlines()
    codes = {line.split()[0] for line in lines if line.strip()}
    codes |= {c[:n] for c in list(codes) for n in (3, 4)}
    assert len(codes) > 78_000
    _check_block("ICD10PCS", assign_concept_ids("ICD10PCS", codes))


@pytest.mark.parametrize(("vocabulary_id", "pattern"), [("ICD9CM", "CMS32_DESC_LONG_DX.txt"), ("ICD9Proc", "CMS32_DESC_LONG_SG.txt")])
def test_no_collision_over_full_icd9(full_vocab, vocabulary_id, pattern):
    raw = (full_vocab / "icd9cm" / pattern).read_bytes().decode("latin-1").splitlines()
    codes = {line.split()[0] for line in raw if line.strip()}
    assert len(codes) > 3000
    _check_block(vocabulary_id, assign_concept_ids(vocabulary_id, codes))
