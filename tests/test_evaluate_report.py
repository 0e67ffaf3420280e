"""scripts/eval_report.py: METRICS json folder -> markdown table with the shared-task state of the art."""

from __future__ import annotations

import json
from pathlib import Path

from tests.script_modules import load_script


def test_report_lists_headline_metrics_with_sota(tmp_path: Path) -> None:
    rep = load_script("eval_report")
    (tmp_path / "cantemist.json").write_text(json.dumps(
        {"ner_f1": 0.81234, "norm_f1": 0.7, "ner_precision": 0.9, "documents": 250, "notes_per_s": 12.5,
         "task": "ner", "corpus": "cantemist", "mode": "pipeline"}), encoding="utf-8")
    (tmp_path / "other.json").write_text("{\"not\": \"ours\"}", encoding="utf-8")
    out = tmp_path / "r" / "report.md"
    assert rep.main([str(tmp_path), "--out", str(out), "--command", "make eval"]) == 0
    text = out.read_text(encoding="utf-8")
    row = next(line for line in text.splitlines() if "| ner_f1 |" in line)
    assert "0.8123" in row and "0.870" in row and "| cantemist | cantemist |" in row
    assert "ner_precision" not in text and "| documents | 250 |" in text and "`make eval`" in text
    assert "ner_precision" in rep.render(rep.load_results(tmp_path), all_keys=True)


def test_report_refuses_an_empty_folder(tmp_path: Path) -> None:
    assert load_script("eval_report").main([str(tmp_path)]) == 2
