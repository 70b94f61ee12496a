"""Build the benchmark report from the runs in storage.

RUNS_URI is the storage root that holds runs/ (the --out of `lssed train` / `lssed tune`) or
that runs/ directory itself; a local path or s3://bucket/prefix. The report (index.html with
images embedded, report.md, tables/*.csv, figures/*.png, report.json) goes to --out DIR.
Runs still in progress or failed are listed as missing; the report is built from the rest.
"""

from __future__ import annotations

import argparse

from lssed.cliutil import add_config_arguments, config_from_args


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("runs_uri", metavar="RUNS_URI", help="storage root holding runs/, or runs/ itself")
    parser.add_argument("--out", required=True, metavar="DIR", help="local directory for the report")
    add_config_arguments(parser)


def main(args: argparse.Namespace) -> int:
    from lssed.report.build import build_report

    cfg = config_from_args(args)
    report = build_report(args.runs_uri, args.out, storage_cfg=cfg.storage)
    print(f"report: {report.index_html}")
    print(f"markdown: {report.report_md}")
    print(f"runs: {report.runs}; tables: {len(report.csvs)}; figures: {len(report.pngs)}")
    if report.missing:
        print(f"missing ({len(report.missing)}):")
        for m in report.missing:
            print(f"  - {m}")
    return 0
