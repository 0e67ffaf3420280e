"""Hand-computed cases for the shared-task metrics, including the official definitions' edge cases."""

from __future__ import annotations

import pytest

from clinlake.corpora.types import Mention
from clinlake.metrics import coding, deid, ner
from clinlake.metrics.prf import PRF, per_label_table, score_sets

TEXT = "Dr. Juan Pérez García vive en Madrid, España."
#       0123456789012345678901234567890123456789012345


def test_prf_zero_division_and_duplicates() -> None:
    assert PRF(0, 0, 0).f1 == 0.0
    s = score_sets(["a", "a", "b"], ["a", "c", "c"])
    assert (s.tp, s.fp, s.fn) == (1, 1, 1) and s.f1 == pytest.approx(0.5)
    rows = per_label_table({("d", "X", 1), ("d", "Y", 2)}, {("d", "X", 1)}, lambda k: k[1])
    assert [(r["label"], r["tp"], r["fn"], r["recall"]) for r in rows] == [("X", 1, 0, 1.0), ("Y", 0, 1, 0.0)]


def test_merge_spans_joins_across_non_alphanumeric_gaps_only() -> None:
    assert TEXT[4:21] == "Juan Pérez García" and TEXT[30:36] == "Madrid" and TEXT[38:44] == "España"
    assert deid.merge_spans([(15, 21), (4, 14), (30, 36), (38, 44)], TEXT) == [(4, 21), (30, 44)]
    assert deid.merge_spans([(4, 8), (9, 14)], "xxxxJuan3Pérez") == [(4, 8), (9, 14)]  # a digit blocks


def test_meddocan_strict_vs_merged() -> None:
    gold = {"d": [("NOMBRE", 4, 21), ("TERRITORIO", 30, 36), ("PAIS", 38, 44)]}
    pred = {"d": [("NOMBRE", 4, 14), ("NOMBRE", 15, 21), ("PAIS", 30, 44)]}
    m = deid.meddocan_scores(gold, pred, {"d": TEXT})
    # strict: no span matches -> 0 TP, 3 FP, 3 FN
    assert m["subtrack2_strict_f1"] == 0.0 and m["subtrack1_strict_precision"] == 0.0
    # merged: gold -> {(4,21), (30,44)}, pred -> {(4,21), (30,44)}; every strict error lies inside a match
    assert m["subtrack2_merged_precision"] == 1.0 and m["subtrack2_merged_recall"] == 1.0


def test_meddocan_type_error_counts_in_subtrack1_only() -> None:
    gold = {"d": [("NOMBRE", 4, 21), ("TERRITORIO", 30, 36)], "e": [("PAIS", 0, 3)]}
    pred = {"d": [("NOMBRE", 4, 21), ("PAIS", 30, 36), ("PAIS", 38, 44)]}
    m = deid.meddocan_scores(gold, pred, {"d": TEXT, "e": "Perú"})
    # subtrack1: TP 1, FP 2, FN 2 (doc e missing counts as nothing found)
    assert m["subtrack1_strict_precision"] == pytest.approx(1 / 3)
    assert m["subtrack1_strict_recall"] == pytest.approx(1 / 3)
    # subtrack2: TP 2, FP 1, FN 1
    assert m["subtrack2_strict_f1"] == pytest.approx(2 / 3)
    # merged: strict matches stay TP (2), (38,44) is not inside any match (FP), doc e's span is a FN
    assert m["subtrack2_merged_recall"] == pytest.approx(2 / 3)


def test_residual_phi_rate_bounds_and_partial() -> None:
    text = "Ana vive en Lugo."
    gold = {"d": [(0, 3), (12, 16)]}
    assert deid.residual_phi_rate(gold, {"d": text}) == 1.0  # nothing de-identified
    assert deid.residual_phi_rate(gold, {"d": text}, deid_texts={"d": text}) == 1.0
    assert deid.residual_phi_rate(gold, {"d": text}, deid_texts={"d": "[NOMBRE] vive en [LUGAR]."}) == 0.0
    assert deid.residual_phi_rate(gold, {"d": text}, deid_texts={"d": "Pepe vive en Lugo."}) == pytest.approx(4 / 7)
    masked, repl = deid.mask_text(text, [(0, 3)])
    assert masked == "[PHI] vive en Lugo."
    assert deid.residual_phi_rate(gold, {"d": text}, replacements={"d": repl}) == pytest.approx(4 / 7)
    # a "replacement" that writes the same text back hides nothing
    assert deid.residual_phi_rate(gold, {"d": text}, replacements={"d": [((0, 3), "Ana")]}) == 1.0
    # a document the de-identifier skipped leaks everything
    assert deid.residual_phi_rate(gold, {"d": text}, deid_texts={}) == 1.0


