"""jobs/evaluate.py: the CLI contract, gold-against-itself on every shared dev split, crafted official cases."""

from __future__ import annotations

import json
import subprocess
import sys
import types
from pathlib import Path

import pytest

from clinlake.corpora.readers import read_corpus
from clinlake.evaluation import predict
from clinlake.evaluation.run import main, per_label_csv_path
from clinlake.evaluation.submission import write_brat, write_codiesp, write_conll

ROOT = Path(__file__).resolve().parent.parent
NO_MLFLOW = ["--set", "evaluation.mlflow=false"]


def _evaluate(*args: str) -> dict:
    """Run the job in-process (no Spark in --predictions mode) and return the JSON it wrote."""
    argv = list(args)
    main(argv + NO_MLFLOW)
    return json.loads(Path(argv[argv.index("--out") + 1]).read_text(encoding="utf-8"))


@pytest.mark.parametrize("task,corpus,split", [
    ("deid", "meddocan", "meddocan/dev"), ("ner", "cantemist", "cantemist/dev1"),
    ("coding", "codiesp", "codiesp/dev"), ("ner", "pharmaconer", "pharmaconer/dev.txt"),
])
def test_gold_against_itself_scores_one(shared_dir: Path, tmp_path: Path, task: str, corpus: str, split: str) -> None:
    data = shared_dir / "corpora" / split
    gold = read_corpus(corpus, data)
    if corpus == "codiesp":
        sub = write_codiesp(gold, tmp_path / "sub")
    elif corpus == "pharmaconer":
        sub = write_conll(gold.sentences, tmp_path / "sub.conll")
    else:
        sub = write_brat(gold, tmp_path / "sub")
    m = _evaluate("--task", task, "--corpus", corpus, "--data", str(data), "--out", str(tmp_path / "m.json"),
                  "--predictions", str(sub))
    scores = {k: v for k, v in m.items() if k.split(".")[0].endswith(("f1", "precision", "recall", "_d", "_p", "_x"))}
    assert scores and all(v == 1.0 for v in scores.values()), scores
    assert m["documents"] == gold.documents and m["wall_s"] >= 0 and m["notes_per_s"] > 0
    if corpus == "meddocan":
        assert m["residual_phi_rate"] == 0.0
    if corpus == "codiesp":
        assert {"map_d", "map_p", "f1_d", "f1_p", "f1_x"} <= set(m)


def _brat(folder: Path, name: str, ann: str, text: str | None = None) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{name}.ann").write_text(ann, encoding="utf-8")
    if text is not None:
        (folder / f"{name}.txt").write_text(text, encoding="utf-8")


def test_meddocan_crafted_submission(tmp_path: Path) -> None:
    text = "Dr. Juan Pérez García vive en Madrid, España."
    _brat(tmp_path / "gold", "d1", "T1\tNOMBRE 4 21\tJuan Pérez García\nT2\tTERRITORIO 30 36\tMadrid\n", text)
    _brat(tmp_path / "pred", "d1", "T1\tNOMBRE 4 14\tJuan Pérez\nT2\tNOMBRE 15 21\tGarcía\nT3\tPAIS 30 36\tMadrid\n")
    m = _evaluate("--task", "deid", "--corpus", "meddocan", "--data", str(tmp_path / "gold"),
                  "--out", str(tmp_path / "out" / "m.json"), "--predictions", str(tmp_path / "pred"))
    assert m["subtrack1_strict_precision"] == 0.0
    assert m["subtrack2_strict_precision"] == pytest.approx(1 / 3) and m["subtrack2_strict_recall"] == 0.5
    assert m["subtrack2_merged_f1"] == 1.0
    assert m["residual_phi_rate"] == pytest.approx(1 / 23)  # only the space in "Juan Pérez García" stays
    table = per_label_csv_path(tmp_path / "out" / "m.json").read_text(encoding="utf-8")
    assert table.splitlines()[0].startswith("label,support,tp") and "TERRITORIO" in table


