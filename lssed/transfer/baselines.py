"""Baseline utterance embeddings for the transfer study, from the shards' ``waveform`` column.

The SER model's embeddings are compared with features computed from the same audio (the
shards' denoised, gained 16 kHz waveforms) of exactly the same utterances and participants:

- ``mfcc``: MFCC + prosody functionals from torchaudio (always available): MFCC means and
  standard deviations and delta standard deviations (25 ms windows, 10 ms hop), frame energy,
  pitch (``torchaudio.functional.detect_pitch_frequency``), pauses and a speaking-rate proxy;
- ``wav2vec2``: the mean over time of a torchaudio wav2vec2 ASR bundle's transformer output
  (``WAV2VEC2_ASR_BASE_960H`` by default: the paper's "ASR features" comparison). Its weights
  are read from the torch hub cache (where ``bundle.get_model()`` would have put them) or a
  local file; nothing is downloaded at run time;
- ``egemaps``: the 88 eGeMAPSv02 functionals from openSMILE's Python package, an optional
  extra (``pip install 'lssed[opensmile]'``; openSMILE's licence allows research and
  personal use only).

Each baseline is a :class:`Baseline`: a pure ``embed(samples, sample_rate) -> vector`` plus the
settings recorded in the embedding table's metadata (its analysis window and hop, for the
report's paragraph on windows). :func:`embed_baseline` runs one over a feature set's shards
in this process and returns an embedding table in :mod:`lssed.embed`'s format.
"""

from __future__ import annotations

import functools
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pyarrow as pa

from lssed.errors import UserError

log = logging.getLogger(__name__)

BASELINES: tuple[str, ...] = ("mfcc", "wav2vec2", "egemaps")
DEFAULT_BUNDLE = "WAV2VEC2_ASR_BASE_960H"
PCM_SCALE = 32768.0  # shard int16 PCM -> float in [-1, 1)


class BaselineError(UserError, RuntimeError):
    """A baseline cannot run here (weights or package missing); the message says how to fix it."""


@dataclass(frozen=True)
class Baseline:
    name: str
    embed: Callable[[np.ndarray, int], np.ndarray]  # float32 samples in [-1, 1), sample rate -> vector
    window_ms: float | None  # the analysis window of its frame features
    hop_ms: float | None
    meta: dict[str, Any] = field(default_factory=dict)  # model, layer, weights, untrained, ...


# --------------------------------------------------------------------------- (c) MFCC + prosody

MFCC_N = 20
MFCC_WIN_S = 0.025  # the usual speech front end: 25 ms windows, 10 ms hop
MFCC_HOP_S = 0.010
PITCH_RATE = 8000  # pitch is tracked at 8 kHz: detect_pitch_frequency's cost grows with rate^2
PITCH_RANGE_HZ = (70, 400)
SPEECH_RANGE_DB = 30.0  # frames within this much of the utterance's loudest frame count as speech
MIN_PAUSE_S = 0.1
MIN_PITCH_S = 0.2


@functools.lru_cache(maxsize=4)
def _mfcc_transform(sample_rate: int) -> Any:
    import torchaudio

    win = int(round(MFCC_WIN_S * sample_rate))
    return torchaudio.transforms.MFCC(sample_rate, MFCC_N, melkwargs=dict(
        n_fft=win, win_length=win, hop_length=int(round(MFCC_HOP_S * sample_rate)), n_mels=40))


def _runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """(start, length) of each run of True in ``mask``."""
    padded = np.concatenate([[False], mask, [False]]).astype(np.int8)
    edges = np.flatnonzero(np.diff(padded))
    return [(int(a), int(b - a)) for a, b in zip(edges[::2], edges[1::2])]


