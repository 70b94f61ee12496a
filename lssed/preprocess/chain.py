"""The per-utterance chain, as pure functions: decode -> denoise -> gain -> log-mel -> row.

Paper (docs/paper.md): 16 kHz mono, spectral-subtraction denoising, volume x2, STFT Hann 1024 /
hop 512, power 2, 128 mel bands; we add a log (``features.log``). The gain clips to
[-1, 1] and counts every clipped sample (never silently). A row that fails at any step
becomes a quarantine row ``(utt_id, media_uri, stage, error)``, logged as a warning; nothing
is dropped.

:func:`process_chunk` runs the chain over a manifest slice (rows grouped by media file, each
file opened once) and returns Arrow tables plus JSON-able stats; it performs no writes, so
it is used unchanged by the Ray actors, the plain-loop benchmark and the tests.
"""

from __future__ import annotations

import logging
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import IO, Any, Callable

import numpy as np
import pyarrow as pa

from lssed.preprocess.decode import DecodeError, Segment, decode_file, open_source
from lssed.preprocess.denoise import BATCHED, denoise, denoise_batch
from lssed.schema import CARRIED_COLUMNS, QUARANTINE_SCHEMA, SHARD_SCHEMA

log = logging.getLogger(__name__)

# int16 PCM convention of the shards' ``waveform`` column: float = int16 / 32768.
INT16_SCALE = 32768.0


def apply_gain(samples: np.ndarray, gain: float) -> tuple[np.ndarray, int]:
    """``samples * gain`` clipped to [-1, 1]; returns the result and how many samples clipped."""
    y = samples.astype(np.float32, copy=False) * np.float32(gain)
    clipped = int(np.count_nonzero(np.abs(y) > 1.0))
    if clipped:
        np.clip(y, -1.0, 1.0, out=y)
    return y, clipped


def to_int16(samples: np.ndarray) -> np.ndarray:
    """float in [-1, 1] -> int16 PCM (``round(x * 32768)`` saturated); see :data:`INT16_SCALE`."""
    return np.clip(np.rint(samples * INT16_SCALE), -32768, 32767).astype(np.int16)


def from_int16(pcm: np.ndarray) -> np.ndarray:
    """int16 PCM from a shard's ``waveform`` -> float32 in [-1, 1)."""
    return np.asarray(pcm, dtype=np.float32) / np.float32(INT16_SCALE)


def compute_logmel(samples: np.ndarray, feature_cfg: Any) -> np.ndarray:
    """``(n_mels, frames)`` float32: :func:`lssed.features.logmel`'s numbers, computed in numpy
    (:mod:`lssed.features_np`) so that preprocessing actors do not import torch."""
    from lssed.features_np import logmel

    return logmel(samples, feature_cfg)


@dataclass(frozen=True)
class Processed:
    """One utterance after the chain."""

    waveform: np.ndarray  # float32, denoised and gained, clipped to [-1, 1]
    logmel: np.ndarray  # float32 (n_mels, frames)
    clipped_samples: int


