"""Cut the bundled demo sample from ../shared/corpora (run once by a developer; the output is committed).

60 MEDDOCAN dev clinical cases (CC BY 4.0; synthetic PHI inserted by the corpus authors) become OMOP-like notes
of 20 persons over several years, plus deliberately broken rows that ingest must quarantine.
"""

from __future__ import annotations

import datetime as dt
import json
import shutil
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SRC = ROOT.parent / "shared" / "corpora" / "meddocan" / "dev"
OUT = ROOT / "sample"
N_NOTES, N_PERSONS = 60, 20
TITLES = ["Informe de alta", "Curso clínico", "Informe de consulta", "Informe quirúrgico"]


def main() -> None:
    """Write sample/notes/notes.jsonl and sample/corpora/meddocan/ (texts + gold)."""
    docs = sorted(SRC.glob("*.txt"))[:N_NOTES]
    gold_dir = OUT / "corpora" / "meddocan"
    gold_dir.mkdir(parents=True, exist_ok=True)
    rows = []
    for i, txt in enumerate(docs):
        shutil.copy(txt, gold_dir / txt.name)
        shutil.copy(txt.with_suffix(".ann"), gold_dir / txt.with_suffix(".ann").name)
        day = dt.date(2014, 1, 1) + dt.timedelta(days=(i * 97) % 3000)
        rows.append({
            "note_id": 1001 + i,
            "person_id": 501 + i % N_PERSONS,
            "note_date": day.isoformat(),
            "note_title": TITLES[i % len(TITLES)],
            "note_text": txt.read_text(encoding="utf-8"),
            "note_source_value": f"meddocan/dev/{txt.stem}",
        })
    broken = [
        {"note_id": 2001, "person_id": 501, "note_date": "2020-01-01", "note_title": "nulo", "note_text": None,
         "note_source_value": "broken/null-text"},
        {"note_id": 2002, "person_id": 502, "note_date": "2020-01-02", "note_title": "vacío", "note_text": "",
         "note_source_value": "broken/empty-text"},
        {"note_id": 2003, "person_id": 503, "note_date": "2020-01-03", "note_title": "blancos", "note_text": "  \n\t ",
         "note_source_value": "broken/whitespace-text"},
        {"note_id": 1005, "person_id": 505, "note_date": "2020-01-05", "note_title": "duplicado",
         "note_text": "Paciente de 70 años con disnea. Texto distinto con el mismo note_id.",
         "note_source_value": "broken/duplicate-id"},
        {"note_id": 2004, "person_id": 504, "note_date": "2019-02-30", "note_title": "fecha imposible",
         "note_text": "Control de hipertensión arterial.", "note_source_value": "broken/bad-date"},
        {"note_id": 2005, "person_id": 505, "note_date": "1850-06-01", "note_title": "fecha fuera de rango",
         "note_text": "Control de diabetes mellitus.", "note_source_value": "broken/date-out-of-range"},
        {"note_id": "abc", "person_id": 506, "note_date": "2020-01-06", "note_title": "id no numérico",
         "note_text": "Dolor torácico.", "note_source_value": "broken/non-numeric-id"},
    ]
    out = OUT / "notes" / "notes.jsonl"
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("w", encoding="utf-8") as fh:
        for row in rows + broken:
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")
    print(f"wrote {len(rows)} notes + {len(broken)} broken rows to {out}")


if __name__ == "__main__":
    main()
