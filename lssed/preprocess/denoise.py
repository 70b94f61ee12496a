"""Denoising before the gain (paper: spectral subtraction, then resynthesis).

The paper subtracts an estimate of the noise's short-time spectrum and resynthesises the
waveform, but says nothing about how the noise is estimated. We use ``noisereduce``'s
spectral gating, a member of the spectral-subtraction family (a per-frequency noise
threshold from the STFT, a smoothed mask, inverse STFT):

- ``noisereduce`` (default): non-stationary noise estimate computed *per utterance* from a
  time-smoothed running minimum of each frequency band, so noise that drifts within an
  interview (air conditioning, crowd) is tracked and no noise-only clip is needed;
- ``noisereduce-stationary``: one noise spectrum per utterance (mean + std of each band over
  the whole utterance), closer to classic spectral subtraction and slightly faster;
- ``none``: no denoising (used by the numerical test against librosa).

noisereduce runs single-process (``n_jobs=1``): parallelism comes from Ray's actors.
"""

from __future__ import annotations

from typing import Literal

import numpy as np

DenoiseMethod = Literal["noisereduce", "noisereduce-stationary", "none"]
METHODS: tuple[str, ...] = ("noisereduce", "noisereduce-stationary", "none")


def denoise(samples: np.ndarray, sample_rate: int, method: str = "noisereduce") -> np.ndarray:
    """Denoised float32 copy of a mono waveform (same length)."""
    if method == "none":
        return samples.astype(np.float32, copy=False)
    if method not in METHODS:
        raise ValueError(f"unknown denoise method {method!r}; use one of {list(METHODS)} (preprocess.denoise)")
    import noisereduce

    out = noisereduce.reduce_noise(
        y=samples,
        sr=sample_rate,
        stationary=(method == "noisereduce-stationary"),
        n_jobs=1,
        use_torch=False,
    )
    out = np.asarray(out, dtype=np.float32)
    if out.shape != samples.shape:  # noisereduce pads to whole frames on some inputs
        out = out[: samples.shape[0]] if out.shape[0] >= samples.shape[0] else np.pad(out, (0, samples.shape[0] - out.shape[0]))
    return out
