"""Assertion readers and metrics: NUBes gold from scopes, pairs TSV, hand-computed scores, gold-vs-itself."""

from __future__ import annotations

from pathlib import Path

import pytest

from clinlake.assertion import Assertion
from clinlake.corpora.nubes import DEV_SAMPLES, read_nubes
from clinlake.corpora.pairs import read_pairs
from clinlake.metrics.assertion import evaluate_nubes, evaluate_pairs

ROOT = Path(__file__).resolve().parent.parent

# "No fiebre ni tos . Probable neumonía ." : negation scope is a Phrase holding two DISO, uncertainty scope
# is the entity itself, and a DiscScope counts as well.
NUBES_TXT = "No fiebre ni tos .\nProbable neumonía .\nSin dolor .\n"
NUBES_ANN = """T1\tNegSynMarker 0 2\tNo
T2\tPhrase 3 16\tfiebre ni tos
T3\tDISO 3 9\tfiebre
T4\tDISO 13 16\ttos
T5\tUncertLexMarker 19 27\tProbable
T6\tDISO 28 36\tneumonía
T7\tNegSynMarker 39 42\tSin
T8\tDISO 43 48\tdolor
T9\tBODY 43 48\tdolor
R1\tScope Arg1:T1 Arg2:T2
R2\tScope Arg1:T5 Arg2:T6
R3\tDiscScope Arg1:T7 Arg2:T8
"""


@pytest.fixture()
def nubes_dir(tmp_path: Path) -> Path:
    (tmp_path / "doc.txt").write_text(NUBES_TXT, encoding="utf-8")
    (tmp_path / "doc.ann").write_text(NUBES_ANN, encoding="utf-8")
    return tmp_path


def test_nubes_gold_from_scopes(nubes_dir):
    (doc,) = list(read_nubes(nubes_dir))
    got = [(e.text, e.negated, e.uncertain) for e in doc.entities]
    assert got == [("fiebre", True, False), ("tos", True, False), ("neumonía", False, True), ("dolor", True, False)]


def test_nubes_metric_hand_computed(nubes_dir):
    # predict: everything negated, nothing uncertain -> negation P=3/4 R=1; uncertainty tp=0 -> F1 0
    def all_negated(text, spans, lang):
        return [Assertion(negated=True) for _ in spans]

    m = evaluate_nubes(nubes_dir, all_negated)
    assert m["documents"] == 1 and m["entities"] == 4
    assert m["negation_precision"] == pytest.approx(0.75) and m["negation_recall"] == 1.0
    assert m["negation_f1"] == pytest.approx(2 * 0.75 / 1.75)
    assert m["uncertainty_f1"] == 0.0
    ours = evaluate_nubes(nubes_dir)
    assert ours["negation_f1"] == 1.0 and ours["uncertainty_f1"] == 1.0


PAIRS = """id\tlang\tsentence\tconcept\tnegation\ttemporality\texperiencer
1\ten\tNo fever.\tfever\tNegated\tRecent\tPatient
2\ten\tNo cough.\tCOUGH\tNegated\tHistorical\t
3\ten\tHas rash.\trash\tAffirmed\t\tOther
4\ten\tHas pain.\tpain\tAffirmed\tRecent\tPatient
5\ten\tHas itch.\titch\t\tHypothetical\tPatient
"""


def test_pairs_reader_and_hand_computed_metric(tmp_path):
    path = tmp_path / "p.tsv"
    path.write_text(PAIRS, encoding="utf-8")
    pairs = read_pairs(path)
    assert pairs[1].span == (3, 8) and pairs[2].temporality is None and pairs[4].negation is None
    # canned predictions by sentence: TP, FN, FP, TN on negation
    canned = {
        "No fever.": Assertion(negated=True),
        "No cough.": Assertion(negated=False, temporality="historical"),
        "Has rash.": Assertion(negated=True, experiencer="family"),
        "Has pain.": Assertion(),
        "Has itch.": Assertion(temporality="current"),
    }
    m = evaluate_pairs(path, lambda text, spans, lang: [canned[text]])
    assert m["documents"] == 5
    assert m["negation_accuracy"] == 0.5 and m["negation_f1"] == 0.5
    assert m["temporality_accuracy"] == pytest.approx(3 / 4)  # rows 1, 2, 4 right; 5 wrong; 3 not annotated
    assert m["experiencer_accuracy"] == 1.0  # family counts as Other; row 2 not annotated


def test_pairs_rejects_unknown_label(tmp_path):
    path = tmp_path / "bad.tsv"
    path.write_text(PAIRS.replace("Affirmed\t\tOther", "Maybe\t\tOther"), encoding="utf-8")
    with pytest.raises(ValueError):
        read_pairs(path)


@pytest.mark.parametrize("name", ["pairs_en.tsv", "pairs_es.tsv"])
def test_bundled_pairs_samples(name):
    path = ROOT / "sample" / "assertion" / name
    pairs = read_pairs(path)
    assert len(pairs) >= 60 and all(p.span is not None for p in pairs)
    m = evaluate_pairs(path)
    assert m["negation_accuracy"] >= 0.97


def test_nubes_gold_versus_itself_is_perfect(shared_dir):
    root = shared_dir / "corpora" / "nubes"
    if not root.exists():
        pytest.skip("NUBes not present under ../shared/corpora")
    gold = {}
    for doc in read_nubes(root, DEV_SAMPLES[:2]):
        for e in doc.entities:
            gold[(doc.text, e.start, e.end)] = Assertion(negated=e.negated, certainty="possible" if e.uncertain else "certain")

    def oracle(text, spans, lang):
        return [gold[(text, s, e)] for s, e in spans]

    subset = root / DEV_SAMPLES[0]
    m = evaluate_nubes(subset, oracle)
    assert m["negation_f1"] == 1.0 and m["uncertainty_f1"] == 1.0 and m["entities"] > 100


def test_nubes_dev_targets(shared_dir):
    root = shared_dir / "corpora" / "nubes"
    if not root.exists():
        pytest.skip("NUBes not present under ../shared/corpora")
    m = evaluate_nubes(root)
    assert m["documents"] > 400
    assert m["negation_f1"] >= 0.93 and m["uncertainty_f1"] >= 0.85