class ChainError(Exception):
    """A step after decoding failed; ``stage`` names it for the quarantine table."""

    def __init__(self, stage: str, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.stage, self.code = stage, code


def process_samples(samples: np.ndarray, cfg: Any, timings: dict[str, float] | None = None, *,
                    clean: np.ndarray | BaseException | None = None) -> Processed:
    """denoise -> gain -> log-mel for one decoded utterance (16 kHz mono float32).

    Raises :class:`ChainError` naming the failing stage. ``timings`` (if given) accumulates the
    CPU seconds of each step. ``clean``: the utterance already denoised (or the denoiser's
    error), when a batched denoiser ran over the whole chunk (:func:`denoise_all`).
    """
    pre, feat = cfg.preprocess, cfg.features
    min_samples = int(round(pre.min_duration_s * pre.sample_rate))
    if samples.size < max(1, min_samples):
        raise ChainError("decode", "too_short", f"{samples.size / pre.sample_rate:.3f} s of audio is shorter than "
                         f"preprocess.min_duration_s={pre.min_duration_s}")
    if not np.all(np.isfinite(samples)):
        raise ChainError("decode", "non_finite", "the decoded audio holds NaN or infinite samples")
    t0 = time.process_time()
    try:
        if isinstance(clean, BaseException):
            raise clean
        if clean is None:
            clean = denoise(samples, pre.sample_rate, pre.denoise)
    except Exception as exc:
        raise ChainError("denoise", "denoise_failed", f"{type(exc).__name__}: {exc}") from exc
    t1 = time.process_time()
    gained, clipped = apply_gain(clean, pre.gain)
    # The shard stores int16 PCM; compute the log-mel from exactly those samples so that a
    # trainer recomputing features from the stored waveform gets the stored features back.
    gained = from_int16(to_int16(gained))
    t2 = time.process_time()
    try:
        mel = compute_logmel(gained, feat)
    except Exception as exc:
        raise ChainError("features", "features_failed", f"{type(exc).__name__}: {exc}") from exc
    if not np.all(np.isfinite(mel)):
        raise ChainError("features", "non_finite", "the log-mel holds NaN or infinite values (features.log_offset=0?)")
    t3 = time.process_time()
    if timings is not None:
        timings["denoise"] = timings.get("denoise", 0.0) + (t1 - t0)
        timings["gain"] = timings.get("gain", 0.0) + (t2 - t1)
        timings["features"] = timings.get("features", 0.0) + (t3 - t2)
    return Processed(gained, mel, clipped)


@dataclass
class ChunkResult:
    """What :func:`process_chunk` returns: shard rows, quarantine rows, stats (JSON-able)."""

    shard: pa.Table
    quarantine: pa.Table
    stats: dict[str, Any] = field(default_factory=dict)


def denoise_all(decoded: dict[int, np.ndarray], cfg: Any) -> dict[int, np.ndarray | Exception]:
    """A batched denoiser (``preprocess.denoise: torchgate``) over a chunk's decoded utterances.

    Utterances that :func:`process_samples` will reject before denoising are skipped. If the
    batch fails, each utterance is retried alone, so only the culprit is quarantined.
    """
    pre = cfg.preprocess
    min_samples = max(1, int(round(pre.min_duration_s * pre.sample_rate)))
    ids = [i for i, x in decoded.items() if x.size >= min_samples and np.all(np.isfinite(x))]
    try:
        return dict(zip(ids, denoise_batch([decoded[i] for i in ids], pre.sample_rate, pre.denoise)))
    except Exception as exc:
        log.warning("batched denoising of %d utterances failed (%s: %s); retrying one by one",
                    len(ids), type(exc).__name__, exc)
    out: dict[int, np.ndarray | Exception] = {}
    for i in ids:
        try:
            out[i] = denoise_batch([decoded[i]], pre.sample_rate, pre.denoise)[0]
        except Exception as exc:
            out[i] = exc
    return out


def _list_array(arrays: list[np.ndarray], dtype: pa.DataType) -> pa.Array:
    lengths = np.fromiter((a.size for a in arrays), dtype=np.int64, count=len(arrays))
    offsets = np.zeros(len(arrays) + 1, dtype=np.int32)
    np.cumsum(lengths, out=offsets[1:])
    values = np.concatenate(arrays) if arrays else np.zeros(0)
    return pa.ListArray.from_arrays(pa.array(offsets, pa.int32()), pa.array(values.astype(dtype.to_pandas_dtype(), copy=False), dtype))


def _span(row: dict[str, Any]) -> float | None:
    s, e = row.get("start_s"), row.get("end_s")
    if e is None:
        return None
    return float(e) - float(s or 0.0)


def process_chunk(
    manifest: pa.Table,
    cfg: Any,
    *,
    storage: Any | None = None,
    opener: Callable[[str, Any], str | IO[bytes]] = open_source,
) -> ChunkResult:
    """Run the chain over manifest rows; every input row ends in ``shard`` or ``quarantine``.

    Rows are grouped by ``media_uri`` (each file opened once, segments in start order).
    ``storage`` gives the endpoint/region for s3:// media.
    """
    wall0, cpu0 = time.perf_counter(), time.process_time()
    pre = cfg.preprocess
    rows = manifest.to_pylist()
    by_media: dict[str, list[int]] = defaultdict(list)
    for i, row in enumerate(rows):
        by_media[row["media_uri"]].append(i)

    kept: dict[int, Processed] = {}
    quarantined: dict[int, tuple[str, str, str]] = {}  # i -> (stage, code, error)
    timings: dict[str, float] = {"decode": 0.0, "denoise": 0.0, "gain": 0.0, "features": 0.0}
    decoded_s = 0.0
    pending: dict[int, np.ndarray] = {}  # decoded utterances, chain still to run

    def run_pending(cleaned: dict[int, np.ndarray | Exception]) -> None:
        for i in list(pending):
            try:
                kept[i] = process_samples(pending.pop(i), cfg, timings, clean=cleaned.pop(i, None))
            except ChainError as exc:
                quarantined[i] = (exc.stage, exc.code, str(exc))
            except Exception as exc:  # never let one row fail the chunk
                quarantined[i] = ("chain", "unexpected", f"{type(exc).__name__}: {exc}")

    batched = pre.denoise in BATCHED
    for media_uri, idx in by_media.items():
        idx = sorted(idx, key=lambda i: (rows[i].get("start_s") or 0.0, rows[i]["utt_id"]))
        segments = [Segment(rows[i].get("start_s"), rows[i].get("end_s")) for i in idx]
        t0 = time.process_time()
        decoded = decode_file(media_uri, segments, storage=storage, sample_rate=pre.sample_rate,
                              max_missing_s=pre.max_missing_s, max_segment_s=pre.max_segment_s, opener=opener)
        timings["decode"] += time.process_time() - t0
        for i, result in zip(idx, decoded):
            if isinstance(result, DecodeError):
                quarantined[i] = ("decode", result.code, str(result))
                continue
            decoded_s += result.size / pre.sample_rate
            pending[i] = result
        if not batched:  # one file's audio in memory at a time
            run_pending({})
    if batched:
        # A batched denoiser (torchgate) runs over the whole chunk at once; the chunk's decoded
        # audio is then held together (bounded by preprocess.max_shard_audio_s).
        t0 = time.process_time()
        cleaned = denoise_all(pending, cfg)
        timings["denoise"] += time.process_time() - t0
        run_pending(cleaned)

    order = [i for i in range(len(rows)) if i in kept]
    shard = _shard_table([rows[i] for i in order], [kept[i] for i in order], cfg)
    qrows = [i for i in range(len(rows)) if i in quarantined]
    quarantine = pa.table(
        {
            "utt_id": [rows[i]["utt_id"] for i in qrows],
            "media_uri": [rows[i]["media_uri"] for i in qrows],
            "stage": [quarantined[i][0] for i in qrows],
            "error": [quarantined[i][2] for i in qrows],
        },
        schema=QUARANTINE_SCHEMA,
    )
    # One line per row, so a quarantined utterance can be found in the logs of the actor that
    # processed it; the counts by reason are in the stats and in _SUCCESS.json.
    for i in qrows:
        log.warning("quarantined %s (%s, %s): %s", rows[i]["utt_id"], quarantined[i][0], rows[i]["media_uri"],
                    quarantined[i][2])
    if qrows:
        log.info("%d of %d rows quarantined: %s", len(qrows), len(rows),
                 dict(Counter(f"{quarantined[i][0]}/{quarantined[i][1]}" for i in qrows)))

    samples_out = sum(int(kept[i].waveform.size) for i in order)
    clipped = sum(kept[i].clipped_samples for i in order)
    stats: dict[str, Any] = {
        "rows_in": len(rows),
        "rows_out": shard.num_rows,
        "rows_quarantined": quarantine.num_rows,
        "quarantined_by_stage": dict(Counter(quarantined[i][0] for i in qrows)),
        "quarantined_by_reason": dict(Counter(f"{quarantined[i][0]}/{quarantined[i][1]}" for i in qrows)),
        "rows_by_label": dict(Counter(str(rows[i].get("label")) for i in order)),
        "rows_by_split": dict(Counter(str(rows[i].get("split")) for i in order)),
        "manifest_audio_s": float(sum(d for d in (_span(r) for r in rows) if d is not None)),
        "decoded_audio_s": float(decoded_s),
        "output_audio_s": samples_out / pre.sample_rate,
        "samples_out": samples_out,
        "clipped_samples": int(clipped),
        "files_opened": len(by_media),
        "cpu_s": {k: float(v) for k, v in timings.items()} | {"total": time.process_time() - cpu0},
        "wall_s": time.perf_counter() - wall0,
    }
    return ChunkResult(shard, quarantine, stats)


def _shard_table(rows: list[dict[str, Any]], done: list[Processed], cfg: Any) -> pa.Table:
    n = len(rows)
    cols: dict[str, Any] = {name: pa.array([r.get(name) for r in rows], SHARD_SCHEMA.field(name).type)
                            for name in CARRIED_COLUMNS}
    cols["sample_rate"] = pa.array([cfg.preprocess.sample_rate] * n, pa.int32())
    cols["n_mels"] = pa.array([int(p.logmel.shape[0]) for p in done], pa.int32())
    cols["n_frames"] = pa.array([int(p.logmel.shape[1]) for p in done], pa.int32())
    cols["logmel"] = _list_array([p.logmel.reshape(-1) for p in done], pa.float32())
    cols["waveform"] = _list_array([to_int16(p.waveform) for p in done], pa.int16())
    cols["clipped_samples"] = pa.array([p.clipped_samples for p in done], pa.int32())
    return pa.table([cols[f.name] for f in SHARD_SCHEMA], schema=SHARD_SCHEMA)


def merge_stats(parts: list[dict[str, Any]]) -> dict[str, Any]:
    """Sum chunk stats (numbers add, dicts merge by key)."""
    out: dict[str, Any] = {}
    for part in parts:
        for key, value in part.items():
            if isinstance(value, dict):
                sub = out.setdefault(key, {})
                for k, v in value.items():
                    sub[k] = sub.get(k, 0) + v
            elif isinstance(value, (int, float)) and not isinstance(value, bool):
                out[key] = out.get(key, 0) + value
    return out
