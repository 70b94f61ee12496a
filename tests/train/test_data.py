"""Shards -> splits, crops, pads, train-time features (pure functions, no Ray)."""

from __future__ import annotations

import contextlib
import io

import numpy as np
import pyarrow as pa
import pytest
import torch

from lssed.config import ConfigError, FeatureConfig
from lssed.features import logmel
from lssed.storage import Storage, StorageError
from lssed.train.data import (
    collate_logmel_crops,
    collate_wave_crops,
    crop_samples_for,
    describe_features,
    shard_tables,
    silence_value,
    utterances,
)

from .conftest import small_config


def test_describe_features_counts_and_recompute(synthetic_features):
    src = describe_features(small_config(), synthetic_features)
    # 6 speakers x (4 classes x 4 + 2 unlabelled): 4 train speakers, 1 val, 1 test
    assert src.rows_total == 6 * 18
    assert src.rows_unlabelled == 12
    assert src.split_counts == {"train": 64, "val": 16, "test": 16}
    assert src.class_counts == (16, 16, 16, 16)
    assert src.train_corpora == ("synthetic",)
    assert not src.recompute
    assert sum(src.split_counts.values()) + src.rows_unlabelled == src.rows_total
    other = describe_features(small_config("features.win_length=400"), synthetic_features)
    assert other.recompute and other.features["win_length"] == 400
    assert "waveform" in other.columns and "logmel" not in other.columns


def test_describe_features_errors_say_what_to_do(tmp_path, synthetic_features):
    with pytest.raises(StorageError, match="lssed preprocess"):
        describe_features(small_config(), str(tmp_path / "nothing"))
    # imported features carry no waveform: asking for other STFT settings must fail early
    src = describe_features(small_config(), synthetic_features)
    import pyarrow.dataset as pads

    table = pads.dataset(src.shards_path, format="parquet").to_table().drop_columns(["waveform"])
    import pyarrow.parquet as pq

    root = Storage(str(tmp_path / "imported"))
    root.write_json({"config": {"features": src.stored_features}}, "_SUCCESS.json")
    root.makedirs("shards")
    pq.write_table(table.append_column("waveform", pa.nulls(table.num_rows, pa.list_(pa.int16()))),
                   root.path("shards", "a.parquet"))
    with pytest.raises(ConfigError, match="no waveform"):
        describe_features(small_config("features.win_length=400"), root.uri)


def _rows(lengths, n_mels=3):
    mels = [np.arange(n_mels * t, dtype=np.float32) for t in lengths]
    return pa.table({
        "utt_id": [f"u{i}" for i in range(len(lengths))],
        "label4": pa.array([i % 4 for i in range(len(lengths))], pa.int8()),
        "split": ["train"] * len(lengths),
        "n_frames": pa.array(lengths, pa.int32()),
        "logmel": pa.array(mels, pa.list_(pa.float32())),
        "waveform": pa.array([np.arange(t * 10, dtype=np.int16) for t in lengths], pa.list_(pa.int16())),
    })


def test_logmel_crop_and_pad():
    table = _rows([10, 4, 6])
    out = collate_logmel_crops(table, n_mels=3, crop_frames=6, seed=0, epoch=1, pad_value=-9.0)
    x, y = out["x"], out["y"]
    assert x.shape == (3, 1, 3, 6) and x.dtype == np.float32
    assert y.tolist() == [0, 1, 2]
    # a longer utterance: a contiguous window of its own frames
    full = np.arange(30, dtype=np.float32).reshape(3, 10)
    start = int(x[0, 0, 0, 0])
    np.testing.assert_array_equal(x[0, 0], full[:, start:start + 6])
    # a shorter one: all its frames, then silence padding
    np.testing.assert_array_equal(x[1, 0, :, :4], np.arange(12, dtype=np.float32).reshape(3, 4))
    assert np.all(x[1, 0, :, 4:] == -9.0)
    # exact length: untouched
    np.testing.assert_array_equal(x[2, 0], np.arange(18, dtype=np.float32).reshape(3, 6))
    # the real frames of each crop, which the models keep out of their pooling
    assert out["lengths"].tolist() == [6, 4, 6]