def mfcc_prosody_functionals(samples: np.ndarray, sample_rate: int) -> np.ndarray:
    """MFCC + prosody functionals of one utterance (73 values, float32).

    MFCC mean (20), std (20) and delta std (20); on speech frames: energy dB mean, std, 10th
    and 90th percentile, pitch in semitones re 100 Hz mean, std, 10th and 90th percentile;
    pause fraction, pauses per second and mean pause length (silences of >= 0.1 s between
    speech); energy peaks per second of speech (a speaking-rate proxy); duration in seconds.
    """
    import torch
    import torchaudio

    x = np.asarray(samples, dtype=np.float32)
    win, hop = int(round(MFCC_WIN_S * sample_rate)), int(round(MFCC_HOP_S * sample_rate))
    shortest = int(MIN_PITCH_S * sample_rate)  # the pitch tracker's median filter needs 15 frames
    if len(x) < shortest:
        x = np.pad(x, (0, shortest - len(x)))  # silence: below the speech threshold, so not counted
    wave = torch.from_numpy(x)
    with torch.inference_mode():
        mfcc = _mfcc_transform(sample_rate)(wave)  # (n_mfcc, frames)
        delta = torchaudio.functional.compute_deltas(mfcc[None])[0]
        low = torchaudio.functional.resample(wave[None], sample_rate, PITCH_RATE)
        pitch = torchaudio.functional.detect_pitch_frequency(low, PITCH_RATE, frame_time=MFCC_HOP_S, win_length=15,
                                                             freq_low=PITCH_RANGE_HZ[0],
                                                             freq_high=PITCH_RANGE_HZ[1])[0].numpy()
    frames = np.lib.stride_tricks.sliding_window_view(x, win)[::hop]
    energy = 10.0 * np.log10(np.mean(frames.astype(np.float64) ** 2, axis=1) + 1e-10)
    speech = energy > energy.max() - SPEECH_RANGE_DB
    e = energy[speech]
    # pitch frames are 10 ms too: align by index; only speech frames inside the tracker's range
    n = min(len(pitch), len(speech))
    p = pitch[:n][speech[:n] & (pitch[:n] >= PITCH_RANGE_HZ[0]) & (pitch[:n] <= PITCH_RANGE_HZ[1])]
    semitones = 12.0 * np.log2(p / 100.0) if len(p) else np.zeros(1)
    # pauses: silent runs between the first and the last speech frame
    idx = np.flatnonzero(speech)
    inner = ~speech[idx[0]:idx[-1] + 1] if len(idx) else np.zeros(0, dtype=bool)
    pauses = [length for _, length in _runs(inner) if length * MFCC_HOP_S >= MIN_PAUSE_S]
    speech_s = max(float(speech.sum()) * MFCC_HOP_S, MFCC_HOP_S)
    duration = len(samples) / sample_rate
    # speaking-rate proxy: peaks of the smoothed energy envelope (syllable nuclei) per second of speech
    smooth = np.convolve(energy, np.ones(5) / 5, mode="same")
    peaks = (smooth[1:-1] > smooth[:-2]) & (smooth[1:-1] >= smooth[2:]) & speech[1:-1]
    # median and median absolute deviation: the NCCF tracker has no voicing decision, so unvoiced
    # frames add octave errors that a mean and std would follow
    median = float(np.median(semitones))
    pros = [e.mean(), e.std(), *np.percentile(e, [10, 90]),
            median, float(np.median(np.abs(semitones - median))), *np.percentile(semitones, [10, 90]),
            (len(inner) and float(inner.sum()) / len(inner)) or 0.0, len(pauses) / max(duration, 1e-3),
            float(np.mean(pauses)) * MFCC_HOP_S if pauses else 0.0, float(peaks.sum()) / speech_s, duration]
    m, d = mfcc.numpy(), delta.numpy()
    return np.concatenate([m.mean(1), m.std(1), d.std(1), np.asarray(pros, dtype=np.float64)]).astype(np.float32)


def mfcc_baseline() -> Baseline:
    return Baseline("mfcc", mfcc_prosody_functionals, window_ms=MFCC_WIN_S * 1000, hop_ms=MFCC_HOP_S * 1000,
                    meta={"model": "mfcc+prosody functionals (torchaudio)", "n_mfcc": MFCC_N,
                          "pitch": "torchaudio.functional.detect_pitch_frequency at 8 kHz"})


