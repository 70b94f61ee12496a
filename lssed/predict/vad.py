"""Voice activity detection: where a decoded file has speech, in seconds.

Runs on the decoded 16 kHz audio before denoising, so the (costly) denoiser never sees the
silence between utterances. Two detectors share one post-processing step
(:func:`regions_from_activity`: short pauses bridged, short blips dropped, regions padded):

- ``silero``: the silero-vad package's ONNX model file (shipped inside the package, so it
  loads offline), run here with onnxruntime on 512-sample chunks with the model's 64-sample
  context and recurrent state; speech starts at ``predict.vad_threshold`` and ends 0.15
  below it (the package's own hysteresis). ONNX, not the package's TorchScript model: about
  2.4x faster on one CPU thread (docs/predict.md).
- ``energy``: frame loudness in dB against the file's own loud and quiet frames, with
  hysteresis; needs no model. Steady noise alone never counts as speech, because a frame
  must rise ``predict.energy_min_snr_db`` above the file's quiet frames.
- ``none``: the whole file is one region.
"""

from __future__ import annotations

import functools
import logging
from importlib import resources
from typing import Any

import numpy as np

from lssed.config import PredictConfig

log = logging.getLogger(__name__)

SILERO_RATE = 16000
SILERO_CHUNK = 512  # samples per model step at 16 kHz (32 ms)
SILERO_CONTEXT = 64  # samples of the previous chunk the model sees before each chunk
SILERO_MODEL = "silero_vad.onnx"  # the package's opset-16 model, 8 and 16 kHz
SILERO_EXIT_GAP = 0.15  # speech ends this far below the start threshold

ENERGY_FRAME_S = 0.032  # one silero chunk, so both detectors have the same resolution
ENERGY_LOUD_PERCENTILE = 95.0
ENERGY_QUIET_PERCENTILE = 10.0
ENERGY_HIGH_PASS_HZ = 200.0

METHODS = ("silero", "energy", "none")


def speech_regions(samples: np.ndarray, sample_rate: int, method: str, cfg: PredictConfig) -> list[tuple[float, float]]:
    """Speech regions of mono ``samples`` as sorted, non-overlapping ``(start_s, end_s)``.

    ``method``: ``silero``, ``energy`` or ``none`` (the whole file). An empty signal has no
    regions.
    """
    if method not in METHODS:
        raise ValueError(f"unknown VAD method {method!r}; use one of {list(METHODS)} (predict.vad)")
    x = np.asarray(samples, dtype=np.float32)
    if x.ndim != 1:
        raise ValueError(f"speech_regions takes mono samples (1-D), got shape {x.shape}")
    if sample_rate <= 0:
        raise ValueError(f"sample_rate must be > 0, got {sample_rate}")
    duration_s = x.size / sample_rate
    if x.size == 0:
        return []
    if method == "none":
        return [(0.0, duration_s)]
    if method == "silero":
        probs = silero_probabilities(x, sample_rate)
        active = hysteresis(probs, cfg.vad_threshold, max(cfg.vad_threshold - SILERO_EXIT_GAP, 0.0))
        hop_s = SILERO_CHUNK / SILERO_RATE
    else:
        active, hop_s = energy_activity(x, sample_rate, cfg)
    return regions_from_activity(active, hop_s, duration_s, min_speech_s=cfg.vad_min_speech_s,
                                 min_silence_s=cfg.vad_min_silence_s, pad_s=cfg.vad_pad_s)


# --------------------------------------------------------------------------- silero


@functools.lru_cache(maxsize=1)
def silero_session() -> Any:
    """The silero ONNX model in an onnxruntime session, one per process.

    One thread: the model is a small recurrent net stepped 31 times per audio second, where
    more threads only add synchronisation; parallelism comes from running many files at once.
    """
    import onnxruntime as ort

    try:
        model = resources.files("silero_vad.data").joinpath(SILERO_MODEL).read_bytes()
    except (ModuleNotFoundError, FileNotFoundError) as exc:
        raise RuntimeError("predict.vad=silero needs the silero-vad package (pip install silero-vad==6.2.3), "
                           "or use predict.vad=energy") from exc
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    return ort.InferenceSession(model, sess_options=opts, providers=["CPUExecutionProvider"])