def test_map_with_duplicate_and_invalid_codes() -> None:
    gold = {"A": ["a", "b", "c", "a"], "B": ["d"]}
    pred = {"A": ["x", "A", "z", "a", "b"], "C": ["d"]}
    valid = {"z"}  # + every gold code; "x" is not valid
    # A: x dropped, dup a dropped -> [a, z, b]: AP = (1/1 + 2/3) / 3 = 5/9; B: no predictions -> 0
    assert coding.average_precision(pred["A"], gold["A"], coding._valid_set(gold, valid)) == pytest.approx(5 / 9)
    assert coding.mean_average_precision(gold, pred, valid) == pytest.approx(5 / 18)
    # without a valid list x stays and pushes the hits down: [x, a, z, b] -> (1/2 + 2/4) / 3
    assert coding.mean_average_precision(gold, pred, None) == pytest.approx((1 / 3) / 2)


def test_micro_f1_codes_counts_each_pair_once_and_ignores_other_docs() -> None:
    gold = {"A": ["a", "b", "c", "a"], "B": ["d"]}
    pred = {"A": ["x", "a", "z", "a", "b"], "C": ["d"]}
    c = coding.code_counts(gold, pred, {"z"}, docs={"A", "B"})
    assert (c.tp, c.fp, c.fn) == (2, 1, 2)
    assert c.f1 == pytest.approx(4 / 7)


def _m(label: str, frags: tuple, code: str | None = None) -> Mention:
    return Mention(label, frags[0][0], frags[-1][1], code, frags)


def test_codiesp_x_discontinuous_first_start_last_end() -> None:
    gold = {"A": [_m("PROCEDIMIENTO", ((8, 17), (28, 35)), "bt41zzz"), _m("DIAGNOSTICO", ((41, 55),), "n20.0")]}
    pred = {"A": [_m("PROCEDIMIENTO", ((8, 35),), "BT41ZZZ"),     # right: first start / last end match
                  _m("PROCEDIMIENTO", ((41, 55),), "n20.0"),     # wrong label
                  _m("DIAGNOSTICO", ((1, 3),), "not-a-code")]}  # invalid code, ignored with a valid list
    counts, rows = coding.x_scores(gold, pred, valid={"n20.0"})
    assert (counts.tp, counts.fp, counts.fn) == (1, 1, 1)
    assert {r["label"]: r["tp"] for r in rows} == {"DIAGNOSTICO": 0, "PROCEDIMIENTO": 1}
    assert coding.x_scores(gold, pred)[0].fp == 2  # no valid list: every predicted code counts


def test_cantemist_ner_and_norm() -> None:
    lab = "MORFOLOGIA_NEOPLASIA"
    gold = {"d": [Mention(lab, 0, 5, "8000/6"), Mention(lab, 10, 15, "8140/3")], "e": []}
    pred = {"d": [Mention(lab, 0, 5, "8000/6"), Mention(lab, 10, 15, "8000/3"), Mention(lab, 20, 25, "x"),
                  Mention(lab, 0, 5, "8000/6")],
            "other": [Mention(lab, 0, 5, "8000/6")]}
    m, _ = ner.cantemist_scores(gold, pred)
    assert (m["ner_precision"], m["ner_recall"]) == (pytest.approx(2 / 3), 1.0)
    assert m["ner_f1"] == pytest.approx(0.8)
    assert (m["norm_precision"], m["norm_recall"], m["norm_f1"]) == (pytest.approx(1 / 3), 0.5, pytest.approx(0.4))


def test_pharmaconer_exact_entity_match_per_label() -> None:
    gold = {"s1": [Mention("NORMALIZABLES", 0, 12), Mention("PROTEINAS", 20, 23)]}
    pred = {"s1": [Mention("NORMALIZABLES", 0, 5), Mention("PROTEINAS", 20, 23)]}
    counts, rows = ner.entity_scores(gold, pred)
    assert (counts.tp, counts.fp, counts.fn) == (1, 1, 1)
    assert {r["label"]: r["f1"] for r in rows} == {"NORMALIZABLES": 0.0, "PROTEINAS": 1.0}


def test_residual_undetected_separates_detection_from_policy() -> None:
    """A span found but written back unchanged (policy `keep`) leaks text, yet is no detection miss."""
    from clinlake.corpora.types import Corpus
    from clinlake.evaluation.scoring import score_meddocan

    gold = Corpus(notes={"d": TEXT}, mentions={"d": [Mention("NOMBRE", 4, 21), Mention("PAIS", 38, 44)]})
    pred = Corpus(notes={"d": TEXT}, mentions={"d": [Mention("NOMBRE", 4, 21), Mention("PAIS", 38, 44)]},
                  replacements={"d": [((4, 21), "Ana Gil"), ((38, 44), "España")]})
    m, _ = score_meddocan(gold, pred)
    assert m["residual_phi_rate_undetected"] == 0.0
    assert m["residual_phi_rate"] == pytest.approx(6 / 23)      # "España" kept as it was
    missed = Corpus(notes={"d": TEXT}, mentions={"d": [Mention("NOMBRE", 4, 21)]})
    m, _ = score_meddocan(gold, missed)
    assert m["residual_phi_rate_undetected"] == m["residual_phi_rate"] == pytest.approx(6 / 23)
