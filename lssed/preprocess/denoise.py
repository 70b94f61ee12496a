"""Denoising before the gain (paper: spectral subtraction, then resynthesis).

The paper subtracts an estimate of the noise's short-time spectrum and resynthesises the
waveform, but says nothing about how the noise is estimated. We use ``noisereduce``'s
spectral gating, a member of the spectral-subtraction family (a per-frequency noise
threshold from the STFT, a smoothed mask, inverse STFT):

- ``noisereduce`` (default): non-stationary noise estimate computed *per utterance* from a
  time-smoothed running minimum of each frequency band, so noise that drifts within an
  interview (air conditioning, crowd) is tracked and no noise-only clip is needed. This is
  ``noisereduce.reduce_noise(y, sr)`` with the library's defaults, computed by
  :mod:`lssed.preprocess.spectralgate`, which gives the library's numbers (float64 rounding)
  with less work: it skips the library's 60,000 padding zeros and scipy's general STFT loops
  (1.3-7x faster per utterance, 2.9x on the demo corpus: docs/performance.md);
- ``noisereduce-stationary``: one noise spectrum per utterance (mean + std of each band over
  the whole utterance), closer to classic spectral subtraction and slightly faster;
- ``torchgate``: noisereduce's own torch implementation of the non-stationary gate
  (``noisereduce.torchgate.TorchGate``, with the parameters ``reduce_noise`` maps to it), run
  over a whole chunk of utterances at once (:func:`denoise_batch`), on the GPU when the
  process has one. Its noise estimate is a moving mean of each band (``time_constant_s`` wide)
  where the numpy path uses a filtered running minimum, so its output departs from
  ``noisereduce``'s: measured in docs/performance.md ("Denoising with torchgate");
- ``none``: no denoising (used by the numerical test against librosa).

noisereduce runs single-process (``n_jobs=1``): parallelism comes from Ray's actors.

Batching (``torchgate``): utterances are sorted by length and cut into batches whose longest
member is at most :data:`MAX_PAD_RATIO` times the shortest, padded with zeros at the end. The
gate is local in time and zeros add nothing to an STFT frame or to the band's moving mean
(whose own edge padding is zeros too), so an utterance's output does not depend on the batch
it is in beyond float rounding; tests/preprocess/test_torchgate.py checks that.
"""

from __future__ import annotations

import functools
from typing import Any, Literal, Sequence

import numpy as np

DenoiseMethod = Literal["noisereduce", "noisereduce-stationary", "torchgate", "none"]
METHODS: tuple[str, ...] = ("noisereduce", "noisereduce-stationary", "torchgate", "none")
# Methods that denoise a chunk's utterances together (process_chunk calls denoise_batch).
BATCHED: tuple[str, ...] = ("torchgate",)

# noisereduce.reduce_noise's defaults, mapped to TorchGate as its StreamedTorchGate does.
_N_FFT = 1024
_HOP = _N_FFT // 4
_TIME_CONSTANT_S = 2.0
_THRESH_N_MULT = 2.0
_SIGMOID_SLOPE = 10.0
# A batch's longest utterance is at most this many times its shortest (bounds the padding).
MAX_PAD_RATIO = 1.25
# Samples (batch x padded length) per batch, ~2 min of 16 kHz audio: bounds the gate's memory.
# On one CPU thread the batch size barely matters (docs/performance.md); a GPU wants it large.
MAX_BATCH_SAMPLES = 2_000_000


def denoise(samples: np.ndarray, sample_rate: int, method: str = "noisereduce") -> np.ndarray:
    """Denoised float32 copy of a mono waveform (same length)."""
    if method == "none":
        return samples.astype(np.float32, copy=False)
    if method not in METHODS:
        raise ValueError(f"unknown denoise method {method!r}; use one of {list(METHODS)} (preprocess.denoise)")
    if method in BATCHED:
        return denoise_batch([samples], sample_rate, method)[0]
    if method == "noisereduce":
        from lssed.preprocess.spectralgate import reduce_noise

        return reduce_noise(samples, sample_rate)
    import noisereduce

    out = noisereduce.reduce_noise(
        y=samples,
        sr=sample_rate,
        stationary=True,
        n_jobs=1,
        use_torch=False,
    )
    out = np.asarray(out, dtype=np.float32)
    if out.shape != samples.shape:  # noisereduce pads to whole frames on some inputs
        out = out[: samples.shape[0]] if out.shape[0] >= samples.shape[0] else np.pad(out, (0, samples.shape[0] - out.shape[0]))
    return out


