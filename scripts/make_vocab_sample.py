"""Cut the bundled vocabulary sample (sample/vocab/) from ../shared: the codes the corpora use, nothing more.

Deterministic (sorted everywhere) and pure Python, so re-running it gives byte-identical files.
Every file keeps its source format, so the same loaders read the sample and the full vocabularies.

    .venv/bin/python scripts/make_vocab_sample.py [--shared ../shared] [--out sample/vocab]
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import sys
import xml.etree.ElementTree as ET
import zipfile
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from clinlake.vocab.gazetteer import LABEL_VOCABULARY, _brat_annotations  # noqa: E402
from clinlake.vocab.loaders import dotted_icd10  # noqa: E402
from clinlake.vocab.normalize import normalize  # noqa: E402

KEEP_DIAG_CHILDREN = ("name", "desc", "inclusionTerm", "includes", "sevenChrDef")
FULL_SUBTREE_MAX = 40  # keep a needed code's whole subtree when it has at most this many <diag> nodes
ATHENA_SEED_CONCEPTS = 40
CANTEMIST_TRAIN = ("train", "dev2")  # the gazetteer's CANTEMIST splits (dev1 is held out for measuring)


def codiesp_codes(corpora: Path, splits: tuple[str, ...] = ("train", "dev")) -> tuple[set[str], set[str]]:
    """(ICD-10-CM codes, ICD-10-PCS codes) used in CodiEsp D/P/X files of the splits, upper-case."""
    diag, proc = set(), set()
    for split in splits:
        for kind, target in (("D", diag), ("P", proc)):
            for line in (corpora / "codiesp" / split / f"{split}{kind}.tsv").read_text(encoding="utf-8").splitlines():
                if line.strip():
                    target.add(line.split("\t")[1].strip().upper())
        for line in (corpora / "codiesp" / split / f"{split}X.tsv").read_text(encoding="utf-8").splitlines():
            cols = line.split("\t")
            if len(cols) >= 3:
                (diag if cols[1] == "DIAGNOSTICO" else proc).add(cols[2].strip().upper())
    return diag, proc


def _subtree_size(diag: ET.Element) -> int:
    return sum(1 for _ in diag.iter("diag"))


def cut_icd10cm(xml_path: Path, wanted: set[str]) -> tuple[ET.Element, set[str]]:
    """Copy of the tabular XML holding the wanted codes' diag nodes, their ancestors and small subtrees.

    A wanted 7th-character code (S72.001A) or padded stem (S02.0XX) is covered by its leaf (S72.001,
    S02.0). Instructional notes other than inclusion terms are dropped (the loader does not read them).
    """
    tree = ET.parse(xml_path)
    root = tree.getroot()

    def base_codes(code: str) -> set[str]:
        plain = code.replace(".", "")
        cands = {plain, plain[:6], plain[:6].rstrip("X"), plain.rstrip("X")}
        return {dotted_icd10(c) for c in cands if len(c) >= 3}

    targets = set().union(*(base_codes(c) for c in wanted)) if wanted else set()
    kept: set[str] = set()

    def copy_diag(diag: ET.Element, force_all: bool) -> ET.Element | None:
        code = (diag.findtext("name") or "").strip().upper()
        children = [copy_diag(c, force_all or (code in wanted and _subtree_size(diag) <= FULL_SUBTREE_MAX))
                    for c in diag.findall("diag")]
        children = [c for c in children if c is not None]
        if not (force_all or code in targets or children):
            return None
        new = ET.Element("diag")
        for tag in KEEP_DIAG_CHILDREN:
            for el in diag.findall(tag):
                new.append(el)
        new.extend(children)
        kept.add(code)
        return new

    out = ET.Element("ICD10CM.tabular")
    ET.SubElement(out, "version").text = f"{root.findtext('version')} (sample)"
    for chapter in root.findall("chapter"):
        new_ch = ET.Element("chapter")
        new_ch.append(chapter.find("name"))
        new_ch.append(chapter.find("desc"))
        for section in chapter.findall("section"):
            diags = [d for d in (copy_diag(d, False) for d in section.findall("diag")) if d is not None]
            if diags:
                new_sec = ET.SubElement(new_ch, "section", id=section.get("id"))
                new_sec.append(section.find("desc"))
                new_sec.extend(diags)
        if len(new_ch) > 2:
            out.append(new_ch)
    ET.indent(out)
    return out, kept


def main() -> None:
    """Write every sample file and print what went where."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shared", default=str(ROOT.parent / "shared"))
    ap.add_argument("--out", default=str(ROOT / "sample" / "vocab"))
    args = ap.parse_args()
    shared, out = Path(args.shared), Path(args.out)
    vocab, corpora = shared / "vocab", shared / "corpora"
    for sub in ("icd10cm", "icd10pcs", "icd9cm", "gem", "cie10-who-es", "cie-o-3", "athena"):
        (out / sub).mkdir(parents=True, exist_ok=True)

    diag, proc = codiesp_codes(corpora)
    # ICD-10-CM: XML cut + the matching slice of the CMS code list (prunes invalid 7th characters)
    xml_root, kept = cut_icd10cm(vocab / "icd10cm" / "icd10c-tabular-April-1-2026.xml", diag)
    ET.ElementTree(xml_root).write(out / "icd10cm" / "icd10cm-tabular-sample.xml", encoding="utf-8", xml_declaration=True)
    kept_plain = {k.replace(".", "") for k in kept}
    code_list = [c.strip() for c in (vocab / "icd10cm" / "code-list-April-2026.txt").read_text().splitlines() if c.strip()]
    # the kept nodes plus the valid 7th-character codes generated from kept leaves (S72001A, S020XXA)
    sample_list = sorted({c for c in code_list if c in kept_plain
                          or (len(c) == 7 and (c[:6] in kept_plain or c[:6].rstrip("X") in kept_plain))})
    (out / "icd10cm" / "code-list-sample.txt").write_text("\n".join(sample_list) + "\n")
    print(f"icd10cm: {len(diag)} CodiEsp codes -> {len(kept)} diag nodes, {len(sample_list)} code-list rows")

    # ICD-10-PCS: every code under the 4-character prefix of a used code (so prefix names are meaningful)
    prefixes = {c[:4] for c in proc}
    pcs_lines = [l for l in (vocab / "icd10pcs" / "icd10pcs-codes-2024.txt").read_text(encoding="utf-8").splitlines()
                 if l[:4].upper() in prefixes]
    (out / "icd10pcs" / "icd10pcs-codes-sample.txt").write_text("\n".join(pcs_lines) + "\n", encoding="utf-8")
    print(f"icd10pcs: {len(proc)} CodiEsp codes, {len(prefixes)} 4-char prefixes -> {len(pcs_lines)} codes")

    # GEMs touching the sample's ICD-10-CM codes, and the ICD-9-CM codes they reach
    cm_plain = {c for c in sample_list if not c.isdigit() and "-" not in c}
    icd9: set[str] = set()
    for name, i10 in (("icd10cmtoicd9gem.csv", 0), ("icd9toicd10cmgem.csv", 1)):
        lines = (vocab / "gem" / name).read_text(encoding="utf-8").splitlines()
        rows = [lines[0]] + [l for l in lines[1:] if l.split(",")[i10].strip('"') in cm_plain]
        icd9 |= {l.split(",")[1 - i10].strip('"') for l in rows[1:]}
        (out / "gem" / name).write_text("\n".join(rows) + "\n", encoding="utf-8")
        print(f"gem {name}: {len(rows) - 1} rows")
    for f in sorted((vocab / "icd9cm").glob("CMS32_DESC_*.txt")):
        raw = f.read_bytes().splitlines()  # Latin-1: keep the bytes as they are
        keep = [l for l in raw if l.split(b" ")[0].decode("latin-1") in icd9] if "_DX" in f.name else raw[:40]
        (out / "icd9cm" / f.name).write_bytes(b"\n".join(keep) + b"\n")
        print(f"icd9cm {f.name}: {len(keep)} rows")

    # WHO ICD-10 in Spanish: rows for the sample's categories (matched and WHO-only), chapters and blocks
    cats = {c.replace(".", "")[:3] for c in diag}
    all_cm = set(code_list)
    text = (vocab / "cie10-who-es" / "cie-10.csv").read_text(encoding="utf-8")
    reader = list(csv.reader(io.StringIO(text)))
    sections = {k for k in kept if "-" in k}

    def who_keep(code: str) -> bool:
        if "-" in code:
            return code in sections
        # same code in the sample's ICD-10-CM, or a WHO-only code in a category CodiEsp uses
        return code in cm_plain or (code[:3] in cats and code not in all_cm)

    who = [reader[0]] + [r for r in reader[1:] if who_keep(r[0])]
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerows(who)
    (out / "cie10-who-es" / "cie-10.csv").write_text(buf.getvalue(), encoding="utf-8")
    print(f"cie10-who-es: {len(who) - 1} rows")

    # CIE-O-3.1: codes used in CANTEMIST (all splits here) and their 5-character parents
    notes = []
    for split in ("train", "dev1", "dev2"):
        notes += _brat_annotations(corpora / "cantemist" / split)
    o3 = {code for _, _, code in notes}
    o3 |= {c[:6] for c in o3 if len(c) == 7 and c[4] == "/"}
    o3_rows = [l for l in (vocab / "cie-o-3" / "cie_o3.jsonl").read_text(encoding="utf-8").splitlines()
               if l.strip() and json.loads(l)["concept_id"] in o3]
    (out / "cie-o-3" / "cie_o3.jsonl").write_text("\n".join(o3_rows) + "\n", encoding="utf-8")
    print(f"cie-o-3: {len(o3)} CANTEMIST codes -> {len(o3_rows)} rows")

    # Gazetteer (same counting as clinlake.vocab.gazetteer.build_gazetteer): CodiEsp train X + CANTEMIST train and
    # dev2 (CANTEMIST's second annotated development split is training data here; dev1 is the held-out measure).
    # Like build_gazetteer, mentions that normalise to nothing are left out, from either corpus.
    counts: Counter[tuple[str, str, str, str, str]] = Counter()
    seen = set()
    for line in (corpora / "codiesp" / "train" / "trainX.tsv").read_text(encoding="utf-8").splitlines():
        cols = line.split("\t")
        if len(cols) < 5 or tuple(cols) in seen or not normalize(cols[3]):  # CodiEsp-X repeats a few rows
            continue
        seen.add(tuple(cols))
        vocab_id = LABEL_VOCABULARY[cols[1]]
        counts[(cols[3].strip(), cols[1], vocab_id, cols[2].strip().upper(), "codiesp")] += 1
    for split in CANTEMIST_TRAIN:
        for mention, label, code in _brat_annotations(corpora / "cantemist" / split):
            if normalize(mention):  # dev2's "SE" (Ewing sarcoma) is a stop word once normalised
                counts[(mention.strip(), label, LABEL_VOCABULARY[label], code.strip(), "cantemist")] += 1
    with open(out / "gazetteer.tsv", "w", encoding="utf-8", newline="") as fh:
        fh.write("mention\tlabel\tvocabulary_id\tcode\tcount\tsource\n")
        for (m, label, v, code, src), n in sorted(counts.items(), key=lambda kv: (kv[0][2], kv[0][3], kv[0][0], kv[0][1], kv[0][4])):
            fh.write(f"{m}\t{label}\t{v}\t{code}\t{n}\t{src}\n")
    print(f"gazetteer: {len(counts)} rows")

    # Athena-format shard from Eunomia, written the way Athena exports: tab-separated, yyyyMMdd, no quotes
    with zipfile.ZipFile(vocab / "omop-eunomia" / "Synthea27Nj_5.4.zip") as zf:
        def table(name: str) -> list[dict]:
            return list(csv.DictReader(io.TextIOWrapper(zf.open(f"{name}.csv"), encoding="utf-8")))
        concepts = {r["concept_id"]: r for r in table("CONCEPT")}
        rels = [r for r in table("CONCEPT_RELATIONSHIP") if r["concept_id_1"] in concepts and r["concept_id_2"] in concepts]
        vocab_rows = table("VOCABULARY")
    seeds = sorted((c for c in concepts.values() if c["vocabulary_id"] == "SNOMED" and c["domain_id"] == "Condition"),
                   key=lambda c: int(c["concept_id"]))[:ATHENA_SEED_CONCEPTS]
    ids = {c["concept_id"] for c in seeds}
    ids |= {r["concept_id_2"] for r in rels if r["concept_id_1"] in ids}
    rel_rows = sorted((r for r in rels if r["concept_id_1"] in ids and r["concept_id_2"] in ids),
                      key=lambda r: (int(r["concept_id_1"]), int(r["concept_id_2"]), r["relationship_id"]))

    def athena_write(name: str, header: list[str], rows: list[dict]) -> None:
        with open(out / "athena" / f"{name}.csv", "w", encoding="utf-8", newline="") as fh:
            fh.write("\t".join(header) + "\n")
            for r in rows:
                fh.write("\t".join((r.get(h) or "").replace("-", "") if h.endswith("_date") else (r.get(h) or "")
                                   for h in header) + "\n")

    c_header = ["concept_id", "concept_name", "domain_id", "vocabulary_id", "concept_class_id", "standard_concept",
                "concept_code", "valid_start_date", "valid_end_date", "invalid_reason"]
    athena_write("CONCEPT", c_header, sorted((concepts[i] for i in ids), key=lambda c: int(c["concept_id"])))
    athena_write("CONCEPT_RELATIONSHIP", ["concept_id_1", "concept_id_2", "relationship_id", "valid_start_date",
                                          "valid_end_date", "invalid_reason"], rel_rows)
    athena_write("CONCEPT_SYNONYM", ["concept_id", "concept_synonym_name", "language_concept_id"], [])
    athena_write("CONCEPT_ANCESTOR", ["ancestor_concept_id", "descendant_concept_id", "min_levels_of_separation",
                                      "max_levels_of_separation"], [])
    athena_write("VOCABULARY", ["vocabulary_id", "vocabulary_name", "vocabulary_reference", "vocabulary_version",
                                "vocabulary_concept_id"], vocab_rows)
    print(f"athena: {len(ids)} concepts, {len(rel_rows)} relationships")


if __name__ == "__main__":
    main()
