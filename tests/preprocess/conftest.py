"""Fixtures of the preprocess tests: real media files written with PyAV, and manifests over them."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, os.path.dirname(__file__))

import media  # noqa: E402


@pytest.fixture(scope="session")
def media_set(tmp_path_factory) -> dict[str, Path]:
    return media.make_media_set(tmp_path_factory.mktemp("media"))


@pytest.fixture(scope="session")
def mixed_manifest(media_set, tmp_path_factory) -> tuple[Path, dict[str, str], int]:
    """(manifest path, {utt_id: expected quarantine reason}, number of rows)."""
    rows, expected = media.manifest_rows(media_set)
    path = media.write_manifest(tmp_path_factory.mktemp("manifest") / "manifest.parquet", rows)
    return path, expected, len(rows)
