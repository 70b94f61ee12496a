"""train.local_shuffle_buffer_size, prefetch_batches, checkpoints_to_keep: defaults, checks, run names."""

from __future__ import annotations

import pytest

from lssed.config import ConfigError, TrainConfig
from lssed.train.stage import default_run_name
from lssed.train.trainer import shuffle_buffer_rows
from lssed.validate import validate_config

from .conftest import small_config

DIGEST = "abcdef0123456789"


def test_defaults_are_the_former_constants():
    tc = TrainConfig()
    assert (tc.local_shuffle_buffer_size, tc.prefetch_batches, tc.checkpoints_to_keep) == (None, 2, 2)
    # unset: four per-worker batches, at least 256 rows
    assert shuffle_buffer_rows(None, 8) == 256
    assert shuffle_buffer_rows(None, 128) == 512
    assert shuffle_buffer_rows(100, 8) == 100
    assert shuffle_buffer_rows(0, 8) is None  # Ray's "no local shuffle"


@pytest.mark.parametrize("override,key", [
    ("train.local_shuffle_buffer_size=-1", "local_shuffle_buffer_size"),
    ("train.prefetch_batches=-1", "prefetch_batches"),
    ("train.checkpoints_to_keep=0", "checkpoints_to_keep"),
])
def test_bad_values_are_refused_before_ray_starts(override, key):
    """The one settings check (lssed.validate, which make_trainer calls) covers the ingest keys."""
    with pytest.raises(ConfigError, match=key):
        validate_config(small_config(override), "train", models=["resnet18"])


def test_only_the_shuffle_buffer_renames_runs():
    name = default_run_name(small_config(), "resnet18", DIGEST)
    assert default_run_name(small_config("train.prefetch_batches=8"), "resnet18", DIGEST) == name
    assert default_run_name(small_config("train.checkpoints_to_keep=5"), "resnet18", DIGEST) == name
    assert default_run_name(small_config("train.local_shuffle_buffer_size=64"), "resnet18", DIGEST) != name
