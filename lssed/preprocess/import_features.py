"""Import precomputed spectrograms (e.g. LSSED's released feature set) as feature shards.

LSSED's public release has features, not audio (docs/paper.md). This turns one ``.npy`` array
per utterance plus a label CSV into the same shards as ``lssed preprocess`` (SHARD_SCHEMA,
``waveform`` null), committed the same way under ``<out>/features/<digest>/``, so the model
zoo trains on them unchanged. Without waveforms, other STFT windows cannot be recomputed.

The label CSV has a header; columns (only the first two are required):

- ``utt_id``: the array is ``FEATURE_DIR/<utt_id>.npy`` (or the ``path`` column, relative to
  FEATURE_DIR);
- ``label``: an LSSED label name (angry, neutral, happy, sad, ...; case-insensitive, common
  spellings such as ``anger`` normalised), or several joined by ``;`` (a multi-label
  utterance, kept whole); ``label4`` is derived with LSSED's convention (Angry=0, Neutral=1,
  Happy=2, Sad=3; ``excited`` and the rest null unless ``corpus.merge_excited``; a
  multi-label row only when its labels name exactly one of the four);
- ``speaker``, ``gender`` (F/M), ``age``, ``session``, ``split`` (train/val(dev)/test),
  ``corpus`` (default ``lssed``), ``path``.

Splits: with a ``split`` column (every row filled), that partition; when it has no val rows
(LSSED's own 80/20 train/test), ``corpus.val_fraction`` of the rows is carved out of the
training speakers, never out of test. Without a ``split`` column the rows get a speaker
split (``corpus.seed``, ``corpus.val_fraction``, ``corpus.test_fraction``). Either way no
speaker may be in two parts (an error names them). Carving and speaker splits need the
``speaker`` column; with neither column the rows have no split (a warning says so).

Arrays are ``(n_mels, frames)``, or ``(frames, n_mels)`` with ``transposed=True``; their
values are stored as given, so set ``features.*`` (e.g. ``features.log``) to describe them.
A row whose array is missing, unreadable or of the wrong shape becomes a quarantine row.
"""

from __future__ import annotations

import csv
import hashlib
import json
import logging
import time
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from lssed.config import Config
from lssed.labels import MULTI_LABEL_SEPARATOR, label4_index
from lssed.schema import QUARANTINE_SCHEMA, SHARD_SCHEMA
from lssed.storage import Storage, stage_output

log = logging.getLogger(__name__)

IMPORT_VERSION = 2  # 2: LSSED's label convention (excited stays out of label4), val carved by speaker
OPTIONAL_COLUMNS = ("speaker", "gender", "age", "session", "split", "corpus", "path")


def read_labels(labels_csv: str | Path) -> list[dict[str, str | None]]:
    """Rows of the label CSV; raises ValueError naming what is missing."""
    path = Path(labels_csv)
    if not path.is_file():
        raise FileNotFoundError(f"label CSV {path} does not exist")
    with path.open(newline="", encoding="utf-8-sig") as f:
        reader = csv.DictReader(f)
        header = [h.strip() for h in (reader.fieldnames or [])]
        missing = [c for c in ("utt_id", "label") if c not in header]
        if missing:
            raise ValueError(f"{path} lacks column(s) {missing}; its header must include utt_id,label "
                             f"(optional: {','.join(OPTIONAL_COLUMNS)}); found {header}")
        rows = [{(k or "").strip(): (v.strip() if isinstance(v, str) and v.strip() else None) for k, v in r.items()}
                for r in reader]
    ids = [r.get("utt_id") for r in rows]
    if any(not i for i in ids):
        raise ValueError(f"{path} has rows with an empty utt_id")
    dups = [k for k, v in Counter(ids).items() if v > 1]
    if dups:
        raise ValueError(f"{path} repeats utt_id(s) {dups[:3]}; ids must be unique")
    return rows


def normalise_labels(raw: str | None) -> str | None:
    """``"Anger; excited"`` -> ``"angry;excited"``: each part's LSSED name where it has one
    (common spellings), else the part in lower case (an imported set may have its own labels)."""
    from lssed.corpora.base import normalise_label

    parts = [p.strip() for p in (raw or "").split(MULTI_LABEL_SEPARATOR) if p.strip()]
    names = [normalise_label(p) or p.lower() for p in parts]
    return MULTI_LABEL_SEPARATOR.join(dict.fromkeys(names)) or None


