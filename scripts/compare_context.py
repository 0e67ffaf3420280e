"""Compare our ConText implementation with medspaCy's ConText on the same data (NUBes dev, pairs TSVs).

medspaCy pins spaCy < 3.8 and numpy 1.x, which would downgrade the project's numpy 2, so it is not a
project dependency: run this script with an interpreter that has medspaCy (a throw-away venv), e.g.

    python3 -m venv /tmp/medspacy-venv && /tmp/medspacy-venv/bin/pip install medspacy==1.3.1
    /tmp/medspacy-venv/bin/python scripts/compare_context.py --nubes ../shared/corpora/nubes \
        --pairs sample/assertion/pairs_en.tsv sample/assertion/pairs_es.tsv

Our code is pure Python and is imported from the repository. medspaCy has no Spanish rules, so for
Spanish it gets rules built from our bundled lexicons: ``negex-mes`` (the upstream NegEx-MES lists only,
what a new user would do) and ``ours`` (the same merged upstream + curated lexicon our algorithm uses).
For English it runs with its own default rules. Throughput is measured on one core (one process).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from clinlake.assertion import Assertion, assert_spans  # noqa: E402
from clinlake.assertion.lexicon import PSEUDO, TERMINATE, Rule, _upstream_rules, lexicon_dir, load_rules  # noqa: E402
from clinlake.corpora.nubes import DEV_SAMPLES, read_nubes  # noqa: E402
from clinlake.metrics.assertion import evaluate_nubes, evaluate_pairs  # noqa: E402

_CATEGORY = {
    "negated": "NEGATED_EXISTENCE",
    "possible": "POSSIBLE_EXISTENCE",
    "probable": "POSSIBLE_EXISTENCE",
    "historical": "HISTORICAL",
    "hypothetical": "HYPOTHETICAL",
    "family": "FAMILY",
    "other": "FAMILY",
}
_DIRECTION = {"forward": "FORWARD", "backward": "BACKWARD", "both": "BIDIRECTIONAL"}
_TERMINATES = {
    "negation": ["NEGATED_EXISTENCE"],
    "certainty": ["POSSIBLE_EXISTENCE"],
    "temporality": ["HISTORICAL", "HYPOTHETICAL"],
    "experiencer": ["FAMILY"],
}


def medspacy_rules(rules: list[Rule]):
    """ConTextRules from our Rule list: pseudo -> PSEUDO, terminate -> TERMINATE of the group's categories."""
    from medspacy.context import ConTextRule

    out = []
    for r in rules:
        if r.value == PSEUDO:
            out.append(ConTextRule(r.phrase, f"PSEUDO_{r.group.upper()}", direction="PSEUDO"))
        elif r.value == TERMINATE:
            for cat in _TERMINATES[r.group]:
                out.append(ConTextRule(r.phrase, f"TERMINATE_{cat}", direction="TERMINATE"))
        else:
            out.append(ConTextRule(r.phrase, _CATEGORY[r.value], direction=_DIRECTION[r.direction]))
    return out


def medspacy_predictor(lang: str, rule_set: str):
    """predict_fn(text, spans, lang) backed by a blank spaCy pipeline + sentencizer + medspaCy ConText."""
    import spacy
    from medspacy.context import ConText

    nlp = spacy.blank(lang)
    nlp.add_pipe("sentencizer")
    if rule_set == "default":
        nlp.add_pipe("medspacy_context")
    else:
        ctx: ConText = nlp.add_pipe("medspacy_context", config={"rules": None})
        rules = load_rules(lang) if rule_set == "ours" else _upstream_rules(lang, lexicon_dir())
        # the same TERMINATE literal may end several categories; medspaCy wants one rule per category
        ctx.add(medspacy_rules(rules))

    def predict(text: str, spans, _lang: str) -> list[Assertion]:
        doc = nlp.make_doc(text)
        ents, index = [], []
        for i, (s, e) in enumerate(spans):
            span = doc.char_span(s, e, label="T", alignment_mode="expand")
            if span is not None:
                ents.append(span)
                index.append(i)
        # overlapping targets cannot all be doc.ents: keep a non-overlapping set, the rest default
        kept, used = [], set()
        for i, span in sorted(zip(index, ents), key=lambda x: (x[1].start, -len(x[1]))):
            if not any(t in used for t in range(span.start, span.end)):
                kept.append((i, span))
                used.update(range(span.start, span.end))
        doc.ents = [s for _, s in kept]
        for _, proc in nlp.pipeline:
            doc = proc(doc)
        out = [Assertion() for _ in spans]
        for (i, _), ent in zip(sorted(kept, key=lambda x: x[1].start), doc.ents):
            out[i] = Assertion(
                negated=bool(ent._.is_negated),
                certainty="possible" if ent._.is_uncertain else "certain",
                experiencer="family" if ent._.is_family else "patient",
                temporality="hypothetical" if ent._.is_hypothetical else "historical" if ent._.is_historical else "current",
            )
        return out

    return predict


def throughput(predict, docs) -> dict:
    """Notes/s and chunks/s of predict over the documents (one core, warm)."""
    predict(docs[0].text, [(e.start, e.end) for e in docs[0].entities], "es")
    t0 = time.perf_counter()
    chunks = 0
    for d in docs:
        predict(d.text, [(e.start, e.end) for e in d.entities], "es")
        chunks += len(d.entities)
    dt = time.perf_counter() - t0
    return {"notes_per_s": round(len(docs) / dt, 1), "chunks_per_s": round(chunks / dt, 1), "notes": len(docs), "chunks": chunks}


def main(argv: list[str] | None = None) -> dict:
    """Run both systems on NUBes dev and the pairs files; print and return a JSON report."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--nubes", default=str(ROOT.parent / "shared" / "corpora" / "nubes"))
    ap.add_argument("--pairs", nargs="*", default=[str(ROOT / "sample/assertion/pairs_en.tsv"), str(ROOT / "sample/assertion/pairs_es.tsv")])
    ap.add_argument("--out", default=None, help="write the JSON report here")
    args = ap.parse_args(argv)

    systems = {"ours": lambda lang: assert_spans}
    try:
        import medspacy  # noqa: F401

        systems["medspacy_negex_mes"] = lambda lang: medspacy_predictor(lang, "negex-mes" if lang == "es" else "default")
        systems["medspacy_our_lexicon"] = lambda lang: medspacy_predictor(lang, "ours")
    except ImportError as exc:
        print(f"medspaCy not importable ({exc}); reporting ours only", file=sys.stderr)

    report: dict = {}
    nubes = Path(args.nubes)
    docs = list(read_nubes(nubes, DEV_SAMPLES)) if nubes.exists() else []
    for name, make in systems.items():
        res: dict = {}
        if docs:
            pred = make("es")
            res["nubes_dev"] = evaluate_nubes(nubes, pred)
            res["throughput_nubes_dev"] = throughput(pred, docs)
        for p in args.pairs:
            lang = "en" if p.endswith("_en.tsv") else "es"
            res[f"pairs:{Path(p).name}"] = evaluate_pairs(p, make(lang))
        report[name] = res
    text = json.dumps(report, indent=1)
    print(text)
    if args.out:
        Path(args.out).write_text(text + "\n", encoding="utf-8")
    return report


if __name__ == "__main__":
    main()