# --------------------------------------------------------------------------- (a) wav2vec2 ASR encoder


def _bundle(name: str) -> Any:
    import torchaudio.pipelines as pipelines

    bundle = getattr(pipelines, name, None)
    if bundle is None or not isinstance(bundle, pipelines.Wav2Vec2Bundle):
        names = sorted(n for n in dir(pipelines) if isinstance(getattr(pipelines, n), pipelines.Wav2Vec2Bundle))
        raise BaselineError(f"transfer.wav2vec2_bundle={name!r} is not a torchaudio wav2vec2 bundle; use one of "
                            f"{names}")
    if getattr(bundle, "_model_type", "Wav2Vec2") != "Wav2Vec2":
        raise BaselineError(f"{name} is a {bundle._model_type} bundle; the wav2vec2 baseline reads Wav2Vec2/HuBERT "
                            "bundles (e.g. WAV2VEC2_ASR_BASE_960H)")
    return bundle


def bundle_weights_file(name: str) -> Path:
    """Where ``torchaudio.pipelines.<name>.get_model()`` caches its weights (the torch hub cache)."""
    import torch

    return Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(_bundle(name)._path)


def resolve_weights(name: str, weights: str | None) -> Path:
    """The weights file: ``weights`` when given, else the bundle's file in the torch hub cache."""
    bundle = _bundle(name)
    path = Path(weights).expanduser() if weights else bundle_weights_file(name)
    if not path.is_file():
        url = f"https://download.pytorch.org/torchaudio/models/{os.path.basename(bundle._path)}"
        raise BaselineError(
            f"the wav2vec2 baseline needs the weights of {name} at {path} (nothing is downloaded at run time): "
            f"fetch {url} on a machine with network access and copy it to {bundle_weights_file(name)} (the torch "
            f"hub cache, $TORCH_HOME) or anywhere and set transfer.wav2vec2_weights=<file>; or drop wav2vec2 from "
            "transfer.baselines")
    return path


def receptive_field(conv_layers: list[tuple[int, int, int]]) -> tuple[int, int]:
    """(window, hop) in samples of a wav2vec2 feature extractor's output frames."""
    window, hop = 1, 1
    for _, kernel, stride in conv_layers:
        window += (kernel - 1) * hop
        hop *= stride
    return window, hop


def load_wav2vec2(name: str = DEFAULT_BUNDLE, weights: str | None = None) -> tuple[Any, dict[str, Any]]:
    """The bundle's architecture with its weights from ``weights`` (or the hub cache), in eval mode.

    Returns (model, info). The same state dict ``bundle.get_model()`` loads: fairseq ASR
    files carry unused output rows that torchaudio removes (``aux``), so they are removed here too.
    """
    import torch
    import torchaudio

    bundle = _bundle(name)
    path = resolve_weights(name, weights)
    params = dict(bundle._params)  # torchaudio exposes the architecture only this way
    with torch.device("meta"):  # no random init of ~95M parameters that the file replaces anyway
        model = torchaudio.models.wav2vec2_model(**params)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unreadable file: say which and why
        raise BaselineError(f"cannot read wav2vec2 weights {path}: {type(exc).__name__}: {exc}") from exc
    if not isinstance(state, dict):
        raise BaselineError(f"{path} holds a {type(state).__name__}, not a state dict of {name}")
    aux_out = params.get("aux_num_out")
    axes = getattr(bundle, "_remove_aux_axis", None)
    if axes and aux_out and "aux.weight" in state and state["aux.weight"].shape[0] == aux_out + len(axes):
        for key in ("aux.weight", "aux.bias"):
            state[key] = torch.stack([row for i, row in enumerate(state[key]) if i not in axes])
    try:
        model.load_state_dict(state, strict=True, assign=True)
    except RuntimeError as exc:
        raise BaselineError(f"{path} is not a state dict of {name}'s architecture: {exc}") from exc
    model.eval()
    window, hop = receptive_field(params["extractor_conv_layer_config"])
    info = {"bundle": name, "weights": str(path), "sample_rate": int(bundle.sample_rate),
            "normalize_waveform": bool(getattr(bundle, "_normalize_waveform", False)),
            "window_samples": window, "hop_samples": hop, "layers": int(params["encoder_num_layers"]),
            "dim": int(params["encoder_embed_dim"])}
    return model, info


