"""jobs/sql.py: statement splitting, printing, CSV output, one-line errors (in the test session's JVM)."""

from __future__ import annotations

import csv
from collections import Counter

import pytest

from jobs import sql
from tests.test_catalog_fixtures import small_lake  # noqa: F401 - shared session fixture


@pytest.mark.parametrize("text,expected", [
    ("SELECT 1", ["SELECT 1"]),
    ("SELECT 1; SELECT 2;", ["SELECT 1", "SELECT 2"]),
    ("SELECT ';' AS a; SELECT `x;y` FROM t", ["SELECT ';' AS a", "SELECT `x;y` FROM t"]),
    ("SELECT 'it\\'s; fine'", ["SELECT 'it\\'s; fine'"]),
    ("-- a comment; with a semicolon\nSELECT 1 /* and ; here */ ;\n;", ["SELECT 1"]),
    ("  ;  ", []),
])
def test_split_statements(text, expected):
    assert sql.split_statements(text) == expected


def test_format_table_cuts_wide_cells_and_shows_nulls():
    out = sql.format_table(["a", "b"], [(1, None), (22, "x" * 50)], width=10).splitlines()
    assert out[0].split("|")[0].strip() == "a" and "NULL" in out[2]
    assert out[3].endswith("x" * 9 + "…") and len(out) == 4


def lake_args(small_lake, *args):
    return ["--env", "test", "--lake", str(small_lake.root), *args]


def test_query_prints_a_bounded_table(small_lake, capsys):
    sql.main(lake_args(small_lake, "--max-rows", "3", "--query",
                       "SELECT note_id, lexical_variant FROM omop.note_nlp ORDER BY note_nlp_id"))
    out = capsys.readouterr().out.splitlines()
    assert out[0].split("|")[0].strip() == "note_id"
    first = sorted(small_lake.rows["note_nlp"], key=lambda r: r["note_nlp_id"])[:3]
    assert [int(line.split("|")[0]) for line in out[2:5]] == [r["note_id"] for r in first]
    assert out[5].startswith("(showing the first 3 rows")
    assert '"rows_shown": 3' in out[-1]


def test_file_with_several_statements_writes_the_last_result_as_csv(small_lake, tmp_path):
    q = tmp_path / "q.sql"
    q.write_text("-- per vocabulary\nCREATE OR REPLACE TEMP VIEW v AS SELECT vocabulary_id FROM omop.note_nlp;\n"
                 "SELECT vocabulary_id, count(*) AS n FROM v GROUP BY vocabulary_id ORDER BY vocabulary_id;\n")
    out = tmp_path / "res" / "r.csv"
    sql.main(lake_args(small_lake, "--file", str(q), "--out", str(out)))
    with open(out, newline="") as fh:
        rows = list(csv.DictReader(fh))
    expected = Counter(r["vocabulary_id"] for r in small_lake.rows["note_nlp"])
    assert {r["vocabulary_id"]: int(r["n"]) for r in rows} == dict(expected)
    assert not list(out.parent.glob("*.partial"))


def test_csv_keeps_dates_as_iso(small_lake, tmp_path):
    out = tmp_path / "d.csv"
    sql.main(lake_args(small_lake, "--query", "SELECT note_id, note_date FROM omop.note_deid ORDER BY note_id",
                       "--out", str(out)))
    with open(out, newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert rows[0]["note_date"] == small_lake.rows["note_deid"][0]["note_date"].isoformat()
    assert len(rows) == len(small_lake.rows["note_deid"])


@pytest.mark.parametrize("query,needle", [
    ("SELEC oops", "syntax"),
    ("SELECT * FROM omop.no_such_table", "no_such_table"),
    ("SELECT no_such_column FROM omop.note_nlp", "no_such_column"),
])
def test_bad_sql_is_one_line_and_exit_2(small_lake, capsys, query, needle):
    with pytest.raises(SystemExit) as exc:
        sql.main(lake_args(small_lake, "--query", query))
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("sql: error:") and needle.lower() in err[0].lower()


def test_connect_command_carries_project_jars_confs_and_port(small_lake, tmp_path):
    from clinlake.config import load_config
    from clinlake.errors import UserError
    from clinlake.spark import jar_list

    cfg = load_config("test", [], lake=str(small_lake.root))
    from pathlib import Path

    from clinlake.config import path_of

    setup_jar = list((Path(path_of(cfg, cfg.spark.jars_dir)) / "connect").glob("spark-connect_*.jar"))
    if "spark-connect_" not in jar_list(cfg) and not setup_jar:  # without the jar, --serve says what to do
        with pytest.raises(UserError, match="spark-connect"):
            sql.connect_command(cfg, 15002, None)
    fake = tmp_path / "spark-connect_2.12-3.5.7.jar"
    fake.write_bytes(b"")
    cmd = sql.connect_command(cfg, 15999, str(fake))
    assert cmd[-3:] == ["--class", sql.CONNECT_CLASS, "spark-internal"]
    assert "spark.connect.grpc.binding.port=15999" in cmd and str(fake) in cmd[cmd.index("--jars") + 1]
    assert "spark.sql.extensions=io.delta.sql.DeltaSparkSessionExtension" in cmd