def assign_splits(rows: list[dict[str, Any]], cfg: Config, where: str = "label CSV") -> list[str | None]:
    """Each row's split: the CSV's (val carved from train speakers when it has none), else a
    speaker split; checked speaker-disjoint. Raises ValueError / a UserError saying what to fix."""
    from lssed.corpora.splits import assert_speaker_disjoint, official_split, speaker_split

    c = cfg.corpus
    given = [{"dev": "val"}.get((r.get("split") or "").lower(), (r.get("split") or "").lower()) or None for r in rows]
    speakers = [r.get("speaker") for r in rows]
    labels = [r.get("label") for r in rows]
    bad = sorted({g for g in given if g is not None and g not in ("train", "val", "test")})
    if bad:
        raise ValueError(f"{where}: split value(s) {bad} are not train/val(dev)/test")
    if any(g is not None for g in given):
        missing = sum(g is None for g in given)
        if missing:
            raise ValueError(f"{where}: {missing} row(s) have an empty split while others have one; fill every "
                             "row's split, or drop the column for a speaker split")
        out: list[str | None] = list(given)
        if "val" not in given and c.val_fraction > 0:
            train_without = sum(1 for g, s in zip(given, speakers) if g == "train" and not s)
            if train_without:
                raise ValueError(f"{where}: the split has no val rows, so val is carved out of the training "
                                 f"speakers, but {train_without} training row(s) have no speaker; fill the speaker "
                                 "column, give val rows in the split column, or set corpus.val_fraction=0")
            out = list(official_split(given, speakers, labels, seed=c.seed, val_fraction=c.val_fraction))
    elif any(speakers):
        if not all(speakers):
            raise ValueError(f"{where}: {sum(not s for s in speakers)} row(s) have no speaker; a speaker split needs "
                             "every row's speaker (or give a split column)")
        out = list(speaker_split(speakers, labels, seed=c.seed, val_fraction=c.val_fraction,
                                 test_fraction=c.test_fraction))
    else:
        log.warning("%s has neither a split nor a speaker column: the rows have no train/val/test split, so "
                    "training cannot use them; add one of the two columns", where)
        return [None] * len(rows)
    assert_speaker_disjoint(speakers, out, what=where)
    return out


def _array_path(feature_dir: Path, row: dict[str, Any]) -> Path:
    return feature_dir / (row.get("path") or f"{row['utt_id']}.npy")


def _load(path: Path, transposed: bool, n_mels: int) -> np.ndarray:
    if not path.is_file():
        raise _RowError("missing_file", f"{path} does not exist")
    try:
        arr = np.load(path, allow_pickle=False)
    except Exception as exc:
        raise _RowError("unreadable", f"{path}: {type(exc).__name__}: {exc}") from exc
    if arr.ndim == 3 and arr.shape[0] == 1:
        arr = arr[0]
    if arr.ndim != 2:
        raise _RowError("bad_shape", f"{path} has shape {arr.shape}; expected 2-D (n_mels, frames)")
    if transposed:
        arr = arr.T
    if arr.shape[0] != n_mels:
        raise _RowError("n_mels_mismatch", f"{path} has {arr.shape[0]} mel bands, features.n_mels={n_mels} "
                        f"(shape {arr.shape}{', transposed' if transposed else ''}); pass --transposed or "
                        "--set features.n_mels=...")
    if arr.shape[1] < 1 or not np.all(np.isfinite(arr)):
        raise _RowError("bad_values", f"{path} is empty or holds NaN/inf")
    return np.ascontiguousarray(arr, dtype=np.float32)


