"""CodiEsp metrics: MAP for the ranked D/P code lists, micro F1 for D/P, and the CodiEsp-X F1.

Semantics follow the official TeMU-BSC/codiesp-evaluation-script:
- MAP (codiespD_P_evaluation.py + trectools ``get_map(trec_eval=False)``): codes are lower-cased;
  a document's gold codes are deduplicated; predicted codes are deduplicated keeping the first
  occurrence, codes outside the valid list are dropped and only then are ranks counted (1, 2, ...).
  AP = sum over relevant hits of (hits so far / rank) / number of gold codes; MAP averages AP over
  every document of the gold file (a document without predictions scores 0).
- The valid list always contains every gold code; ``valid=None`` means no list: every code counts.
- Micro F1 D/P (comp_f1_diag_proc.py): sets of (document, code) after the same filtering.
- X (codiespX_evaluation.py, final version): sets of (document, label, code, first start, last end);
  a discontinuous mention ``s1 e1;s2 e2`` counts from s1 to e2.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from clinlake.corpora.types import Mention
from clinlake.metrics.prf import PRF, per_label_table, safe_div, score_sets


def _valid_set(gold: Mapping[str, Iterable[str]], valid: Iterable[str] | None) -> set[str] | None:
    """Lower-cased valid list extended with every gold code (None stays None: no filtering)."""
    if valid is None:
        return None
    return {c.lower() for c in valid} | {c.lower() for codes in gold.values() for c in codes}


def _clean_ranking(ranked: Iterable[str], valid: set[str] | None) -> list[str]:
    """Lower-case, drop invalid codes, keep the first of duplicates; order (rank) preserved."""
    out, seen = [], set()
    for code in ranked:
        c = code.strip().lower()
        if c in seen or (valid is not None and c not in valid):
            continue
        seen.add(c)
        out.append(c)
    return out


def average_precision(ranked: Iterable[str], relevant: Iterable[str], valid: set[str] | None = None) -> float:
    """AP of one ranked code list against a document's gold codes (official CodiEsp semantics)."""
    rel = {c.lower() for c in relevant}
    if not rel:
        return 0.0
    hits, total = 0, 0.0
    for rank, code in enumerate(_clean_ranking(ranked, valid), start=1):
        if code in rel:
            hits += 1
            total += hits / rank
    return total / len(rel)


def mean_average_precision(gold: Mapping[str, Iterable[str]], pred: Mapping[str, Iterable[str]],
                           valid: Iterable[str] | None = None) -> float:
    """MAP over the gold documents; predictions for other documents are ignored."""
    gold = {d: list(c) for d, c in gold.items() if list(c)}
    vs = _valid_set(gold, valid)
    return safe_div(sum(average_precision(pred.get(d, ()), g, vs) for d, g in gold.items()), len(gold))


def code_counts(gold: Mapping[str, Iterable[str]], pred: Mapping[str, Iterable[str]],
                valid: Iterable[str] | None = None, docs: Iterable[str] | None = None) -> PRF:
    """Micro counts over (document, code) pairs; `docs` limits predictions to the evaluated split."""
    gold = {d: list(c) for d, c in gold.items()}
    vs = _valid_set(gold, valid)
    keep = set(docs) if docs is not None else set(gold)
    g = {(d, c.lower()) for d, codes in gold.items() for c in codes}
    p = {(d, c) for d, codes in pred.items() if d in keep for c in _clean_ranking(codes, vs)}
    return score_sets(g, p)


def x_key(doc_id: str, m: Mention) -> tuple[str, str, str, int, int]:
    """The CodiEsp-X identity of a mention: document, label, code, first start, last end."""
    return (doc_id, m.label.upper(), (m.code or "").lower(), m.start, m.end)


def x_scores(gold: Mapping[str, Iterable[Mention]], pred: Mapping[str, Iterable[Mention]],
             valid: Iterable[str] | None = None,
             docs: Iterable[str] | None = None) -> tuple[PRF, list[dict[str, object]]]:
    """CodiEsp-X counts and the per-label (DIAGNOSTICO / PROCEDIMIENTO) table."""
    gold_codes = {d: [m.code or "" for m in ms] for d, ms in gold.items()}
    vs = _valid_set(gold_codes, valid)
    keep = set(docs) if docs is not None else set(gold)
    g = {x_key(d, m) for d, ms in gold.items() for m in ms}
    p = {x_key(d, m) for d, ms in pred.items() if d in keep for m in ms
         if vs is None or (m.code or "").lower() in vs}
    return score_sets(g, p), per_label_table(g, p, lambda k: k[1])
