"""The log-mel of :mod:`lssed.features` in numpy, for processes that should not import torch.

Preprocessing's CPU actors compute one log-mel per utterance and nothing else with torch;
importing torch (and torchaudio) costs each actor ~2 CPU-seconds at start-up and ~0.6 GB of
resident memory. This module computes the same numbers (float32, to float32 rounding: tests/test_features.py
compares it with :func:`lssed.features.logmel`) as torchaudio's ``MelSpectrogram`` with lssed's
settings: centred frames with zero padding, a periodic Hann window of ``win_length`` centred
in ``n_fft``, power 2, slaney-scaled and slaney-normalised mel filters, then the log.
Training and export keep the torch implementation (on the worker's device). Config
validation counts empty mel bands here too (:func:`empty_mel_bands`), so the CLI's driver
does not import torch for a usual config.
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np

_F_SP = 200.0 / 3.0  # slaney: Hz per mel below 1 kHz
_MIN_LOG_HZ = 1000.0
_MIN_LOG_MEL = _MIN_LOG_HZ / _F_SP
_LOGSTEP = np.log(6.4) / 27.0


def hz_to_mel(f: np.ndarray | float) -> np.ndarray:
    """Slaney mel scale: linear below 1 kHz, logarithmic above (torchaudio's and librosa's)."""
    f = np.asarray(f, dtype=np.float64)
    return np.where(f >= _MIN_LOG_HZ, _MIN_LOG_MEL + np.log(np.maximum(f, _MIN_LOG_HZ) / _MIN_LOG_HZ) / _LOGSTEP,
                    f / _F_SP)


def mel_to_hz(m: np.ndarray) -> np.ndarray:
    """Inverse of :func:`hz_to_mel`."""
    m = np.asarray(m, dtype=np.float64)
    return np.where(m >= _MIN_LOG_MEL, _MIN_LOG_HZ * np.exp(_LOGSTEP * (m - _MIN_LOG_MEL)), _F_SP * m)


def mel_edges(f_min: float, f_max: float, n_mels: int) -> np.ndarray:
    """The ``n_mels + 2`` edge frequencies (Hz) of the slaney mel triangles: band i spans edges i..i+2."""
    return mel_to_hz(np.linspace(hz_to_mel(f_min), hz_to_mel(f_max), n_mels + 2))


@functools.lru_cache(maxsize=16)
def mel_filterbank(sample_rate: int, n_fft: int, n_mels: int, f_min: float, f_max: float) -> np.ndarray:
    """``(n_fft // 2 + 1, n_mels)`` float64: torchaudio's ``melscale_fbanks(norm="slaney", mel_scale="slaney")``."""
    freqs = np.linspace(0, sample_rate // 2, n_fft // 2 + 1)
    edges = mel_edges(f_min, f_max, n_mels)
    widths = np.diff(edges)
    slopes = edges[None, :] - freqs[:, None]
    down = -slopes[:, :-2] / widths[:-1]
    up = slopes[:, 2:] / widths[1:]
    fb = np.maximum(0.0, np.minimum(down, up))
    fb *= 2.0 / (edges[2: n_mels + 2] - edges[:n_mels])
    fb.setflags(write=False)
    return fb


def empty_mel_bands(features: Any) -> int:
    """How many of the slaney mel filters of ``features`` (as :mod:`lssed.features` builds them) are all zero.

    A band is surely non-empty when an FFT bin lies clearly inside its triangle; only when some
    band has none is torchaudio's own filterbank built and counted (importing torch costs ~2 s,
    which a CLI checking a usual config should not pay before it starts).
    """
    if every_mel_band_has_a_bin(features):
        return 0
    import warnings

    import torchaudio.functional as AF

    with warnings.catch_warnings():  # torchaudio warns about exactly what we count
        warnings.simplefilter("ignore")
        fb = AF.melscale_fbanks(features.n_fft // 2 + 1, float(features.f_min),
                                float(features.f_max if features.f_max is not None else features.sample_rate / 2),
                                features.n_mels, features.sample_rate, norm="slaney", mel_scale="slaney")
    return int((fb.max(dim=0).values <= 0).sum())


def every_mel_band_has_a_bin(features: Any) -> bool:
    """True when each slaney mel triangle holds an FFT bin well inside its edges (so is non-zero)."""
    top = float(features.f_max if features.f_max is not None else features.sample_rate / 2)
    bins = np.linspace(0, features.sample_rate // 2, features.n_fft // 2 + 1)
    edges = mel_edges(float(features.f_min), top, features.n_mels)
    lower, upper = edges[:-2], edges[2:]
    margin = 1e-6 * (upper - lower) + 1e-9
    inside = (bins[None, :] > (lower + margin)[:, None]) & (bins[None, :] < (upper - margin)[:, None])
    return bool(inside.any(axis=1).all())


@functools.lru_cache(maxsize=16)
def _window(n_fft: int, win_length: int) -> np.ndarray:
    """torch.hann_window(win_length) (periodic), zero-padded to n_fft and centred, as torch.stft does."""
    w = 0.5 - 0.5 * np.cos(2.0 * np.pi * np.arange(win_length) / win_length)
    out = np.zeros(n_fft, dtype=np.float64)
    left = (n_fft - win_length) // 2
    out[left: left + win_length] = w
    out.setflags(write=False)
    return out


def mel_power(samples: np.ndarray, cfg: Any) -> np.ndarray:
    """``(n_mels, 1 + samples // hop)`` float32 mel power of a 1-D waveform."""
    import scipy.fft

    x = np.ascontiguousarray(samples, dtype=np.float64)
    if x.ndim != 1:
        raise ValueError(f"one waveform (1-D) expected, got shape {x.shape}")
    half = cfg.n_fft // 2
    padded = np.pad(x, (half, half))
    frames = np.lib.stride_tricks.sliding_window_view(padded, cfg.n_fft)[:: cfg.hop_length]
    # float64 inside: the result is then within float32 rounding of the exact mel power, where
    # a float32 FFT's error in the quietest bins would show in their log (up to ~2e-4).
    spectrum = scipy.fft.rfft(frames * _window(cfg.n_fft, cfg.win_length), axis=-1)
    power = spectrum.real ** 2 + spectrum.imag ** 2
    f_max = float(cfg.f_max) if cfg.f_max is not None else float(cfg.sample_rate // 2)
    fb = mel_filterbank(cfg.sample_rate, cfg.n_fft, cfg.n_mels, float(cfg.f_min), f_max)
    return np.ascontiguousarray((power @ fb).T).astype(np.float32)


def logmel(samples: np.ndarray, cfg: Any) -> np.ndarray:
    """``(n_mels, frames)`` float32: :func:`lssed.features.logmel` of one waveform, in numpy."""
    mel = mel_power(samples, cfg)
    if cfg.log == "log":
        return np.log(mel + np.float32(cfg.log_offset))
    if cfg.log == "db":
        return np.float32(10.0) * np.log10(np.maximum(mel, np.float32(1e-10)))
    return mel
