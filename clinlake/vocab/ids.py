"""Deterministic OMOP concept ids for vocabularies that do not come from Athena.

OHDSI convention (Themis, "Custom concepts"): local concepts use concept_id > 2,000,000,000 so they can
never clash with Athena's. CONCEPT.concept_id is a 32-bit INTEGER, so the local range is
2,000,000,001 .. 2,147,483,647. We cut it into fixed 10-million blocks, one per vocabulary:

    concept_id = 2_000_000_000 + block * 10_000_000 + offset
    offset in 1 .. 9_000_000          primary slot: 1 + H(vocabulary_id, code, 0) mod 9_000_000
    offset in 9_000_001 .. 9_999_999  overflow slot for the rare primary collision (see below)

H is the first 60 bits of SHA-256 over the UTF-8 string ``"{vocabulary_id}|{code}|{salt}"``, so the id
depends on nothing but the vocabulary, the code and the set of codes (no run order, seed or machine).
A 32-bit range cannot hold a collision-free hash of ~100k codes, so collisions are resolved
deterministically: codes sharing a primary slot are sorted (binary string order), the first keeps the
slot, the others are placed, in code order, at the first free overflow offset
``9_000_001 + H(vocabulary_id, code, salt) mod 999_999`` for salt = 1, 2, ... (about 0.5 % of ICD-10-CM).
Consequence, documented in docs/vocabulary.md: a code's id changes between vocabulary versions only if a
newly added code takes its primary slot by sorting first; always join on (vocabulary_id, concept_code)
to carry ids across versions, never recompute them from the code alone.

Blocks are assigned once and never renumbered; add new vocabularies at the next free block.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Iterable

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

LOCAL_CONCEPT_BASE = 2_000_000_000
BLOCK_SIZE = 10_000_000
PRIMARY_SIZE = 9_000_000
OVERFLOW_START = PRIMARY_SIZE + 1
OVERFLOW_SIZE = BLOCK_SIZE - OVERFLOW_START  # 999_999
INT32_MAX = 2**31 - 1
MAX_BLOCKS = (INT32_MAX - LOCAL_CONCEPT_BASE) // BLOCK_SIZE  # 14 whole blocks fit in INTEGER

# Fixed block per local vocabulary (append only). 6..13 are free for site-local vocabularies.
VOCABULARY_BLOCKS: dict[str, int] = {
    "ICD10CM": 0,
    "ICD10PCS": 1,
    "ICD9CM": 2,
    "ICD9Proc": 3,
    "CIE10ES-WHO": 4,
    "ICDO3": 5,
}

_HEX_DIGITS = 15  # 60 bits: fits a Spark LONG after conv(), and is plenty for mod 9e6


def block_base(vocabulary_id: str) -> int:
    """First id of the vocabulary's block (offset 0, itself never used)."""
    if vocabulary_id not in VOCABULARY_BLOCKS:
        raise KeyError(f"no local concept id block for vocabulary {vocabulary_id!r}; add one to VOCABULARY_BLOCKS")
    block = VOCABULARY_BLOCKS[vocabulary_id]
    if not 0 <= block < MAX_BLOCKS:
        raise ValueError(f"block {block} outside 0..{MAX_BLOCKS - 1}")
    return LOCAL_CONCEPT_BASE + block * BLOCK_SIZE


def code_hash(vocabulary_id: str, code: str, salt: int = 0) -> int:
    """60-bit SHA-256 prefix of "vocabulary|code|salt" (same value as code_hash_col in Spark)."""
    digest = hashlib.sha256(f"{vocabulary_id}|{code}|{salt}".encode("utf-8")).hexdigest()
    return int(digest[:_HEX_DIGITS], 16)


def primary_offset(vocabulary_id: str, code: str) -> int:
    """Primary slot of a code inside its block, 1 .. PRIMARY_SIZE."""
    return 1 + code_hash(vocabulary_id, code) % PRIMARY_SIZE


def _overflow_ids(vocabulary_id: str, codes: Iterable[str]) -> dict[str, int]:
    """Overflow ids for the codes that lost their primary slot, placed in sorted code order."""
    base = block_base(vocabulary_id)
    used: set[int] = set()
    out: dict[str, int] = {}
    for code in sorted(codes):
        salt = 1
        while True:
            offset = OVERFLOW_START + code_hash(vocabulary_id, code, salt) % OVERFLOW_SIZE
            if offset not in used:
                used.add(offset)
                out[code] = base + offset
                break
            salt += 1
    return out


def _sort_key(code: str) -> bytes:
    """Binary UTF-8 order, which is how Spark sorts strings."""
    return code.encode("utf-8")


def assign_concept_ids(vocabulary_id: str, codes: Iterable[str]) -> dict[str, int]:
    """Code -> concept id for a whole vocabulary (pure Python; same result as with_concept_ids)."""
    base = block_base(vocabulary_id)
    by_slot: dict[int, list[str]] = defaultdict(list)
    for code in sorted(set(codes), key=_sort_key):
        by_slot[primary_offset(vocabulary_id, code)].append(code)
    ids: dict[str, int] = {}
    losers: list[str] = []
    for offset, slot_codes in by_slot.items():
        ids[slot_codes[0]] = base + offset
        losers.extend(slot_codes[1:])
    ids.update(_overflow_ids(vocabulary_id, sorted(losers, key=_sort_key)))
    return ids


def code_hash_col(vocabulary_id: str, code: Column, salt: int = 0) -> Column:
    """Spark expression for code_hash (sha2 + conv of the first 15 hex digits)."""
    key = F.concat_ws("|", F.lit(vocabulary_id), code, F.lit(str(salt)))
    return F.conv(F.substring(F.sha2(key, 256), 1, _HEX_DIGITS), 16, 10).cast("long")


def with_concept_ids(df: DataFrame, vocabulary_id: str, code_col: str = "concept_code",
                     id_col: str = "concept_id") -> DataFrame:
    """Add id_col to a DataFrame with one row per code; only the few colliding codes visit the driver."""
    base = block_base(vocabulary_id)
    code = F.col(code_col)
    slotted = df.withColumn("_slot", F.lit(1) + F.pmod(code_hash_col(vocabulary_id, code), F.lit(PRIMARY_SIZE)))
    rank = F.row_number().over(Window.partitionBy("_slot").orderBy(code))
    slotted = slotted.withColumn("_rank", rank)
    # ~0.5 % of codes for 100k-code vocabularies: small enough to resolve on the driver.
    losers = [r[0] for r in slotted.filter(F.col("_rank") > 1).select(code_col).distinct().collect()]
    overflow = _overflow_ids(vocabulary_id, sorted(losers, key=_sort_key))
    primary_id = (F.lit(base) + F.col("_slot")).cast("int")
    if overflow:
        spark = df.sparkSession
        lookup = spark.createDataFrame(sorted(overflow.items()), f"`_ocode` string, `_oid` int")
        slotted = slotted.join(F.broadcast(lookup), code == F.col("_ocode"), "left")
        new_id = F.when(F.col("_rank") == 1, primary_id).otherwise(F.col("_oid"))
        return slotted.withColumn(id_col, new_id).drop("_slot", "_rank", "_ocode", "_oid")
    return slotted.withColumn(id_col, primary_id).drop("_slot", "_rank")