def wav2vec2_baseline(name: str = DEFAULT_BUNDLE, weights: str | None = None, *, layer: int | None = None,
                      untrained: bool = False, device: str | None = None) -> Baseline:
    """Mean over time of transformer layer ``layer`` (1-based; None: the last) of the bundle's encoder."""
    model, info = load_wav2vec2(name, weights)
    return wav2vec2_embedder(model, info, layer=layer, untrained=untrained, device=device)


def wav2vec2_embedder(model: Any, info: dict[str, Any], *, layer: int | None = None, untrained: bool = False,
                      device: str | None = None) -> Baseline:
    """The baseline over a model from :func:`load_wav2vec2` (layers above ``layer`` are not computed)."""
    import torch

    name = info["bundle"]
    layers = info["layers"]
    if layer is not None and not 1 <= layer <= layers:
        raise BaselineError(f"transfer.wav2vec2_layer={layer}: {name} has transformer layers 1..{layers}")
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    model = model.to(device)
    sr = info["sample_rate"]
    min_samples = info["window_samples"]

    def embed(samples: np.ndarray, sample_rate: int) -> np.ndarray:
        if sample_rate != sr:
            raise BaselineError(f"{name} expects {sr} Hz audio, the shards hold {sample_rate} Hz")
        x = np.asarray(samples, dtype=np.float32)
        if len(x) < min_samples:  # shorter than one output frame
            x = np.pad(x, (0, min_samples - len(x)))
        with torch.inference_mode():
            wave = torch.from_numpy(x)[None].to(device)
            if info["normalize_waveform"]:
                wave = torch.nn.functional.layer_norm(wave, wave.shape)
            outputs, _ = model.extract_features(wave, num_layers=layer)
            return outputs[-1][0].mean(0).float().cpu().numpy()

    return Baseline("wav2vec2", embed, window_ms=1000.0 * info["window_samples"] / sr,
                    hop_ms=1000.0 * info["hop_samples"] / sr,
                    meta={"model": name, "layer": layer or layers, "weights": info["weights"],
                          "untrained": bool(untrained)})


# --------------------------------------------------------------------------- (b) eGeMAPS (optional)


def opensmile_available() -> bool:
    try:
        import opensmile  # noqa: F401
    except ImportError:
        return False
    return True


@functools.lru_cache(maxsize=1)
def _smile() -> Any:
    import opensmile

    return opensmile.Smile(feature_set=opensmile.FeatureSet.eGeMAPSv02,
                           feature_level=opensmile.FeatureLevel.Functionals)


def egemaps_functionals(samples: np.ndarray, sample_rate: int) -> np.ndarray:
    """openSMILE's 88 eGeMAPSv02 functionals of one utterance."""
    values = _smile().process_signal(np.asarray(samples, dtype=np.float32), sample_rate).to_numpy()
    return np.nan_to_num(values[0].astype(np.float32))


def egemaps_baseline() -> Baseline:
    if not opensmile_available():
        raise BaselineError("the egemaps baseline needs openSMILE's Python package: pip install 'lssed[opensmile]' "
                            "(its licence allows research and personal use only), or drop egemaps from "
                            "transfer.baselines")
    # eGeMAPS: loudness and spectral LLDs on 25 ms windows, pitch/jitter/shimmer on 60 ms, 10 ms hop
    return Baseline("egemaps", egemaps_functionals, window_ms=25.0, hop_ms=10.0,
                    meta={"model": "openSMILE eGeMAPSv02 functionals", "pitch_window_ms": 60.0,
                          "licence": "openSMILE: research and personal use only"})


