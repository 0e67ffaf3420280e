"""Merge several sites' study packages into network results: sums, flagged lower bounds, per-site columns, a chart."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run as a plain script from a checkout

from clinlake.errors import UserError  # noqa: E402
from clinlake.study.merge import merge_packages  # noqa: E402


def main(argv: list[str] | None = None) -> None:
    """CLI entry point: one-line error and exit 2 on bad input."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--packages", nargs="+", required=True, metavar="DIR", help="site package folders")
    parser.add_argument("--out", required=True, help="folder for the network results")
    parser.add_argument("--no-chart", action="store_true", help="skip the PNG chart")
    args = parser.parse_args(argv)
    try:
        manifest = merge_packages(args.packages, args.out, chart=not args.no_chart)
    except UserError as exc:
        print(f"merge_sites: error: {exc}", file=sys.stderr)
        sys.exit(2)
    summary = {"study": manifest["study_id"], "sites": [s["site_id"] for s in manifest["sites"]],
               "outputs": {o["name"]: {"rows": o["rows"], "lower_bounds": o["lower_bounds"]} for o in manifest["outputs"]},
               "out": str(Path(args.out).resolve())}
    print("merge_sites: " + json.dumps(summary, ensure_ascii=False))


if __name__ == "__main__":
    main()