def silero_probabilities(samples: np.ndarray, sample_rate: int) -> np.ndarray:
    """Speech probability of every 32 ms chunk of ``samples`` (resampled to 16 kHz first)."""
    x = _to_rate(np.asarray(samples, dtype=np.float32), sample_rate, SILERO_RATE)
    n = -(-x.size // SILERO_CHUNK)
    if n == 0:
        return np.zeros(0, np.float32)
    padded = np.zeros(SILERO_CONTEXT + n * SILERO_CHUNK, np.float32)  # zero context before the first chunk
    padded[SILERO_CONTEXT:SILERO_CONTEXT + x.size] = x
    session = silero_session()
    state = np.zeros((2, 1, 128), np.float32)
    rate = np.array(SILERO_RATE, dtype=np.int64)
    probs = np.empty(n, np.float32)
    for i in range(n):
        # chunk i with the 64 samples before it, as the model was trained to see it
        window = padded[i * SILERO_CHUNK:(i + 1) * SILERO_CHUNK + SILERO_CONTEXT][None, :]
        out, state = session.run(None, {"input": window, "state": state, "sr": rate})
        probs[i] = out[0, 0]
    return probs


def _to_rate(x: np.ndarray, rate: int, target: int) -> np.ndarray:
    if rate == target:
        return x
    from math import gcd

    from scipy.signal import resample_poly

    g = gcd(int(rate), int(target))
    return resample_poly(x, target // g, rate // g).astype(np.float32)


# --------------------------------------------------------------------------- energy


def frame_db(samples: np.ndarray, sample_rate: int, frame_s: float = ENERGY_FRAME_S) -> tuple[np.ndarray, float]:
    """RMS level in dB (full scale 0 dB) of consecutive frames, and the frame length in seconds."""
    frame = max(1, int(round(frame_s * sample_rate)))
    n = -(-samples.size // frame)
    x = np.zeros(n * frame, np.float64)
    x[:samples.size] = samples
    x = x.reshape(n, frame)
    x = x - x.mean(axis=1, keepdims=True)  # a DC offset is not loudness
    power = np.mean(x * x, axis=1)
    return 10.0 * np.log10(power + 1e-12), frame / sample_rate


def _high_pass(samples: np.ndarray, sample_rate: int) -> np.ndarray:
    """Drop what lies below ENERGY_HIGH_PASS_HZ: mains hum and the slow swells of low-frequency
    (pink, brown) noise carry no speech but would pass for loudness changes."""
    from scipy.signal import butter, sosfilt

    if sample_rate <= 2 * ENERGY_HIGH_PASS_HZ:
        return samples
    sos = butter(4, ENERGY_HIGH_PASS_HZ, btype="highpass", fs=sample_rate, output="sos")
    return sosfilt(sos, samples)


def energy_activity(samples: np.ndarray, sample_rate: int, cfg: PredictConfig) -> tuple[np.ndarray, float]:
    """Per-frame speech decisions of the energy detector and the frame hop in seconds.

    The thresholds are relative to the file itself (its loud and quiet frames), so the
    recording level does not matter; a file whose loud frames are not ``energy_min_snr_db``
    above its quiet ones (silence, steady noise) has no speech at all.
    """
    db, hop_s = frame_db(_high_pass(samples, sample_rate), sample_rate)
    loud = float(np.percentile(db, ENERGY_LOUD_PERCENTILE))
    quiet = float(np.percentile(db, ENERGY_QUIET_PERCENTILE))
    start = max(loud - cfg.energy_range_db, quiet + cfg.energy_min_snr_db)
    return hysteresis(db, start, start - cfg.energy_hysteresis_db), hop_s


# --------------------------------------------------------------------------- shared


def hysteresis(score: np.ndarray, start: float, stop: float) -> np.ndarray:
    """Speech from the first frame at or above ``start`` until a frame below ``stop``."""
    active = np.zeros(score.size, bool)
    on = False
    for i, s in enumerate(score.tolist()):
        on = s >= start if not on else s >= stop
        active[i] = on
    return active


def regions_from_activity(active: np.ndarray, hop_s: float, duration_s: float, *, min_speech_s: float,
                          min_silence_s: float, pad_s: float) -> list[tuple[float, float]]:
    """Runs of active frames as ``(start_s, end_s)``: pauses shorter than ``min_silence_s``
    bridged, then regions shorter than ``min_speech_s`` dropped, then ``pad_s`` added a side
    (overlaps merged, clipped to the file)."""
    a = np.concatenate([[False], np.asarray(active, bool), [False]])
    edges = np.flatnonzero(a[1:] != a[:-1])
    runs = [(s * hop_s, min(e * hop_s, duration_s)) for s, e in zip(edges[::2], edges[1::2])]
    bridged: list[tuple[float, float]] = []
    for s, e in runs:
        if bridged and s - bridged[-1][1] < min_silence_s:
            bridged[-1] = (bridged[-1][0], e)
        else:
            bridged.append((s, e))
    out: list[tuple[float, float]] = []
    for s, e in bridged:
        if e - s < min_speech_s:
            continue
        s, e = max(0.0, s - pad_s), min(duration_s, e + pad_s)
        if out and s <= out[-1][1]:
            out[-1] = (out[-1][0], e)
        else:
            out.append((s, e))
    return [(round(float(s), 4), min(round(float(e), 4), float(duration_s))) for s, e in out]