def make_baseline(name: str, tcfg: Any) -> Baseline:
    """The baseline ``name`` as ``tcfg`` (a TransferConfig) configures it."""
    if name == "mfcc":
        return mfcc_baseline()
    if name == "wav2vec2":
        return wav2vec2_baseline(tcfg.wav2vec2_bundle, tcfg.wav2vec2_weights, layer=tcfg.wav2vec2_layer,
                                 untrained=tcfg.wav2vec2_untrained)
    if name == "egemaps":
        return egemaps_baseline()
    raise BaselineError(f"unknown baseline {name!r}; use some of {list(BASELINES)}")


# --------------------------------------------------------------------------- over a feature set

META_COLUMNS: tuple[str, ...] = ("utt_id", "corpus", "speaker", "session", "split", "label", "score", "start_s",
                                 "end_s")


def embed_shards(baseline: Baseline, shards: Any, *, batch_rows: int = 64, sample_rate: int = 16000) -> pa.Table:
    """One ``baseline`` embedding per shard row of ``shards`` (a pyarrow dataset), sorted by utt_id.

    Columns as :mod:`lssed.embed` writes them (utt_id, corpus, speaker, session, split, label,
    score, start_s, end_s, embedding). Rows are streamed: only one batch of waveforms is in memory.
    """
    have = set(shards.schema.names)
    if "waveform" not in have:
        raise BaselineError("the shards hold no waveform column: baselines compute from the audio; rerun "
                            "`lssed preprocess` for this corpus")
    cols = [c for c in META_COLUMNS if c in have]
    meta: dict[str, list] = {c: [] for c in META_COLUMNS}
    vectors: list[np.ndarray] = []
    rates = "sample_rate" in have
    for batch in shards.scanner(columns=[*cols, "waveform", *(["sample_rate"] if rates else [])],
                                batch_size=batch_rows).to_batches():
        waves = batch.column("waveform").to_pylist() if batch.num_rows else []
        rate_col = batch.column("sample_rate").to_pylist() if rates else [sample_rate] * batch.num_rows
        for i, pcm in enumerate(waves):
            if pcm is None:
                uid = batch.column("utt_id")[i].as_py()
                raise BaselineError(f"shard row {uid} has no waveform (imported features): baselines need the audio")
            samples = np.asarray(pcm, dtype=np.float32) / PCM_SCALE
            vectors.append(np.asarray(baseline.embed(samples, int(rate_col[i] or sample_rate)), dtype=np.float32))
        for c in META_COLUMNS:
            meta[c] += batch.column(c).to_pylist() if c in cols else [None] * batch.num_rows
    dim = len(vectors[0]) if vectors else 0
    bad = [i for i, v in enumerate(vectors) if not np.all(np.isfinite(v))]
    if bad:
        log.warning("%s: %d utterance(s) gave non-finite values (set to 0), e.g. %s", baseline.name, len(bad),
                    meta["utt_id"][bad[0]])
        vectors = [np.nan_to_num(v, nan=0.0, posinf=0.0, neginf=0.0) for v in vectors]
    flat = np.concatenate(vectors) if vectors else np.zeros(0, dtype=np.float32)
    embedding = pa.FixedSizeListArray.from_arrays(pa.array(flat, pa.float32()), dim) if dim else pa.array(
        [], pa.list_(pa.float32()))
    table = pa.table({
        "utt_id": pa.array(meta["utt_id"], pa.string()), "corpus": pa.array(meta["corpus"], pa.string()),
        "speaker": pa.array(meta["speaker"], pa.string()), "session": pa.array(meta["session"], pa.string()),
        "split": pa.array(meta["split"], pa.string()), "label": pa.array(meta["label"], pa.string()),
        "score": pa.array(meta["score"], pa.float32()), "start_s": pa.array(meta["start_s"], pa.float64()),
        "end_s": pa.array(meta["end_s"], pa.float64()),
        "embedding": embedding.cast(pa.list_(pa.float32())),
    })
    return table.sort_by("utt_id")
