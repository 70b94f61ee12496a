"""Build the benchmark report from the runs in storage.

RUNS_URI is the storage root that holds runs/ (the --out of `lssed train` / `lssed tune`) or
that runs/ directory itself; a local path or s3://bucket/prefix; default storage.root. The
report (index.html with images embedded, report.md, tables/*.csv, figures/*.png,
report.json) goes to --out, a local directory or s3://... (default report.out_dir, else
<RUNS_URI>/report, beside runs/ as `lssed run` writes it). Runs still in progress or failed
are listed as missing; the report is built from the rest.
"""

from __future__ import annotations

import argparse

from lssed.cliutil import add_config_arguments, config_from_args


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("runs_uri", metavar="RUNS_URI", nargs="?", default=None,
                        help="storage root holding runs/, or runs/ itself; default storage.root")
    # dest "dest": this --out is where the report goes, not the storage root
    parser.add_argument("--out", dest="dest", default=None, metavar="URI",
                        help="report directory, local or s3://; default report.out_dir, else RUNS_URI/report")
    add_config_arguments(parser)


def report_destination(runs_uri: str, out_dir: str | None) -> str:
    """``out_dir``, else ``report/`` beside ``runs/`` under ``runs_uri``."""
    from lssed.report.publish import default_report_uri

    if out_dir:
        return out_dir
    root = runs_uri.rstrip("/")
    return default_report_uri(root[: -len("/runs")] if root.endswith("/runs") else root)


def main(args: argparse.Namespace) -> int:
    from lssed.report.publish import publish_report
    from lssed.validate import validate_config

    cfg = validate_config(config_from_args(args), "report")
    runs_uri = args.runs_uri or cfg.storage.root
    published = publish_report(runs_uri, report_destination(runs_uri, args.dest or cfg.report.out_dir),
                               storage_cfg=cfg.storage)
    report = published.report
    print(f"report: {published.index_uri}")
    print(f"written to: {published.uri} (index.html, report.md, report.json, tables/, figures/)")
    print(f"runs: {report.runs}; tables: {len(report.csvs)}; figures: {len(report.pngs)}")
    if report.missing:
        print(f"missing ({len(report.missing)}):")
        for m in report.missing:
            print(f"  - {m}")
    return 0
