"""Job sql: run SQL against the lake's catalog (omop.*, ops.*) and print the result or save it as CSV.

    python jobs/sql.py --query "SELECT vocabulary_id, count(*) FROM omop.note_nlp GROUP BY 1"
    python jobs/sql.py --file docs/queries/top_codes.sql --out top_codes.csv
    python jobs/sql.py --serve --port 15002      # Spark Connect server for remote notebooks / BI tools
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import json
import logging
import os
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run as a plain script from a checkout

from omegaconf import DictConfig  # noqa: E402
from pyspark.sql import DataFrame, SparkSession  # noqa: E402

from clinlake import catalog  # noqa: E402
from clinlake.cli import base_parser, run_job  # noqa: E402
from clinlake.errors import UserError  # noqa: E402

log = logging.getLogger("clinlake.sql")
CONNECT_CLASS = "org.apache.spark.sql.connect.service.SparkConnectServer"


def split_statements(text: str) -> list[str]:
    """Split a SQL script on `;` outside quotes, backticks and `--` / `/* */` comments; drops empty statements."""
    out, buf, i, quote = [], [], 0, None
    while i < len(text):
        ch, nxt = text[i], text[i + 1] if i + 1 < len(text) else ""
        if quote:
            buf.append(ch)
            if ch == "\\" and quote != "`":  # Spark string literals take backslash escapes
                buf.append(nxt)
                i += 1
            elif ch == quote:
                quote = None
        elif ch in "'\"`":
            quote = ch
            buf.append(ch)
        elif ch == "-" and nxt == "-":
            end = text.find("\n", i)
            i = len(text) if end < 0 else end
            buf.append("\n")
            continue
        elif ch == "/" and nxt == "*":
            end = text.find("*/", i + 2)
            i = len(text) if end < 0 else end + 2
            buf.append(" ")
            continue
        elif ch == ";":
            out.append("".join(buf))
            buf = []
        else:
            buf.append(ch)
        i += 1
    out.append("".join(buf))
    return [s.strip() for s in out if s.strip()]


def one_line(exc: Exception) -> str:
    """First meaningful line of a Spark error (parse errors carry a multi-line caret diagram)."""
    text = str(getattr(exc, "desc", None) or exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def run_sql(spark: SparkSession, text: str) -> DataFrame | None:
    """Run every statement of a script; returns the last statement's result (None for an empty script)."""
    from pyspark.errors import PySparkException
    from py4j.protocol import Py4JJavaError

    result = None
    for n, statement in enumerate(split_statements(text), start=1):
        try:
            result = spark.sql(statement)
        except (PySparkException, Py4JJavaError) as exc:
            where = f"statement {n}: " if n > 1 else ""
            raise UserError(f"{where}{one_line(exc)}") from exc
    return result


def _cell(value: object) -> object:
    """CSV cell: ISO dates, JSON for nested values, the rest as is."""
    if isinstance(value, (dt.date, dt.datetime)):
        return value.isoformat()
    if isinstance(value, (list, dict)) or hasattr(value, "asDict"):
        return json.dumps(value.asDict(recursive=True) if hasattr(value, "asDict") else value, default=str)
    return value


def write_csv(df: DataFrame, path: str) -> int:
    """Stream a result to one CSV file a partition at a time (never the whole result in the driver); rows written."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(target.name + ".partial")
    n = 0
    with open(tmp, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(df.columns)
        for row in df.toLocalIterator(prefetchPartitions=False):
            writer.writerow([_cell(v) for v in row])
            n += 1
    os.replace(tmp, target)  # a failed query leaves no half-written file behind
    return n


def connect_command(cfg: DictConfig, port: int, connect_jar: str | None = None) -> list[str]:
    """spark-submit command line for a Spark Connect server with the project's jars, confs and catalog."""
    import pyspark

    from clinlake.config import path_of, spark_settings
    from clinlake.spark import jar_list

    jars = jar_list(cfg).split(",")
    if not connect_jar:  # make setup puts it apart from the batch classpath
        found = sorted((Path(path_of(cfg, cfg.spark.jars_dir)) / "connect").glob("spark-connect_*.jar"))
        connect_jar = str(found[0]) if found else None
    if connect_jar:
        jars.append(str(Path(connect_jar).resolve()))
    if not any(Path(j).name.startswith("spark-connect_") for j in jars):
        raise UserError("Spark Connect jar not found in jars/: run `make setup` (jvm/connect/pom.xml) "
                        ", or pass --connect-jar")
    home = Path(pyspark.__file__).resolve().parent
    cmd = [str(home / "bin" / "spark-submit"), "--master", str(cfg.spark.master), "--name", "clinlake-connect"]
    confs = spark_settings(cfg.spark.get("conf") or {})
    confs.update(catalog.session_conf(cfg))
    confs["spark.connect.grpc.binding.port"] = str(port)
    for key, value in confs.items():
        cmd += ["--conf", f"{key}={value}"]
    return cmd + ["--jars", ",".join(jars), "--class", CONNECT_CLASS, "spark-internal"]