def test_codiesp_scores_only_subtracks_present(tmp_path: Path) -> None:
    split = tmp_path / "dev"
    (split / "text_files").mkdir(parents=True)
    (split / "text_files" / "A.txt").write_text("texto", encoding="utf-8")
    (split / "text_files" / "B.txt").write_text("texto", encoding="utf-8")
    (split / "devD.tsv").write_text("A\ta\nA\tb\nA\tc\nA\ta\nB\td\n", encoding="utf-8")
    (split / "devP.tsv").write_text("A\tp1\n", encoding="utf-8")
    codes = tmp_path / "valid_d.tsv"
    codes.write_text("z\tdescripción\n", encoding="utf-8")
    sub = tmp_path / "sub"
    sub.mkdir()
    (sub / "predD.tsv").write_text("A\tx\nA\ta\nA\tz\nA\ta\nA\tb\nC\td\n", encoding="utf-8")
    m = _evaluate("--task", "coding", "--corpus", "codiesp", "--data", str(split), "--out", str(tmp_path / "m.json"),
                  "--predictions", str(sub), "--set", f"evaluation.valid_codes.d={codes}")
    assert m["map_d"] == pytest.approx(5 / 18) and m["f1_d"] == pytest.approx(4 / 7)
    assert "map_p" not in m and "f1_x" not in m


def _run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(ROOT / "jobs" / "evaluate.py"), *args], capture_output=True,
                          text=True, cwd=ROOT, timeout=120)


@pytest.mark.parametrize("args,cause", [
    (["--task", "ner", "--corpus", "meddocan", "--data", ".", "--out", "x.json"], "does not apply"),
    (["--task", "ner", "--corpus", "cantemist", "--data", "/no/such/dir", "--out", "x.json"], "--data not found"),
    (["--task", "ner", "--corpus", "nope", "--data", ".", "--out", "x.json"], "invalid choice"),
    (["--task", "ner", "--corpus", "cantemist", "--data", "sample/corpora/meddocan", "--out", "x.json",
      "--model-alias", "no-such-alias"], "not found in the registry"),
])
def test_bad_invocation_exits_2_with_one_line(args: list[str], cause: str) -> None:
    r = _run_cli(*args)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    # The cause is one line, and the last one: once Spark has started, the JVM's own log lines come before it.
    last = r.stderr.strip().splitlines()[-1]
    assert last.startswith("evaluate:") and cause in last


def test_malformed_submission_is_a_one_line_error(tmp_path: Path, capsys) -> None:
    (tmp_path / "gold.conll").write_text("a\tO\nb\tB-PROTEINAS\n\n", encoding="utf-8")
    (tmp_path / "pred.conll").write_text("a\tO\nc\tB-PROTEINAS\n\n", encoding="utf-8")
    with pytest.raises(SystemExit) as exc:
        main(["--task", "ner", "--corpus", "pharmaconer", "--data", str(tmp_path / "gold.conll"),
              "--out", str(tmp_path / "m.json"), "--predictions", str(tmp_path / "pred.conll")] + NO_MLFLOW)
    assert exc.value.code == 2 and "tokens of sentence 1 differ" in capsys.readouterr().err


def test_assertion_dispatch_passes_only_accepted_arguments(tmp_path: Path, monkeypatch) -> None:
    seen = {}

    def evaluate_pairs(data, predictions=None):
        seen.update(data=data, predictions=predictions)
        return {"negation_f1": 0.5, "documents": 4, "per_label": [{"label": "Negated", "f1": 0.5}]}

    monkeypatch.setitem(sys.modules, "clinlake.metrics.assertion", types.SimpleNamespace(evaluate_pairs=evaluate_pairs))
    (tmp_path / "pairs.tsv").write_text("id\tlang\n", encoding="utf-8")
    m = _evaluate("--task", "assertion", "--corpus", "pairs", "--data", str(tmp_path / "pairs.tsv"),
                  "--out", str(tmp_path / "m.json"), "--predictions", str(tmp_path / "pairs.tsv"))
    assert seen["data"] == str(tmp_path / "pairs.tsv") and m["negation_f1"] == 0.5 and m["documents"] == 4
    assert "Negated" in per_label_csv_path(tmp_path / "m.json").read_text(encoding="utf-8")


