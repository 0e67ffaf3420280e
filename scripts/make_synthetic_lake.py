"""Synthetic lake: N Spanish clinical notes with PHI at known places, as a Parquet lake partitioned by note year.

The clinical language is the bundled sample's (sentences of sample/corpora/meddocan that overlap no gold PHI span,
recombined); the PHI values come from Faker es_ES pools drawn once on the driver. Generation runs on the executors
(spark.range -> mapInPandas), each row from its own seeded RNG, so the output depends only on (seed, N) and not
on the number of partitions or cores. Writes:

  <out>/notes/note_year=YYYY/*.parquet   note_id, person_id, note_date, note_datetime, note_title, note_text
  <out>/phi_gold/*.parquet               note_id, start, end, label, text   (MEDDOCAN labels, end exclusive)

    .venv/bin/python scripts/make_synthetic_lake.py --n 1000000 --out /tmp/synth --seed 7
"""

from __future__ import annotations

import argparse
import random
import re
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

SAMPLE_BRAT = ROOT / "sample" / "corpora" / "meddocan"
NOTE_TYPES = ("Informe de alta", "Curso clínico", "Informe de consulta", "Informe quirúrgico",
              "Informe de urgencias", "Informe de radiología")
DNI_LETTERS = "TRWAGMYFPDXBNJZSQVHLCKE"
MONTHS = ("enero", "febrero", "marzo", "abril", "mayo", "junio", "julio", "agosto", "septiembre", "octubre",
          "noviembre", "diciembre")
FIRST_YEAR, LAST_YEAR = 2005, 2024
# Mean ~500 tokens: log-normal around 400 tokens, clipped to the 50..3,000.
TOKENS_MU, TOKENS_SIGMA, MIN_TOKENS, MAX_TOKENS = 6.1, 0.65, 50, 3000
_SENT_SPLIT = re.compile(r"(?<=[.!?])\s+(?=[A-ZÁÉÍÓÚÑ¿¡])|\n+")

GOLD_SCHEMA = "note_id long, start int, `end` int, label string, text string"
NOTE_COLS = ("note_id", "person_id", "note_date", "note_datetime", "note_title", "note_text", "note_year")


def dni_letter(number: int) -> str:
    """Spanish DNI check letter (number mod 23)."""
    return DNI_LETTERS[number % 23]


def phrase_bank(brat_dir: Path = SAMPLE_BRAT, min_chars: int = 25) -> list[str]:
    """Sentences of the bundled MEDDOCAN sample that overlap no gold PHI span (the sample's clinical language)."""
    out: set[str] = set()
    for txt in sorted(brat_dir.glob("*.txt")):
        text = txt.read_text(encoding="utf-8")
        spans = []
        ann = txt.with_suffix(".ann")
        if ann.exists():
            for line in ann.read_text(encoding="utf-8").splitlines():
                if line.startswith("T") and "\t" in line:
                    offs = line.split("\t")[1].split(" ", 1)[1]
                    for part in offs.split(";"):
                        s, e = part.split()
                        spans.append((int(s), int(e)))
        pos = 0
        for piece in _SENT_SPLIT.split(text):
            start = text.find(piece, pos)
            end = start + len(piece)
            pos = end
            sent = piece.strip()
            if len(sent) < min_chars or ":" in sent[:25]:  # header fields ("Médico: ...") are not narrative
                continue
            if any(s < end and start < e for s, e in spans):
                continue
            out.add(sent)
    if not out:
        raise SystemExit(f"no sentences found under {brat_dir}")
    return sorted(out)


@dataclass
class Pools:
    """PHI value pools drawn once from Faker es_ES (deterministic by seed)."""

    first: list[str] = field(default_factory=list)
    last: list[str] = field(default_factory=list)
    street: list[str] = field(default_factory=list)
    city: list[str] = field(default_factory=list)
    hospital: list[str] = field(default_factory=list)
    email_domain: list[str] = field(default_factory=list)


