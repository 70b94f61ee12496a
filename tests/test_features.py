"""lssed.features.logmel (shared by preprocess and training) against librosa's reference numerics."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from lssed.config import FeatureConfig
from lssed.features import logmel, mel_transform, n_frames

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


def _devices(module: torch.nn.Module) -> set[str]:
    return {b.device.type for b in module.buffers()}


def test_the_cached_transform_is_per_device_and_never_moved():
    """One cached module per (settings, device): using another device must not move the one
    a CPU caller holds (a moved shared module would compute on the wrong device or fail)."""
    cfg = FeatureConfig()
    x = torch.from_numpy(_signal(4000))
    before = logmel(x, cfg)
    cpu = mel_transform(cfg, "cpu")
    assert mel_transform(cfg, torch.device("cpu")) is cpu  # cached
    other = mel_transform(cfg, "meta")  # a second device without a GPU
    assert other is not cpu
    assert _devices(cpu) == {"cpu"} and _devices(other) == {"meta"}
    torch.testing.assert_close(logmel(x, cfg), before, rtol=0, atol=0)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_logmel_on_gpu_matches_cpu_and_leaves_the_cpu_transform_alone():
    cfg = FeatureConfig()
    x = torch.from_numpy(_signal(16000))
    on_cpu = logmel(x, cfg)
    on_gpu = logmel(x.cuda(), cfg)
    assert _devices(mel_transform(cfg, "cpu")) == {"cpu"}
    torch.testing.assert_close(on_gpu.cpu(), on_cpu, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(logmel(x, cfg), on_cpu, rtol=0, atol=0)


@pytest.mark.parametrize("changes", [{}, {"n_fft": 400, "win_length": 400, "hop_length": 200}, {"win_length": 800},
                                     {"f_min": 50.0, "f_max": 7000.0, "n_mels": 64}, {"log": "db"}, {"log": "none"}])
def test_the_numpy_logmel_of_preprocessing_equals_the_torch_one(changes):
    """lssed.features_np (preprocessing's CPU actors) computes logmel's numbers without torch."""
    from lssed import features_np

    cfg = dataclasses.replace(FeatureConfig(), **changes)
    for n in (1, 300, 1025, 16000 * 3 + 77):
        x = _signal(n, seed=n)
        want = logmel(torch.from_numpy(x), cfg).numpy()
        got = features_np.logmel(x, cfg)
        assert got.dtype == np.float32 and got.shape == want.shape == (cfg.n_mels, n_frames(n, cfg.hop_length))
        if cfg.log == "none":  # power: float32 rounding of the largest bins
            np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-6 * float(want.max()))
        else:  # log / dB: torch's float32 FFT is ~1e-5 relative off in the quietest bins
            np.testing.assert_allclose(got, want, rtol=0, atol=5e-4 if cfg.log == "db" else 2e-4)


def test_the_numpy_filterbank_is_torchaudios():
    import torchaudio.functional as AF

    from lssed.features_np import mel_filterbank

    for sr, n_fft, n_mels, f_min, f_max in ((16000, 1024, 128, 0.0, 8000.0), (22050, 512, 40, 30.0, 9000.0)):
        want = AF.melscale_fbanks(n_fft // 2 + 1, f_min, f_max, n_mels, sr, norm="slaney", mel_scale="slaney").numpy()
        np.testing.assert_allclose(mel_filterbank(sr, n_fft, n_mels, f_min, f_max), want, rtol=1e-5, atol=1e-5 * want.max())