def test_registered_predictor_is_used_in_pipeline_mode(tmp_path: Path, monkeypatch) -> None:
    from clinlake.corpora.types import Corpus, Mention

    calls = []

    def fake(spark, cfg, notes_df, alias):
        calls.append(alias)
        return Corpus(mentions={"d1": [Mention("MORFOLOGIA_NEOPLASIA", 0, 9, "8000/3")]}, model_versions={"ner": "3"})

    predict.load_predictors()  # register the real ones first, so teardown puts the real predictor back
    monkeypatch.setitem(predict.PREDICTORS, ("ner", "cantemist"), fake)
    monkeypatch.setattr("clinlake.corpora.frames.notes_df", lambda spark, corpus: None)
    _brat(tmp_path / "gold", "d1", "T1\tMORFOLOGIA_NEOPLASIA 0 9\tcarcinoma\n#1\tAnnotatorNotes T1\t8000/3\n",
          "carcinoma de mama")
    from clinlake.config import load_config
    from clinlake.evaluation.run import build_parser, run

    args = build_parser().parse_args(["--task", "ner", "--corpus", "cantemist", "--data", str(tmp_path / "gold"),
                                      "--out", str(tmp_path / "m.json"), "--model-alias", "challenger"])
    m = run(None, load_config("test", ["evaluation.mlflow=false"]), args)
    assert calls == ["challenger"] and m["norm_f1"] == 1.0


def test_mlflow_run_gets_metrics_params_and_artifacts(tmp_path: Path) -> None:
    mlflow = pytest.importorskip("mlflow")
    text = "Ana vive en Lugo."
    _brat(tmp_path / "gold", "d1", "T1\tNOMBRE 0 3\tAna\nT2\tTERRITORIO 12 16\tLugo\n", text)
    _brat(tmp_path / "pred", "d1", "T1\tNOMBRE 0 3\tAna\n")
    main(["--task", "deid", "--corpus", "meddocan", "--data", str(tmp_path / "gold"), "--out", str(tmp_path / "m.json"),
          "--predictions", str(tmp_path / "pred"), "--set", f"mlflow.dir={tmp_path / 'mlruns'}",
          "--set", "mlflow.experiment=eval-test"])
    from clinlake.config import load_config
    from clinlake.tracking import configure

    configure(load_config("test", [f"mlflow.dir={tmp_path / 'mlruns'}", "mlflow.experiment=eval-test"]))
    run = mlflow.search_runs(experiment_names=["eval-test"], output_format="list")[0]
    assert run.data.metrics["subtrack1_strict_recall"] == 0.5 and run.data.params["corpus"] == "meddocan"
    arts = {a.path for a in mlflow.MlflowClient().list_artifacts(run.info.run_id)}
    assert arts == {"per_label.csv", "per_label_f1.png"}


def test_codiesp_x_keeps_mappings_at_or_above_the_review_threshold() -> None:
    from clinlake.evaluation.pipelines import _mentions

    def row(note_id, start, code, score, label="DIAGNOSTICO"):
        return {"note_id": note_id, "label": label, "offset_start": start, "offset_end": start + 4,
                "concept_code": code, "score": score, "lexical_variant": "x"}

    rows = [row(1, 0, "R52", 0.9), row(1, 10, "I10", 0.5), row(1, 20, "E11.9", 0.49),
            row(1, 30, "R50.9", None),                                 # exact fallback: no score, kept
            row(2, 0, "8000/3", 0.1, "MORFOLOGIA_NEOPLASIA"), row(2, 10, None, None)]
    out = _mentions(rows, {1: "a", 2: "b"}, {"DIAGNOSTICO", "PROCEDIMIENTO"}, 0.5)
    assert {d: [(m.start, m.code) for m in ms] for d, ms in out.items()} == \
        {"a": [(0, "r52"), (10, "i10"), (30, "r50.9")], "b": [(10, None)]}
    assert sum(len(v) for v in _mentions(rows, {1: "a", 2: "b"}, {"DIAGNOSTICO"}).values()) == 5