def serve(cfg: DictConfig, args: argparse.Namespace) -> dict:
    """Run a Spark Connect server in the foreground until interrupted (Ctrl-C / SIGTERM)."""
    import pyspark

    cmd = connect_command(cfg, args.port, args.connect_jar)
    env = dict(os.environ, SPARK_HOME=str(Path(pyspark.__file__).resolve().parent))
    # The server keeps client artifacts under its working directory: keep them out of the checkout.
    workdir = tempfile.mkdtemp(prefix="clinlake-connect-")
    print(f"sql: Spark Connect server on port {args.port} (sc://HOST:{args.port}); Ctrl-C stops it", flush=True)
    proc = subprocess.Popen(cmd, cwd=workdir, env=env)
    try:
        rc = proc.wait()
    except KeyboardInterrupt:
        proc.terminate()
        rc = proc.wait()
    return {"connect_server_exit": rc}


def run(spark: SparkSession | None, cfg: DictConfig, args: argparse.Namespace) -> dict:
    """Register the lake's tables, run the SQL, print a bounded table or write CSV."""
    if args.serve:
        return serve(cfg, args)
    if args.file:
        try:
            text = Path(args.file).read_text(encoding="utf-8")
        except OSError as exc:
            raise UserError(f"cannot read {args.file}: {exc.strerror}") from exc
    else:
        text = args.query
    registered = {} if args.no_register else catalog.register_all(spark, cfg)
    df = run_sql(spark, text)
    summary: dict = {"tables_registered": len(registered)}
    if df is None:
        raise UserError("no SQL statement given")
    if args.out:
        try:
            summary["rows_written"] = write_csv(df, args.out)
        except Exception as exc:  # noqa: BLE001 - analysis errors surface when rows are pulled
            raise UserError(one_line(exc)) from exc
        summary["out"] = args.out
        return summary
    try:
        rows = df.limit(args.max_rows + 1).collect()
    except Exception as exc:  # noqa: BLE001
        raise UserError(one_line(exc)) from exc
    print(format_table(df.columns, rows[: args.max_rows], args.width))
    if len(rows) > args.max_rows:
        print(f"(showing the first {args.max_rows} rows; --max-rows N for more, --out FILE.csv for all)")
    summary["rows_shown"] = min(len(rows), args.max_rows)
    return summary


def format_table(columns: list[str], rows: list, width: int = 40) -> str:
    """Plain-text table: one header, one rule, cells cut at `width` characters."""
    def cut(v: object) -> str:
        s = "NULL" if v is None else str(_cell(v)).replace("\n", " ")
        return s if len(s) <= width else s[: width - 1] + "…"

    cells = [[cut(v) for v in r] for r in rows]
    widths = [max([len(c)] + [len(r[i]) for r in cells]) for i, c in enumerate(columns)]
    line = lambda vals: " | ".join(v.ljust(w) for v, w in zip(vals, widths)).rstrip()  # noqa: E731
    return "\n".join([line(columns), "-+-".join("-" * w for w in widths)] + [line(r) for r in cells])


def main(argv: list[str] | None = None) -> None:
    """CLI entry point."""
    parser = base_parser(__doc__.splitlines()[0])
    what = parser.add_mutually_exclusive_group(required=True)
    what.add_argument("--query", help="SQL text (several statements separated by ';': the last one's result)")
    what.add_argument("--file", help="file holding the SQL")
    what.add_argument("--serve", action="store_true", help="run a Spark Connect server instead of a query")
    parser.add_argument("--out", help="write the whole result to this CSV file instead of printing")
    parser.add_argument("--max-rows", type=int, default=50, help="rows printed (default 50)")
    parser.add_argument("--width", type=int, default=40, help="printed cell width (default 40)")
    parser.add_argument("--no-register", action="store_true", help="use the catalog as is (skip register_all)")
    parser.add_argument("--port", type=int, default=15002, help="Spark Connect port (with --serve)")
    parser.add_argument("--connect-jar", help="spark-connect_2.12 jar, when it is not in jars/ (with --serve)")
    args = parser.parse_args(argv)
    run_job("sql", args, run, needs_spark=not args.serve)


if __name__ == "__main__":
    main()
