"""Build the report into a local directory or an ``s3://`` destination.

:func:`lssed.report.build.build_report` writes into a local directory; for S3 the report is
built in a temporary directory and every file is uploaded under the destination, keeping its
relative path (index.html embeds its images, so the page works from the bucket as it is).
"""

from __future__ import annotations

import logging
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lssed.report.build import Report, build_report
from lssed.storage import storage_from_config

log = logging.getLogger(__name__)

REPORT_DIR = "report"


@dataclass(frozen=True)
class PublishedReport:
    report: Report  # paths inside it are local (a temporary directory, gone, for S3)
    uri: str  # the destination: a local directory or s3://...
    index_uri: str  # where index.html lives


def default_report_uri(storage_root: str) -> str:
    """``<storage root>/report``, beside ``runs/``."""
    return storage_root.rstrip("/") + "/" + REPORT_DIR


def publish_report(runs_uri: str, dest_uri: str, *, storage_cfg: Any) -> PublishedReport:
    """The report of the runs under ``runs_uri`` (a storage root or its ``runs/``), written to ``dest_uri``."""
    dest = storage_from_config(storage_cfg, dest_uri)
    if not dest.is_s3:
        report = build_report(runs_uri, dest.root, storage_cfg=storage_cfg)
        return PublishedReport(report, dest.root, str(report.index_html))
    with tempfile.TemporaryDirectory(prefix="lssed-report-") as tmp:
        report = build_report(runs_uri, tmp, storage_cfg=storage_cfg)
        files = [p for p in Path(tmp).rglob("*") if p.is_file()]
        for p in files:
            dest.write_bytes(p.read_bytes(), p.relative_to(tmp).as_posix())
        index_uri = dest.join_uri(Path(report.index_html).relative_to(tmp).as_posix())
    log.info("report: uploaded %d files to %s", len(files), dest.uri)
    return PublishedReport(report, dest.uri, index_uri)