def phi_pools(seed: int, size: int = 3000) -> Pools:
    """Faker es_ES names, streets and cities; hospitals composed from them (Faker has no hospital provider)."""
    from faker import Faker

    fake = Faker("es_ES")
    fake.seed_instance(seed)
    p = Pools()
    p.first = sorted({fake.first_name() for _ in range(size)})
    p.last = sorted({fake.last_name() for _ in range(size)})
    p.street = sorted({fake.street_name() for _ in range(size)})
    p.city = sorted({fake.city() for _ in range(size // 3)})
    kinds = ("Hospital Universitario", "Hospital General", "Hospital Clínico", "Complejo Hospitalario",
             "Hospital Comarcal")
    p.hospital = sorted({f"{k} {c}" for k, c in zip(kinds * (size // 10), p.city * 5)})[:500] or ["Hospital General"]
    p.email_domain = ["gmail.com", "hotmail.com", "yahoo.es", "telefonica.net", "salud.es"]
    return p


class NoteBuilder:
    """Concatenates text pieces and records the offsets of the PHI ones."""

    def __init__(self) -> None:
        self.parts: list[str] = []
        self.spans: list[tuple[int, int, str, str]] = []
        self.length = 0

    def text(self, s: str) -> None:
        self.parts.append(s)
        self.length += len(s)

    def phi(self, s: str, label: str) -> None:
        self.spans.append((self.length, self.length + len(s), label, s))
        self.text(s)

    def value(self) -> str:
        return "".join(self.parts)


def _fmt_date(rng: random.Random, y: int, m: int, d: int) -> str:
    style = rng.randrange(3)
    if style == 0:
        return f"{d:02d}/{m:02d}/{y}"
    if style == 1:
        return f"{d} de {MONTHS[m - 1]} de {y}"
    return f"{d:02d}-{m:02d}-{y}"


def _person(seed: int, person_id: int, pools: Pools) -> dict:
    """A person's stable attributes: same name, DNI, NHC, address on every note."""
    r = random.Random(seed * 1_000_003 + person_id * 7 + 11)
    dni = r.randrange(10_000_000, 99_999_999)
    city = r.choice(pools.city)
    return {
        "first": r.choice(pools.first), "last1": r.choice(pools.last), "last2": r.choice(pools.last),
        "dni": f"{dni}{dni_letter(dni)}", "nhc": str(r.randrange(1_000_000, 9_999_999)),
        "street": f"{r.choice(pools.street)}, {r.randrange(1, 200)}", "city": city,
        "cp": f"{r.randrange(1, 53):02d}{r.randrange(0, 1000):03d}",
        "phone": f"{r.choice('6789')}{r.randrange(10_000_000, 99_999_999)}",
        "birth": (r.randrange(1925, 2015), r.randrange(1, 13), r.randrange(1, 29)),
        "sex": r.choice(("H", "M")), "first_year": r.randrange(FIRST_YEAR, LAST_YEAR + 1),
        "hospital": r.choice(pools.hospital),
    }


def make_note(seed: int, note_id: int, n_persons: int, bank: list[str], pools: Pools,
              huge_chars: int = 0) -> tuple[dict, list[tuple[int, int, str, str]]]:
    """One note and its gold PHI spans; a pure function of (seed, note_id, n_persons, bank, pools)."""
    r = random.Random(seed * 2_000_003 + note_id)
    person_id = 1 + (note_id * 2_654_435_761 + seed) % n_persons  # multiplicative hash: persons spread over ids
    p = _person(seed, person_id, pools)
    year = r.randrange(p["first_year"], LAST_YEAR + 1)
    month, day = r.randrange(1, 13), r.randrange(1, 29)
    title = NOTE_TYPES[r.randrange(len(NOTE_TYPES))]
    age = year - p["birth"][0]
    doctor = f"{r.choice(pools.first)} {r.choice(pools.last)} {r.choice(pools.last)}"
    b = NoteBuilder()
    b.text(f"{title}.\nNombre: ")
    b.phi(p["first"], "NOMBRE_SUJETO_ASISTENCIA")
    b.text(".\nApellidos: ")
    b.phi(f"{p['last1']} {p['last2']}", "NOMBRE_SUJETO_ASISTENCIA")
    b.text(".\nNHC: ")
    b.phi(p["nhc"], "ID_SUJETO_ASISTENCIA")
    b.text(".\nDNI: ")
    b.phi(p["dni"], "ID_SUJETO_ASISTENCIA")
    b.text(".\nDomicilio: ")
    b.phi(p["street"], "CALLE")
    b.text(".\nLocalidad: ")
    b.phi(p["city"], "TERRITORIO")
    b.text(".\nCP: ")
    b.phi(p["cp"], "TERRITORIO")
    b.text(".\nTeléfono: ")
    b.phi(p["phone"], "NUMERO_TELEFONO")
    b.text(".\nFecha de nacimiento: ")
    b.phi(_fmt_date(r, *p["birth"]), "FECHAS")
    b.text(".\nFecha de ingreso: ")
    b.phi(_fmt_date(r, year, month, day), "FECHAS")
    b.text(".\nCentro: ")
    b.phi(p["hospital"], "HOSPITAL")
    b.text(".\nMédico: ")
    b.phi(doctor, "NOMBRE_PERSONAL_SANITARIO")
    b.text(".\n")
    tokens = int(min(MAX_TOKENS, max(MIN_TOKENS, r.lognormvariate(TOKENS_MU, TOKENS_SIGMA))))
    target_chars = huge_chars or tokens * 6  # ~6 characters per token in this Spanish prose
    b.text("Paciente ")
    b.phi("varón" if p["sex"] == "H" else "mujer", "SEXO_SUJETO_ASISTENCIA")
    b.text(" de ")
    b.phi(f"{max(age, 1)} años", "EDAD_SUJETO_ASISTENCIA")
    b.text(". ")
    while b.length < target_chars:
        roll = r.random()
        if roll < 0.03:
            b.text("Revisado en consulta el ")
            b.phi(_fmt_date(r, year, r.randrange(1, 13), r.randrange(1, 29)), "FECHAS")
            b.text(". ")
        elif roll < 0.04:
            b.text("Se contacta con el paciente en el teléfono ")
            b.phi(p["phone"], "NUMERO_TELEFONO")
            b.text(". ")
        elif roll < 0.05:
            b.text("Se deriva al ")
            b.phi(r.choice(pools.hospital), "HOSPITAL")
            b.text(". ")
        else:
            b.text(r.choice(bank) + (" " if r.random() < 0.8 else "\n"))
    b.text("\nFdo.: ")
    b.phi(doctor, "NOMBRE_PERSONAL_SANITARIO")
    b.text("\n")
    note = {
        "note_id": note_id, "person_id": person_id,
        "note_date": f"{year:04d}-{month:02d}-{day:02d}",
        "note_datetime": f"{year:04d}-{month:02d}-{day:02d} {r.randrange(24):02d}:{r.randrange(60):02d}:00",
        "note_title": title, "note_text": b.value(), "note_year": year,
    }
    return note, b.spans


def generate(spark, n: int, seed: int = 7, partitions: int | None = None, huge_notes: int = 0,
             huge_chars: int = 1_000_000, notes_per_person: int = 12, first_id: int = 1):
    """DataFrame of synthetic notes with a `phi` array column (gold spans); rows generated on the executors."""
    import pandas as pd
    from pyspark.sql import functions as F

    if __name__ != "__main__":
        # Imported from scripts/ (tests, bench): the Python workers cannot import this module by name, so its
        # functions and classes travel by value inside the UDF's pickle.
        from pyspark import cloudpickle

        cloudpickle.register_pickle_by_value(sys.modules[__name__])
    bank, pools = phrase_bank(), phi_pools(seed)
    n_persons = max(1, (n + huge_notes) // notes_per_person)
    huge_ids = set(range(first_id + n, first_id + n + huge_notes))
    partitions = partitions or max(2, (n + huge_notes) // 20_000)
    schema = ("note_id long, person_id long, note_date string, note_datetime string, note_title string, "
              "note_text string, note_year int, phi array<struct<start:int,`end`:int,label:string,text:string>>")

    def build(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        for batch in batches:
            rows = []
            for nid in batch["id"].tolist():
                note, spans = make_note(seed, nid, n_persons, bank, pools, huge_chars if nid in huge_ids else 0)
                note["phi"] = [{"start": s, "end": e, "label": lab, "text": t} for s, e, lab, t in spans]
                rows.append(note)
            yield pd.DataFrame(rows, columns=list(NOTE_COLS) + ["phi"])

    ids = spark.range(first_id, first_id + n + huge_notes, numPartitions=partitions)
    out = ids.mapInPandas(build, schema)
    return (out.withColumn("note_date", F.to_date("note_date"))
            .withColumn("note_datetime", F.to_timestamp("note_datetime")))


def write_lake(df, out: str, mode: str = "overwrite") -> None:
    """Notes partitioned by year + exploded gold spans, from one persisted generation pass."""
    from pyspark import StorageLevel
    from pyspark.sql import functions as F

    df = df.persist(StorageLevel.DISK_ONLY)
    df.select(*NOTE_COLS).write.mode(mode).partitionBy("note_year").parquet(f"{out}/notes")
    (df.select("note_id", F.explode("phi").alias("s"))
     .select("note_id", "s.start", "s.end", "s.label", "s.text")
     .write.mode(mode).parquet(f"{out}/phi_gold"))
    df.unpersist()


def main(argv: list[str] | None = None) -> None:
    """CLI: generate and write; prints notes/s."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, required=True, help="number of ordinary notes")
    ap.add_argument("--out", required=True, help="output folder (notes/ and phi_gold/ are written under it)")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--first-id", type=int, default=1, help="first note_id (to append a batch of new notes)")
    ap.add_argument("--partitions", type=int, default=None)
    ap.add_argument("--huge-notes", type=int, default=0, help="extra notes of --huge-chars characters each")
    ap.add_argument("--huge-chars", type=int, default=1_000_000)
    ap.add_argument("--mode", default="overwrite", choices=("overwrite", "append"))
    ap.add_argument("--master", default=None, help="Spark master when not under spark-submit (default: conf)")
    ap.add_argument("--env", default="local")
    args = ap.parse_args(argv)
    from clinlake.config import load_config
    from clinlake.spark import build_spark

    sets = [f"spark.master={args.master}"] if args.master else []
    spark = build_spark(load_config(args.env, sets), "clinlake-synthetic-lake")
    t = time.time()
    df = generate(spark, args.n, args.seed, args.partitions, args.huge_notes, args.huge_chars,
                  first_id=args.first_id)
    write_lake(df, args.out, args.mode)
    secs = time.time() - t
    total = args.n + args.huge_notes
    print(f"make_synthetic_lake: {total} notes -> {args.out} in {secs:.1f}s ({total / secs:.0f} notes/s)")


if __name__ == "__main__":
    main()
