"""Logging setup, called only by ``cli.py`` and ``workflows/`` (library code just logs)."""

from __future__ import annotations

import logging
import os


def configure_logging(verbose: int = 0) -> None:
    level = logging.DEBUG if verbose > 1 else logging.INFO
    logging.basicConfig(
        level=level,
        format="%(asctime)s %(levelname)-7s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
    )
    # Ray and friends are chatty at INFO
    for noisy in ("ray", "urllib3", "botocore", "s3fs", "numba", "matplotlib", "fsspec"):
        logging.getLogger(noisy).setLevel(logging.WARNING if verbose < 2 else logging.INFO)
    os.environ.setdefault("RAY_DEDUP_LOGS", "1")