def default_device() -> str:
    """``cuda`` when this process sees a GPU (a GPU actor), else ``cpu``."""
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def denoise_batch(batch: Sequence[np.ndarray], sample_rate: int, method: str = "torchgate", *,
                  device: str | None = None) -> list[np.ndarray]:
    """Denoised float32 copies of several mono waveforms (each keeps its length).

    ``torchgate`` runs them in length-grouped, zero-padded batches (see the module docstring);
    other methods run one by one through :func:`denoise`.
    """
    if method not in BATCHED:
        return [denoise(x, sample_rate, method) for x in batch]
    import torch

    gate = _torchgate(sample_rate, device or default_device())
    out: list[np.ndarray | None] = [None] * len(batch)
    for group in plan_batches([int(x.shape[0]) for x in batch]):
        # Every row gets at least one window of zeros after its end, so that its last samples
        # lie in whole STFT frames (istft returns whole hops only), whatever batch it is in;
        # TorchGate also needs two windows, so short clips are padded to that (and cut back).
        width = max(max(batch[i].shape[0] for i in group) + _N_FFT, 2 * _N_FFT)
        x = np.zeros((len(group), width), dtype=np.float32)
        for row, i in enumerate(group):
            x[row, : batch[i].shape[0]] = batch[i]
        with torch.no_grad():
            y = gate(torch.from_numpy(x).to(gate.smoothing_filter.device)).cpu().numpy()
        for row, i in enumerate(group):
            n = batch[i].shape[0]
            out[i] = np.ascontiguousarray(y[row, :n])
    return [o if o is not None else np.zeros(0, np.float32) for o in out]


def plan_batches(lengths: Sequence[int], *, max_ratio: float = MAX_PAD_RATIO,
                 max_samples: int = MAX_BATCH_SAMPLES) -> list[list[int]]:
    """Indices grouped into batches of similar length (sorted, deterministic)."""
    order = sorted(range(len(lengths)), key=lambda i: (lengths[i], i))
    groups: list[list[int]] = []
    for i in order:
        g = groups[-1] if groups else None
        if g and lengths[i] <= max_ratio * max(lengths[g[0]], 1) and (len(g) + 1) * lengths[i] <= max_samples:
            g.append(i)
        else:
            groups.append([i])
    return groups


@functools.lru_cache(maxsize=4)
def _torchgate(sample_rate: int, device: str) -> Any:
    from noisereduce.torchgate import TorchGate

    class _Gate(TorchGate):  # type: ignore[misc]
        """TorchGate whose non-stationary mask is defined on digital silence.

        Upstream divides by the moving mean of each band, which is 0 over zero padding (and
        over digital silence): 0/0 gives NaN, and the mask smoothing spreads it into the
        utterance. A floor on the divisor gives the mask of a silent band (0: gated).
        """

        def _nonstationary_mask(self, X_abs: Any) -> Any:
            import torch
            from torch.nn.functional import conv1d

            from noisereduce.torchgate.utils import temperature_sigmoid

            kernel = torch.ones(self.n_movemean_nonstationary, dtype=X_abs.dtype, device=X_abs.device).view(1, 1, -1)
            smoothed = conv1d(X_abs.reshape(-1, 1, X_abs.shape[-1]), kernel, padding="same").view(X_abs.shape)
            smoothed = (smoothed / self.n_movemean_nonstationary).clamp_min(torch.finfo(X_abs.dtype).tiny)
            return temperature_sigmoid((X_abs - smoothed) / smoothed, self.n_thresh_nonstationary,
                                       self.temp_coeff_nonstationary)

    gate = _Gate(
        sr=sample_rate,
        nonstationary=True,
        n_thresh_nonstationary=_THRESH_N_MULT,
        temp_coeff_nonstationary=1.0 / _SIGMOID_SLOPE,
        n_movemean_nonstationary=int(_TIME_CONSTANT_S / _HOP * sample_rate),
        prop_decrease=1.0,
        n_fft=_N_FFT,
        hop_length=_HOP,
    )
    return gate.to(device).eval()