def test_crops_are_seeded_and_vary_by_epoch():
    table = _rows([200] * 16)
    a = collate_logmel_crops(table, n_mels=3, crop_frames=8, seed=1, epoch=1, pad_value=0.0)["x"]
    b = collate_logmel_crops(table, n_mels=3, crop_frames=8, seed=1, epoch=1, pad_value=0.0)["x"]
    c = collate_logmel_crops(table, n_mels=3, crop_frames=8, seed=1, epoch=2, pad_value=0.0)["x"]
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    # independent of the order rows arrive in (Ray Data may reorder across workers)
    rev = collate_logmel_crops(table.take(list(range(15, -1, -1))), n_mels=3, crop_frames=8, seed=1, epoch=1,
                               pad_value=0.0)["x"]
    np.testing.assert_array_equal(rev[::-1], a)


def test_wave_crops_give_exactly_crop_frames():
    hop = 512
    samples = crop_samples_for(32, hop)
    table = _rows([2000, 3])  # 20000 and 30 samples
    out = collate_wave_crops(table, crop_samples=samples, seed=0, epoch=1, hop_length=hop)
    assert out["wave"].shape == (2, samples)
    assert np.all(out["wave"][1, 30:] == 0.0)  # zero padded
    # 30 real samples: the one frame a centred STFT gives them alone; the long one: all 32
    assert out["lengths"].tolist() == [32, 1]
    feat = logmel(torch.from_numpy(out["wave"]), FeatureConfig(n_mels=64))
    assert feat.shape == (2, 64, 32)


def test_silence_value_is_logmel_of_zeros():
    cfg = FeatureConfig(n_mels=64)
    zeros = logmel(torch.zeros(4096), cfg)
    assert float(zeros.max()) == pytest.approx(silence_value({"log": "log", "log_offset": cfg.log_offset}), abs=1e-5)


def test_train_time_features_equal_stored(synthetic_features):
    """Recomputed log-mel from the stored waveform == the stored log-mel (same settings)."""
    src = describe_features(small_config(), synthetic_features)
    table = shard_tables(src, "test", columns=["utt_id", "label4", "split", "n_frames", "logmel", "waveform"])
    stored = list(utterances(table, n_mels=64, recompute=False))
    waves = list(utterances(table, n_mels=64, recompute=True))
    assert len(stored) == len(waves) == 16
    for s, w in zip(stored, waves):
        again = logmel(torch.from_numpy(w.data), FeatureConfig(n_mels=64)).numpy()
        assert again.shape == s.data.shape
        np.testing.assert_allclose(again, s.data, atol=1e-4, rtol=0)


@pytest.mark.ray
def test_split_datasets_read_one_block_per_shard_file(ray_session, synthetic_features):
    """Each shard file is one read block (no V2 footer-actor pool per epoch) and the split is exact."""
    import ray.data

    from lssed.train.data import split_datasets

    src = describe_features(small_config(), synthetic_features)
    assert src.shard_files >= 2
    context = ray.data.DataContext.get_current()
    before = context.use_datasource_v2
    train = split_datasets(src, ("train",))["train"]
    assert context.use_datasource_v2 == before  # the global reader choice is left as it was
    with contextlib.redirect_stdout(io.StringIO()) as plan:
        train.explain()
    assert "ReadParquet" in plan.getvalue() and "ListFiles" not in plan.getvalue(), plan.getvalue()
    materialized = train.materialize()
    assert materialized.num_blocks() == src.shard_files
    rows = materialized.to_pandas()
    assert len(rows) == src.split_counts["train"]
    assert set(rows["split"]) == {"train"} and rows["label4"].notna().all()
    expected = shard_tables(src, "train")
    assert sorted(rows["utt_id"]) == expected.column("utt_id").to_pylist()