class _RowError(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code


def _digest(cfg: Config, feature_dir: Path, labels_csv: Path, rows: list[dict[str, Any]], transposed: bool) -> str:
    from lssed.preprocess.stage import feature_config_dict

    h = hashlib.sha256()
    h.update(labels_csv.read_bytes())
    for row in rows:  # array files: name and size (hashing GBs of arrays would cost a full read)
        p = _array_path(feature_dir, row)
        h.update(f"{p.name}:{p.stat().st_size if p.is_file() else -1}\n".encode())
    c = cfg.corpus  # the split and label settings change the shards' split and label4 columns
    corpus = {"seed": c.seed, "val_fraction": c.val_fraction, "test_fraction": c.test_fraction,
              "merge_excited": bool(c.merge_excited)}
    h.update(json.dumps({"config": feature_config_dict(cfg), "transposed": transposed, "corpus": corpus,
                         "v": IMPORT_VERSION}, sort_keys=True).encode())
    return h.hexdigest()[:16]


def import_features(cfg: Config, feature_dir: str | Path, labels_csv: str | Path, *, out: Storage,
                    transposed: bool = False, force: bool = False) -> Any:
    """Import arrays + labels into ``<out>/features/<digest>``; returns a FeatureSet."""
    from lssed.preprocess.chain import merge_stats
    from lssed.preprocess.shards import done_chunks, remove_stale, write_chunk
    from lssed.preprocess.stage import _feature_set, _final_stats, _versions, feature_config_dict

    t0 = time.perf_counter()
    feature_dir, labels_csv = Path(feature_dir), Path(labels_csv)
    if not feature_dir.is_dir():
        raise FileNotFoundError(f"feature directory {feature_dir} does not exist")
    rows = read_labels(labels_csv)
    for row, split in zip(rows, assign_splits(rows, cfg, where=str(labels_csv))):
        row["split"] = split
    digest = _digest(cfg, feature_dir, labels_csv, rows, transposed)
    stage = stage_output(out, "features", digest)
    if force:
        stage.clear()
    elif stage.is_committed():
        log.info("imported features %s already committed: skipping", stage.uri)
        return _feature_set(stage.storage, stage.marker(), skipped=True)
    dest = stage.storage
    per = max(1, cfg.preprocess.rows_per_shard)
    chunks = [rows[i:i + per] for i in range(0, len(rows), per)]
    done = {k: v for k, v in done_chunks(dest).items() if k < len(chunks)}
    remove_stale(dest, set(done))
    n_mels = cfg.features.n_mels
    for cid, chunk in enumerate(chunks):
        if cid in done:
            continue
        cpu0 = time.process_time()
        kept: list[tuple[dict[str, Any], np.ndarray]] = []
        bad: list[tuple[dict[str, Any], str, str]] = []
        for row in chunk:
            try:
                kept.append((row, _load(_array_path(feature_dir, row), transposed, n_mels)))
            except _RowError as exc:
                bad.append((row, exc.code, str(exc)))
        if cid == 0 and not kept and bad and all(c == "n_mels_mismatch" for _, c, _ in bad):
            raise ValueError(bad[0][2])
        shard = _shard(kept, cfg)
        quarantine = pa.table({
            "utt_id": [r["utt_id"] for r, _, _ in bad],
            "media_uri": [str(_array_path(feature_dir, r)) for r, _, _ in bad],
            "stage": ["import"] * len(bad),
            "error": [e for _, _, e in bad],
        }, schema=QUARANTINE_SCHEMA)
        stats = {
            "rows_in": len(chunk), "rows_out": shard.num_rows, "rows_quarantined": quarantine.num_rows,
            "quarantined_by_stage": dict(Counter("import" for _ in bad)),
            "quarantined_by_reason": dict(Counter(f"import/{c}" for _, c, _ in bad)),
            "rows_by_label": dict(Counter(str(r.get("label")) for r, _ in kept)),
            "rows_by_split": dict(Counter(str(r.get("split")) for r, _ in kept)),
            "frames_out": int(sum(a.shape[1] for _, a in kept)),
            "cpu_s": {"total": time.process_time() - cpu0},
        }
        write_chunk(dest, cid, shard, quarantine, stats, row_group_size=cfg.preprocess.batch_size)
        log.info("imported chunk %d/%d: %d rows, %d quarantined", cid + 1, len(chunks), shard.num_rows, quarantine.num_rows)
    done = done_chunks(dest)
    per_chunk = [done[i] for i in range(len(chunks))]
    merged = merge_stats([{k: v for k, v in c.items() if k != "chunk"} for c in per_chunk])
    stats = _final_stats(merged, wall_s=time.perf_counter() - t0, chunks=len(chunks), resumed=0)
    counts = {"rows_in": len(rows), "rows_out": int(merged.get("rows_out", 0)),
              "rows_quarantined": int(merged.get("rows_quarantined", 0))}
    if counts["rows_out"] + counts["rows_quarantined"] != counts["rows_in"]:
        raise RuntimeError(f"row accounting failed in {dest.uri}: {counts}; rerun with force")
    marker = {
        "stage": "import-features", "digest": digest, "source": {"feature_dir": str(feature_dir),
                                                                 "labels_csv": str(labels_csv), "transposed": transposed},
        "imported": True, "config": feature_config_dict(cfg), "counts": counts, "stats": stats,
        "layout": {"shards": "shards", "quarantine": "quarantine", "chunks": "_chunks",
                   "chunk_files": [f"part-{i:05d}.parquet" for i in range(len(chunks))]},
        "versions": _versions(), "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    stage.commit(marker)
    return _feature_set(dest, marker, skipped=False)


def _shard(kept: list[tuple[dict[str, Any], np.ndarray]], cfg: Config) -> pa.Table:
    from lssed.preprocess.chain import _list_array

    n = len(kept)
    rows = [r for r, _ in kept]

    def col(name: str, default: Any = None) -> list[Any]:
        return [r.get(name) if r.get(name) is not None else default for r in rows]

    labels = [normalise_labels(r["label"]) for r in rows]
    merge = bool(cfg.corpus.merge_excited)  # LSSED's convention unless asked: excited is its own label
    cols = {
        "utt_id": col("utt_id"), "corpus": col("corpus", "lssed"), "speaker": col("speaker"),
        "gender": [(g or "").upper()[:1] or None for g in col("gender")], "age": col("age"),
        "session": col("session"), "label": labels, "label4": [label4_index(lb, merge_excited=merge) for lb in labels],
        "split": col("split"), "fold": [None] * n, "score": [None] * n, "start_s": [None] * n, "end_s": [None] * n,
        "sample_rate": [cfg.features.sample_rate] * n,
        "n_mels": [int(a.shape[0]) for _, a in kept], "n_frames": [int(a.shape[1]) for _, a in kept],
        "clipped_samples": [None] * n,
    }
    arrays = {name: pa.array(v, SHARD_SCHEMA.field(name).type) for name, v in cols.items()}
    arrays["logmel"] = _list_array([a.reshape(-1) for _, a in kept], pa.float32())
    arrays["waveform"] = pa.nulls(n, SHARD_SCHEMA.field("waveform").type)
    return pa.table([arrays[f.name] for f in SHARD_SCHEMA], schema=SHARD_SCHEMA)

