"""Fixtures for the training tests: a tiny synthetic feature set in the shards' exact layout."""

from __future__ import annotations

import pytest

from lssed.config import FeatureConfig, load_config
from lssed.storage import Storage

# 64 mel bands, 0.6-1.6 s utterances (20-50 frames), crops of 32 frames: seconds per run on CPU.
SMALL_FEATURES = FeatureConfig(n_mels=64)
SMALL_OVERRIDES = [
    "features.n_mels=64",
    "train.model=resnet18",
    "train.epochs=3",
    "train.batch_size=8",
    "train.eval_batch_size=16",
    "train.lr=0.005",
    "train.crop_frames=32",
    "train.lr_step_epochs=20",
    "train.cpus_per_worker=1",
    "train.max_failures=2",
]


def small_config(*extra: str):
    return load_config(None, [*SMALL_OVERRIDES, *extra])


@pytest.fixture(scope="session")
def synthetic_features(tmp_path_factory) -> str:
    """URI of ``<tmp>/features/synthetic0001`` (6 speakers x 4 classes x 4 + unlabelled rows)."""
    from lssed.train.synthetic import write_synthetic_features

    root = Storage(str(tmp_path_factory.mktemp("synthetic")))
    return write_synthetic_features(root, features=SMALL_FEATURES)
