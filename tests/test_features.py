"""lssed.features.logmel (shared by preprocess and training) against librosa's reference numerics."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from lssed.config import FeatureConfig
from lssed.features import logmel, n_frames

librosa = pytest.importorskip("librosa")


def _signal(n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(n) / 16000
    return (0.3 * np.sin(2 * np.pi * 220 * t) + 0.05 * rng.standard_normal(n)).astype(np.float32)


@pytest.mark.parametrize("n_fft,hop", [(1024, 512), (400, 200)])
def test_mel_power_matches_librosa(n_fft, hop):
    x = _signal(16000 * 2 + 77)
    cfg = dataclasses.replace(FeatureConfig(), n_fft=n_fft, win_length=n_fft, hop_length=hop, log="none")
    got = logmel(torch.from_numpy(x), cfg).numpy()
    ref = librosa.feature.melspectrogram(y=x, sr=16000, n_fft=n_fft, hop_length=hop, n_mels=128)
    assert got.shape == ref.shape == (128, n_frames(x.size, hop))
    np.testing.assert_allclose(got, ref, rtol=1e-4, atol=1e-7 * ref.max())


def test_log_variants():
    x = torch.from_numpy(_signal(8000))
    power = logmel(x, dataclasses.replace(FeatureConfig(), log="none"))
    torch.testing.assert_close(logmel(x, FeatureConfig()), torch.log(power + 1e-6))
    torch.testing.assert_close(logmel(x, dataclasses.replace(FeatureConfig(), log="db")),
                               10 * torch.log10(torch.clamp(power, min=1e-10)))


@pytest.mark.parametrize("n", [1, 300, 1024, 1025, 16000])
def test_frame_count_for_any_length(n):
    out = logmel(torch.from_numpy(_signal(n)), FeatureConfig())
    assert out.shape == (128, n_frames(n, 512)) == (128, 1 + n // 512)
    assert torch.isfinite(out).all()


def test_batches_equal_single_items():
    xs = torch.from_numpy(np.stack([_signal(6000, s) for s in range(3)]))
    batch = logmel(xs, FeatureConfig())
    for i in range(3):
        torch.testing.assert_close(batch[i], logmel(xs[i], FeatureConfig()))
