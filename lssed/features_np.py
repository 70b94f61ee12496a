"""The log-mel of :mod:`lssed.features` in numpy, for processes that should not import torch.

Preprocessing's CPU actors compute one log-mel per utterance and nothing else with torch;
importing torch (and torchaudio) costs each actor ~2 CPU-seconds at start-up and ~0.6 GB of
resident memory. This module computes the same numbers (float32, to float32 rounding: tests/test_features.py
compares it with :func:`lssed.features.logmel`) as torchaudio's ``MelSpectrogram`` with lssed's
settings: centred frames with zero padding, a periodic Hann window of ``win_length`` centred
in ``n_fft``, power 2, slaney-scaled and slaney-normalised mel filters, then the log.
Training and export keep the torch implementation (on the worker's device).
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


@functools.lru_cache(maxsize=16)
def mel_filterbank(sample_rate: int, n_fft: int, n_mels: int, f_min: float, f_max: float) -> np.ndarray:
    """``(n_fft // 2 + 1, n_mels)`` float64: torchaudio's ``melscale_fbanks(norm="slaney", mel_scale="slaney")``."""
    freqs = np.linspace(0, sample_rate // 2, n_fft // 2 + 1)
    edges = mel_to_hz(np.linspace(hz_to_mel(f_min), hz_to_mel(f_max), n_mels + 2))
    widths = np.diff(edges)
    slopes = edges[None, :] - freqs[:, None]
    down = -slopes[:, :-2] / widths[:-1]
    up = slopes[:, 2:] / widths[1:]
    fb = np.maximum(0.0, np.minimum(down, up))
    fb *= 2.0 / (edges[2: n_mels + 2] - edges[:n_mels])
    fb.setflags(write=False)
    return fb


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
