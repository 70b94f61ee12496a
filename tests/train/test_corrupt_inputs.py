"""Corrupt inputs to training and evaluation: each is a clear error naming the file, never a hang or a
silent wrong result. No Ray needed: the checks run before any Ray work."""

from __future__ import annotations

import io
import json
import shutil
from pathlib import Path

import pytest
import torch

from lssed.storage import Storage, StorageError
from lssed.train.data import describe_features
from lssed.train.outputs import BEST_MODEL_FILE, read_best_state
from lssed.train.trainer import CHECKPOINT_DIR, STATE_FILE, latest_stored_state

from .conftest import SMALL_FEATURES, small_config


@pytest.fixture
def features(tmp_path: Path) -> Path:
    from lssed.train.synthetic import write_synthetic_features

    uri = write_synthetic_features(Storage(str(tmp_path / "root")), features=SMALL_FEATURES, rows_per_shard=16)
    return Path(uri)


def _shards(features: Path) -> list[Path]:
    return sorted((features / "shards").glob("*.parquet"))


def test_intact_features_are_described(features):
    source = describe_features(small_config(), str(features))
    assert source.rows_total == json.loads((features / "_SUCCESS.json").read_text())["counts"]["rows_out"]


def test_a_truncated_shard_is_named(features):
    victim = _shards(features)[1]
    data = victim.read_bytes()
    victim.write_bytes(data[: len(data) // 2])
    with pytest.raises(StorageError, match=victim.name):
        describe_features(small_config(), str(features))


def test_a_file_that_is_not_parquet_is_named(features):
    victim = _shards(features)[0]
    victim.write_text("utt_id,label\nx,angry\n")
    with pytest.raises(StorageError, match=victim.name):
        describe_features(small_config(), str(features))


@pytest.mark.parametrize("change", ["lost", "added"])
def test_a_success_marker_that_disagrees_with_the_shards_is_named(features, change):
    shards = _shards(features)
    if change == "lost":
        shards[-1].unlink()
    else:
        shutil.copy(shards[0], shards[0].with_name("part-99999.parquet"))
    with pytest.raises(StorageError, match=r"_SUCCESS\.json commits \d+ shard rows but the shards hold \d+"):
        describe_features(small_config(), str(features))


def test_the_cli_names_the_corrupt_shard_and_exits_2(features, tmp_path, caplog):
    from lssed.cli import main

    victim = _shards(features)[0]
    victim.write_bytes(victim.read_bytes()[:100])
    rc = main(["train", str(features), "--model", "resnet18", "--out", str(tmp_path / "out"),
               *[a for o in ("features.n_mels=64", "train.epochs=1") for a in ("--set", o)]])
    assert rc == 2
    assert victim.name in caplog.text


def test_selected_weights_cut_short_are_named(tmp_path):
    run = Storage(str(tmp_path / "run"))
    buf = io.BytesIO()
    torch.save({"fc.weight": torch.zeros(4, 8)}, buf)
    run.write_bytes(buf.getvalue()[:-40], BEST_MODEL_FILE)
    with pytest.raises(StorageError, match=BEST_MODEL_FILE):
        read_best_state(run)


def test_a_checkpoint_cut_short_falls_back_to_the_one_before_and_says_so(tmp_path, caplog):
    """Resume takes the newest checkpoint that loads; a torn newer one is skipped with a warning
    that names it (the run then repeats that epoch: nothing is silently wrong)."""
    run = Storage(str(tmp_path / "run"))
    for epoch in (1, 2):
        buf = io.BytesIO()
        torch.save({"epoch": epoch, "model": {"w": torch.full((3,), float(epoch))}}, buf)
        data = buf.getvalue() if epoch == 1 else buf.getvalue()[: len(buf.getvalue()) // 2]
        run.write_bytes(data, CHECKPOINT_DIR.format(epoch), STATE_FILE)
    state = latest_stored_state(run)
    assert state is not None and state["epoch"] == 1
    assert CHECKPOINT_DIR.format(2) in caplog.text
