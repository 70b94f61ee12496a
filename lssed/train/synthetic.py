"""A small, learnable feature set in the preprocess stage's exact layout (tests, benchmarks).

Each class is a harmonic tone at its own pitch band with a class-specific amplitude
envelope, plus noise; log-mels come from the int16 waveform through
:func:`lssed.features.logmel`, so stored and train-time features agree. It stands in for
real preprocessed shards where decoding and denoising are beside the point (throughput,
trainer mechanics).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from lssed.config import FeatureConfig, config_to_dict
from lssed.labels import BENCHMARK_CLASSES
from lssed.schema import SHARD_SCHEMA
from lssed.storage import SUCCESS_MARKER, Storage

_PITCH = (220.0, 330.0, 495.0, 740.0)  # Hz, per class
_RATE = (2.0, 6.0, 4.0, 1.0)  # envelope modulation, per class


def _wave(rng: np.random.Generator, label: int, seconds: float, sr: int) -> np.ndarray:
    t = np.arange(int(seconds * sr)) / sr
    f0 = _PITCH[label] * rng.uniform(0.9, 1.1)
    sig = sum((0.5 / k) * np.sin(2 * np.pi * k * f0 * t + rng.uniform(0, 2 * np.pi)) for k in range(1, 5))
    env = 0.6 + 0.4 * np.sin(2 * np.pi * _RATE[label] * t)
    y = 0.3 * sig * env + 0.02 * rng.standard_normal(t.size)
    return np.clip(y, -1.0, 1.0)


def write_synthetic_features(root: Storage, *, speakers: int = 6, per_class: int = 4, unlabelled: int = 2,
                             min_s: float = 0.6, max_s: float = 1.6, features: FeatureConfig | None = None,
                             rows_per_shard: int = 64, seed: int = 0, digest: str = "synthetic0001") -> str:
    """Write ``<root>/features/<digest>/{shards/*.parquet,_SUCCESS.json}``; returns its URI.

    Speakers are split speaker-independently: the last one is test, the one before is val.
    ``unlabelled`` rows per speaker carry label "other" (label4 null).
    """
    import torch

    from lssed.features import logmel

    feat = features or FeatureConfig()
    rng = np.random.default_rng(seed)
    rows: list[dict[str, Any]] = []
    for s in range(speakers):
        split = "test" if s == speakers - 1 else "val" if s == speakers - 2 else "train"
        items = [(c, BENCHMARK_CLASSES[c]) for c in range(4) for _ in range(per_class)]
        items += [(int(rng.integers(0, 4)), "other") for _ in range(unlabelled)]
        for i, (c, name) in enumerate(items):
            seconds = float(rng.uniform(min_s, max_s))
            pcm = np.clip(np.rint(_wave(rng, c, seconds, feat.sample_rate) * 32768), -32768, 32767).astype(np.int16)
            with torch.no_grad():
                mel = logmel(torch.from_numpy(pcm.astype(np.float32) / 32768.0), feat).numpy().astype(np.float32)
            rows.append({
                "utt_id": f"syn_s{s:02d}_{i:03d}",
                "corpus": "synthetic",
                "speaker": f"s{s:02d}",
                "gender": "F" if s % 2 else "M",
                "age": None,
                "session": None,
                "label": name,
                "label4": c if name != "other" else None,
                "split": split,
                "start_s": 0.0,
                "end_s": seconds,
                "sample_rate": feat.sample_rate,
                "n_mels": mel.shape[0],
                "n_frames": mel.shape[1],
                "logmel": mel.reshape(-1),
                "waveform": pcm,
                "clipped_samples": 0,
            })
    out = root.child("features", digest)
    out.delete_dir()
    order = rng.permutation(len(rows))
    rows = [rows[i] for i in order]
    for k in range(0, len(rows), rows_per_shard):
        chunk = rows[k:k + rows_per_shard]
        table = pa.Table.from_pylist(chunk, schema=SHARD_SCHEMA)
        sink = pa.BufferOutputStream()
        pq.write_table(table, sink, compression="zstd")
        out.write_bytes(sink.getvalue().to_pybytes(), "shards", f"part-{k // rows_per_shard:05d}.parquet")
    labelled = [r for r in rows if r["label4"] is not None]
    out.write_json({
        "digest": digest,
        "config": {"features": config_to_dict(feat)},
        "counts": {"rows_in": len(rows), "rows_out": len(rows), "rows_quarantined": 0},
        "stats": {"labelled": len(labelled)},
    }, SUCCESS_MARKER)
    return out.uri
