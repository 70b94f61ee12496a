"""The trainer on real preprocessed demo shards (engineer A's corpus through engineer C's stage)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lssed.config import load_config
from lssed.features import logmel
from lssed.train.data import describe_features, shard_tables, utterances

pytestmark = [pytest.mark.ray, pytest.mark.timeout(900)]


def test_train_time_logmel_equals_preprocess_logmel(demo_features):
    """Same settings: log-mel recomputed from the stored waveform == the stage's log-mel.

    The stage computes in numpy with a float64 FFT (lssed.features_np), the trainer in torch with
    a float32 one; the quietest bins' log(mel + 1e-6) carry the float32 FFT's error (measured up
    to 4.1e-4 on the demo corpus; typical bins agree to 1e-6)."""
    cfg = load_config()
    src = describe_features(cfg, demo_features)
    assert not src.recompute and src.n_mels == 128
    assert sum(src.split_counts.values()) + src.rows_unlabelled == src.rows_total
    assert min(src.split_counts.values()) > 0 and all(c > 0 for c in src.class_counts)
    worst = 0.0
    for split in ("train", "val", "test"):
        table = shard_tables(src, split, columns=["utt_id", "label4", "split", "n_frames", "logmel", "waveform"])
        for stored, wave in zip(utterances(table, n_mels=128, recompute=False),
                                utterances(table, n_mels=128, recompute=True)):
            assert stored.utt_id == wave.utt_id
            again = logmel(torch.from_numpy(wave.data), cfg.features).numpy()
            assert again.shape == stored.data.shape
            worst = max(worst, float(np.max(np.abs(again - stored.data))))
    assert worst <= 1e-3, f"max |recomputed - stored| = {worst:.2e}"
