"""Log-mel features in torch, used by the trainer (on the worker's device, from stored
waveforms, for STFT-window sweeps), evaluation, embedding and export. Preprocessing's CPU
actors compute the same numbers in numpy (:mod:`lssed.features_np`, float32 rounding apart,
tested against this module) so that they need not import torch.

Paper: STFT with a Hann window of 1024 and hop 512, power 2, 128 mel bands, then log.
The mel filterbank is slaney-scaled and slaney-normalised with zero ("constant") padding of
the centred frames, which makes the power equal librosa's ``melspectrogram`` defaults.
"""

from __future__ import annotations

import functools
from typing import Any

import torch


@functools.lru_cache(maxsize=16)
def _mel_transform(sample_rate: int, n_fft: int, win_length: int, hop_length: int, n_mels: int,
                   f_min: float, f_max: float | None, device: torch.device) -> torch.nn.Module:
    import torchaudio

    transform = torchaudio.transforms.MelSpectrogram(
        sample_rate=sample_rate,
        n_fft=n_fft,
        win_length=win_length,
        hop_length=hop_length,
        f_min=f_min,
        f_max=f_max,
        n_mels=n_mels,
        window_fn=torch.hann_window,
        power=2.0,
        center=True,
        pad_mode="constant",
        mel_scale="slaney",
        norm="slaney",
    )
    return transform.to(device)


def mel_transform(cfg: Any, device: torch.device | str = "cpu") -> torch.nn.Module:
    """The torchaudio mel-power transform for a :class:`~lssed.config.FeatureConfig` on ``device``.

    Cached per (settings, device) and shared: never move or modify the returned module
    (``.to()`` on a module moves it in place, for every other user of the cache).
    """
    return _mel_transform(cfg.sample_rate, cfg.n_fft, cfg.win_length, cfg.hop_length, cfg.n_mels,
                          float(cfg.f_min), cfg.f_max, torch.device(device))


def apply_log(mel_power: torch.Tensor, cfg: Any) -> torch.Tensor:
    if cfg.log == "log":
        return torch.log(mel_power + cfg.log_offset)
    if cfg.log == "db":
        return 10.0 * torch.log10(torch.clamp(mel_power, min=1e-10))
    return mel_power


def logmel(waveform: torch.Tensor, cfg: Any) -> torch.Tensor:
    """``(..., samples)`` float waveform at ``cfg.sample_rate`` -> ``(..., n_mels, frames)``.

    Runs on the waveform's device; frames = 1 + samples // hop_length (centred STFT).
    """
    transform = mel_transform(cfg, waveform.device)
    return apply_log(transform(waveform.float()), cfg)


def n_frames(num_samples: int, hop_length: int) -> int:
    return 1 + num_samples // hop_length
