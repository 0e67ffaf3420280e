"""Score a predicted `Corpus` against a gold `Corpus` with each shared task's official metric keys."""

from __future__ import annotations

import logging
from collections.abc import Iterable

from clinlake.corpora.types import Corpus
from clinlake.errors import UserError
from clinlake.metrics import coding, deid, ner
from clinlake.metrics.prf import per_label_table

log = logging.getLogger(__name__)

Table = list[dict[str, object]]


def score_meddocan(gold: Corpus, pred: Corpus) -> tuple[dict[str, float], Table]:
    """MEDDOCAN subtracks 1/2 and residual PHI; without rewritten texts, predicted spans count as masked."""
    gm = {d: [(m.label, m.start, m.end) for m in ms] for d, ms in (gold.mentions or {}).items()}
    pm = {d: [(m.label, m.start, m.end) for m in ms] for d, ms in (pred.mentions or {}).items()}
    out = deid.meddocan_scores(gm, pm, gold.notes)
    gold_spans = {d: [(s, e) for _, s, e in v] for d, v in gm.items()}
    # Detection alone: gold PHI characters no predicted span covers (as if every prediction were masked).
    masked = {d: [((s, e), f"[{lab}]") for lab, s, e in v] for d, v in pm.items()}
    out["residual_phi_rate_undetected"] = deid.residual_phi_rate(gold_spans, gold.notes, replacements=masked)
    if pred.replacements is not None or pred.deid_texts is not None:
        # What the text still shows: also what the replacement policy keeps on purpose (sex, ages up to 89).
        out["residual_phi_rate"] = deid.residual_phi_rate(gold_spans, gold.notes, pred.deid_texts, pred.replacements)
    else:
        out["residual_phi_rate"] = out["residual_phi_rate_undetected"]
    g = {(d, lab, s, e) for d, v in gm.items() for lab, s, e in v}
    p = {(d, lab, s, e) for d, v in pm.items() if d in gm for lab, s, e in v}
    return out, per_label_table(g, p, lambda k: k[1])


def score_codiesp(gold: Corpus, pred: Corpus, valid_d: Iterable[str] | None = None,
                  valid_p: Iterable[str] | None = None) -> tuple[dict[str, float], Table]:
    """The CodiEsp sub-tracks whose prediction file is present (D, P: MAP + micro P/R/F1; X: P/R/F1)."""
    out: dict[str, float] = {}
    table: Table = []
    docs = set(gold.notes) or None
    for name, g, p, valid in (("d", gold.codes_d, pred.codes_d, valid_d), ("p", gold.codes_p, pred.codes_p, valid_p)):
        if p is None:
            continue
        if g is None:
            raise UserError(f"predictions for CodiEsp-{name.upper()} but the gold split has no {name.upper()}.tsv")
        out[f"map_{name}"] = coding.mean_average_precision(g, p, valid)
        counts = coding.code_counts(g, p, valid, docs)
        out.update(counts.as_dict(suffix=f"_{name}"))
        table.append({"label": f"codiesp-{name}", "support": counts.tp + counts.fn, "tp": counts.tp,
                      "fp": counts.fp, "fn": counts.fn, "precision": counts.precision, "recall": counts.recall,
                      "f1": counts.f1})
    if pred.mentions is not None:
        if gold.mentions is None:
            raise UserError("predictions for CodiEsp-X but the gold split has no X.tsv")
        valid_x = None if valid_d is None and valid_p is None else set(valid_d or ()) | set(valid_p or ())
        counts, rows = coding.x_scores(gold.mentions, pred.mentions, valid_x, docs)
        out.update(counts.as_dict(suffix="_x"))
        table.extend({**r, "label": f"codiesp-x {r['label']}"} for r in rows)
    if not out:
        raise UserError("no CodiEsp sub-track to score: predictions hold no D, P or X output")
    return out, table


def score_cantemist(gold: Corpus, pred: Corpus) -> tuple[dict[str, float], Table]:
    """CANTEMIST NER and NORM."""
    return ner.cantemist_scores(gold.mentions or {}, pred.mentions or {})


def score_pharmaconer(gold: Corpus, pred: Corpus) -> tuple[dict[str, float], Table]:
    """PharmaCoNER exact entity match, micro and per label (keys ner_f1.<LABEL> etc.)."""
    counts, rows = ner.entity_scores(gold.mentions or {}, pred.mentions or {})
    out = counts.as_dict("ner_")
    for r in rows:
        for k in ("precision", "recall", "f1"):
            out[f"ner_{k}.{r['label']}"] = float(r[k])  # type: ignore[arg-type]
    return out, rows


def score(task: str, corpus: str, gold: Corpus, pred: Corpus, valid_d: Iterable[str] | None = None,
          valid_p: Iterable[str] | None = None) -> tuple[dict[str, float], Table]:
    """Metrics and the per-label table for a supported (task, corpus)."""
    if (task, corpus) == ("deid", "meddocan"):
        return score_meddocan(gold, pred)
    if (task, corpus) == ("coding", "codiesp"):
        return score_codiesp(gold, pred, valid_d, valid_p)
    if (task, corpus) == ("ner", "cantemist"):
        return score_cantemist(gold, pred)
    if (task, corpus) == ("ner", "pharmaconer"):
        return score_pharmaconer(gold, pred)
    raise UserError(f"no scorer for task {task} / corpus {corpus}")
