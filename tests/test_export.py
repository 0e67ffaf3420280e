"""jobs/export_duckdb.py: allow-listed, de-identified tables to DuckDB / Parquet, read back without Spark."""

from __future__ import annotations

import json

import duckdb
import pytest

from jobs import export_duckdb
from tests.test_catalog_fixtures import PHI_NAME, small_lake  # noqa: F401 - shared session fixture


def export(small_lake, out, *args):
    export_duckdb.main(["--env", "test", "--lake", str(small_lake.root), "--out", str(out), *args])


def test_duckdb_export_has_the_deid_tables_and_answers_a_query(small_lake, tmp_path, capsys):
    out = tmp_path / "lake.duckdb"
    export(small_lake, out, "--batch-rows", "7")  # several Arrow batches per table
    con = duckdb.connect(str(out), read_only=True)
    tables = {r[0] for r in con.execute("SELECT table_name FROM information_schema.tables").fetchall()}
    assert {"note", "note_nlp", "note_code", "concept", "concept_ancestor", "export_info"} <= tables
    assert not tables & {"phi_span", "note_quarantine", "note_deid", "person", "gazetteer"}
    rows = small_lake.rows
    assert con.execute("SELECT count(*) FROM note_nlp").fetchone()[0] == len(rows["note_nlp"])
    # `note` is note_deid: its text is the de-identified one, the original PHI never appears
    texts = [t for (t,) in con.execute("SELECT note_text FROM note").fetchall()]
    assert sorted(texts) == sorted(r["note_text"] for r in rows["note_deid"])
    assert not any(PHI_NAME in t for t in texts)
    top = con.execute("""SELECT vocabulary_id, count(*) FROM note_nlp JOIN note USING (note_id)
                         GROUP BY 1 ORDER BY 1""").fetchall()
    expected = {}
    for r in rows["note_nlp"]:
        expected[r["vocabulary_id"]] = expected.get(r["vocabulary_id"], 0) + 1
    assert dict(top) == expected
    when = con.execute("SELECT note_datetime FROM note WHERE note_id = ?", [rows["note_deid"][0]["note_id"]]).fetchone()[0]
    assert when == rows["note_deid"][0]["note_datetime"]  # wall clock kept, no host time-zone shift
    info = dict(con.execute("SELECT table_name, delta_version FROM export_info").fetchall())
    assert info["note_nlp"] == max(small_lake.note_nlp_versions) and info["note"] == 0
    con.close()
    assert '"note_nlp": %d' % len(rows["note_nlp"]) in capsys.readouterr().out


def test_parquet_export_redacts_text_and_can_drop_note_text(small_lake, tmp_path):
    out = tmp_path / "extract"
    export(small_lake, out, "--format", "parquet", "--redact-text", "--no-note-text")
    assert sorted(p.name for p in out.iterdir()) == sorted(
        [f"{t}.parquet" for t in export_duckdb.EXPORT_TABLES.values()] + ["export_info.json"])
    con = duckdb.connect()
    nlp = str(out / "note_nlp.parquet")
    blanks = con.execute(f"SELECT count(*) FILTER (snippet = '' AND lexical_variant = ''), count(*) "
                         f"FROM read_parquet('{nlp}')").fetchone()
    assert blanks[0] == blanks[1] == len(small_lake.rows["note_nlp"])
    cols = [r[0] for r in con.execute(f"DESCRIBE SELECT * FROM read_parquet('{out / 'note.parquet'}')").fetchall()]
    assert "note_text" not in cols and "note_id" in cols
    info = json.loads((out / "export_info.json").read_text())
    assert all(i["redact_text"] and not i["note_text"] for i in info)


def test_export_refuses_to_clobber_without_overwrite(small_lake, tmp_path, capsys):
    out = tmp_path / "x.duckdb"
    out.write_text("not mine")
    with pytest.raises(SystemExit) as exc:
        export(small_lake, out)
    assert exc.value.code == 2 and "--overwrite" in capsys.readouterr().err
    folder = tmp_path / "home"
    (folder / "precious").mkdir(parents=True)
    with pytest.raises(SystemExit):
        export(small_lake, folder, "--format", "parquet", "--overwrite")
    assert (folder / "precious").exists()


def test_allow_list_never_names_restricted_tables():
    assert not set(export_duckdb.EXPORT_TABLES) & set(export_duckdb.NEVER_EXPORTED)
    assert "note" not in export_duckdb.EXPORT_TABLES  # the original text; `note` in the export is note_deid
