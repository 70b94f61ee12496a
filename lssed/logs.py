"""Logging setup, called only by ``cli.py`` (and so ``workflows/``); library code just logs."""

from __future__ import annotations

import logging
import os

# Ray and friends are chatty at INFO: they stay at WARNING unless asked for with -vv.
NOISY = ("ray", "urllib3", "botocore", "s3fs", "numba", "matplotlib", "fsspec", "aiobotocore", "filelock")


def level_for(verbosity: int) -> int:
    """0 (default): INFO; 1 (-v) or more: DEBUG; -1 (-q) or less: WARNING."""
    if verbosity >= 1:
        return logging.DEBUG
    return logging.INFO if verbosity == 0 else logging.WARNING


def configure_logging(verbosity: int = 0) -> None:
    """Root logging at :func:`level_for` ``(verbosity)``; third-party loggers at WARNING below -vv."""
    level = level_for(verbosity)
    # No-op for the handlers when the root logger has some (a second main() in one process, a
    # test's log capture): only the level changes then.
    logging.basicConfig(format="%(asctime)s %(levelname)-7s %(name)s: %(message)s", datefmt="%H:%M:%S")
    logging.getLogger().setLevel(level)
    for noisy in NOISY:
        logging.getLogger(noisy).setLevel(logging.INFO if verbosity >= 2 else max(level, logging.WARNING))
    os.environ.setdefault("RAY_DEDUP_LOGS", "1")
