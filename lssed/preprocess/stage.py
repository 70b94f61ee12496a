"""The preprocess stage: manifest -> ``<out>/features/<digest>/`` (shards, quarantine, stats).

The digest covers the manifest's content (every column of every row, media paths resolved)
and the ``preprocess`` + ``features`` config (minus throughput knobs), so a rerun with the
same inputs finds the committed ``_SUCCESS.json`` and returns at once (``skipped=True``).
The manifest is cut into deterministic chunks (rows sorted by media file, then start time);
a chunk whose marker exists is not redone, so a killed run resumes where it stopped.
At the end, ``shard rows + quarantined rows == manifest rows`` and the utt_id sets match
exactly (no duplicates, nothing missing), or the stage raises before committing.
Media contents are not hashed: replacing a media file under the same path needs ``force``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import posixpath
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlparse

import pyarrow as pa
import pyarrow.parquet as pq

from lssed.config import Config, config_to_dict
from lssed.errors import UserError
from lssed.schema import MANIFEST_SCHEMA
from lssed.storage import SUCCESS_MARKER, Storage, StorageError, stage_output, storage_from_config

log = logging.getLogger(__name__)

# Bump when the chain's output changes for the same config (it is part of the digest).
PIPELINE_VERSION = 1
STAGE = "features"
_THROUGHPUT_KEYS = ("num_actors", "cpus_per_actor", "gpus_per_actor", "actor_start_timeout_s", "keep_freed_memory")
_UNKNOWN_SPAN_S = 30.0


class ManifestError(UserError, ValueError):
    """The manifest cannot be preprocessed; the message says what to fix."""


@dataclass(frozen=True)
class FeatureSet:
    """A committed feature set (``<out>/features/<digest>``) and its counts and stats."""

    uri: str
    digest: str
    shards_uri: str
    quarantine_uri: str
    rows_in: int
    rows_out: int
    rows_quarantined: int
    skipped: bool
    stats: dict[str, Any] = field(default_factory=dict)


# --------------------------------------------------------------------------- manifest


def read_manifest(manifest_uri: str | os.PathLike[str], storage_cfg: Any = None) -> pa.Table:
    """Read and validate a manifest parquet; relative media paths resolve against its folder.

    Missing optional columns are added as nulls; ``utt_id`` and ``media_uri`` are required,
    and utt_ids must be unique and non-null.
    """
    manifest_uri = os.fspath(manifest_uri)
    st = storage_from_config(storage_cfg, manifest_uri)
    if not st.exists():
        raise ManifestError(f"manifest {manifest_uri} does not exist (write one with `lssed prepare ...`)")
    try:
        table = pq.read_table(st.root, filesystem=st.filesystem)
    except Exception as exc:
        raise ManifestError(f"manifest {manifest_uri} is not a readable Parquet file: {exc}") from exc
    missing = [c for c in ("utt_id", "media_uri") if c not in table.column_names]
    if missing:
        raise ManifestError(f"manifest {manifest_uri} lacks column(s) {missing}; expected the columns of "
                            f"lssed.schema.MANIFEST_SCHEMA: {MANIFEST_SCHEMA.names}")
    cols = []
    for fld in MANIFEST_SCHEMA:
        if fld.name in table.column_names:
            try:
                cols.append(table.column(fld.name).cast(fld.type))
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
                raise ManifestError(f"manifest column {fld.name!r} cannot be read as {fld.type}: {exc}") from exc
        else:
            cols.append(pa.nulls(table.num_rows, fld.type))
    table = pa.table(cols, schema=MANIFEST_SCHEMA)
    ids = table.column("utt_id").to_pylist()
    if any(i is None or i == "" for i in ids):
        raise ManifestError(f"manifest {manifest_uri} has rows without utt_id; every row needs a unique id")
    dups = [k for k, v in Counter(ids).items() if v > 1]
    if dups:
        raise ManifestError(f"manifest {manifest_uri} has {len(dups)} duplicated utt_id(s), e.g. {dups[:3]}; "
                            "make ids unique (e.g. prefix them with the corpus or session)")
    base = posixpath.dirname(st.root)
    media = [_resolve(m, base, st.is_s3) for m in table.column("media_uri").to_pylist()]
    return table.set_column(table.schema.get_field_index("media_uri"), "media_uri", pa.array(media, pa.string()))


def _resolve(media: str | None, base: str, base_is_s3: bool) -> str | None:
    if not media or urlparse(media).scheme in ("s3", "s3a", "file") or posixpath.isabs(media):
        return media
    joined = posixpath.normpath(posixpath.join(base, media))
    return f"s3://{joined}" if base_is_s3 else joined


def manifest_hash(table: pa.Table) -> str:
    """sha256 of the manifest's rows in utt_id order (independent of file layout)."""
    order = sorted(range(table.num_rows), key=table.column("utt_id").to_pylist().__getitem__)
    rows = table.take(pa.array(order, pa.int64())).to_pylist() if order else []
    h = hashlib.sha256()
    for row in rows:
        h.update(json.dumps(row, sort_keys=True, default=str).encode())
        h.update(b"\n")
    return h.hexdigest()


def feature_config_dict(cfg: Config) -> dict[str, Any]:
    """What the output depends on: preprocess (minus throughput knobs) + features."""
    pre = {k: v for k, v in config_to_dict(cfg.preprocess).items() if k not in _THROUGHPUT_KEYS}
    return {"preprocess": pre, "features": config_to_dict(cfg.features)}


def features_digest(cfg: Config, manifest_sha: str) -> str:
    payload = json.dumps({"manifest": manifest_sha, "config": feature_config_dict(cfg), "version": PIPELINE_VERSION},
                         sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


# --------------------------------------------------------------------------- chunks


def plan_chunks(manifest: pa.Table, pre: Any) -> list[pa.Table]:
    """Deterministic chunks: rows sorted by (media_uri, start_s, utt_id), cut by row count and audio.

    Each chunk holds at most ``rows_per_shard`` rows (fewer for small manifests, so there are
    at least ``min_shards`` chunks) and about ``max_shard_audio_s`` seconds of audio.
    """
    from lssed.preprocess.pipeline import CHUNK_COLUMN

    n = manifest.num_rows
    if n == 0:
        return []
    cap = max(1, min(pre.rows_per_shard, math.ceil(n / max(1, min(pre.min_shards, n)))))
    media = manifest.column("media_uri").to_pylist()
    starts = manifest.column("start_s").to_pylist()
    ends = manifest.column("end_s").to_pylist()
    ids = manifest.column("utt_id").to_pylist()
    order = sorted(range(n), key=lambda i: (media[i] or "", starts[i] or 0.0, ids[i]))
    chunk_of = [0] * n
    chunk, rows, audio = 0, 0, 0.0
    for i in order:
        span = (ends[i] - (starts[i] or 0.0)) if ends[i] is not None else _UNKNOWN_SPAN_S
        if rows and (rows >= cap or audio + span > pre.max_shard_audio_s):
            chunk, rows, audio = chunk + 1, 0, 0.0
        chunk_of[i] = chunk
        rows += 1
        audio += max(span, 0.0)
    sorted_table = manifest.take(pa.array(order, pa.int64()))
    ids_col = pa.array([chunk_of[i] for i in order], pa.int64())
    sorted_table = sorted_table.append_column(CHUNK_COLUMN, ids_col)
    out, start = [], 0
    ids_list = ids_col.to_pylist()
    for c in range(chunk + 1):
        end = start
        while end < n and ids_list[end] == c:
            end += 1
        out.append(sorted_table.slice(start, end - start).combine_chunks())
        start = end
    return out


# --------------------------------------------------------------------------- the stage


def preprocess(cfg: Config, manifest_uri: str | os.PathLike[str], *, out: Storage, force: bool = False) -> FeatureSet:
    """Run (or skip, or resume) the preprocess stage; returns the committed :class:`FeatureSet`."""
    from lssed.preprocess.chain import merge_stats
    from lssed.preprocess.shards import CHUNKS_DIR, QUARANTINE_DIR, SHARDS_DIR, done_chunks, read_column, remove_stale
    from lssed.validate import validate_config

    validate_config(cfg, "preprocess")  # every bad setting named, before Ray or any decoding starts
    t0 = time.perf_counter()
    manifest_uri = os.fspath(manifest_uri)
    manifest = read_manifest(manifest_uri, cfg.storage)
    sha = manifest_hash(manifest)
    digest = features_digest(cfg, sha)
    stage = stage_output(out, STAGE, digest)
    if force:
        stage.clear()
    elif stage.is_committed():
        log.info("features %s already committed: skipping (use force to redo)", stage.uri)
        return _feature_set(stage.storage, stage.marker(), skipped=True)

    dest = stage.storage
    chunks = plan_chunks(manifest, cfg.preprocess)
    done = done_chunks(dest)
    valid = set(range(len(chunks)))
    done = {k: v for k, v in done.items() if k in valid}
    removed = remove_stale(dest, set(done))
    if done or removed:
        log.info("resuming %s: %d of %d chunk(s) already done (%d stale file(s) removed)",
                 dest.uri, len(done), len(chunks), removed)
    pending_ids = [i for i in range(len(chunks)) if i not in done]
    pending = [chunks[i] for i in pending_ids]
    media_storage = storage_from_config(cfg.storage)
    run_wall = 0.0
    if pending:
        from lssed.preprocess.pipeline import run_chunks
        from lssed.runtime import init_ray

        init_ray(cfg.ray, data_only=True)  # a no-op inside the workflow, which started Ray already
        t_run = time.perf_counter()
        for k, summary in enumerate(run_chunks(pending, cfg, out=dest, media_storage=media_storage), 1):
            log.info("chunk %d done (%d/%d this run): %d rows, %d quarantined", summary["chunk"], k, len(pending),
                     summary["rows_out"], summary["rows_quarantined"])
        run_wall = time.perf_counter() - t_run
        done = {k: v for k, v in done_chunks(dest).items() if k in valid}
    missing = sorted(valid - set(done))
    if missing:
        raise RuntimeError(f"{len(missing)} chunk(s) of {dest.uri} did not finish (e.g. {missing[:5]}); rerun to resume")

    # Nothing lost, nothing doubled: the utt_id sets must partition the manifest exactly.
    shard_ids = read_column(dest, SHARDS_DIR, "utt_id")
    quarantine_ids = read_column(dest, QUARANTINE_DIR, "utt_id")
    manifest_ids = manifest.column("utt_id").to_pylist()
    seen = Counter(shard_ids) + Counter(quarantine_ids)
    doubled = [k for k, v in seen.items() if v > 1]
    lost = sorted(set(manifest_ids) - set(seen))
    extra = sorted(set(seen) - set(manifest_ids))
    if doubled or lost or extra or len(shard_ids) + len(quarantine_ids) != len(manifest_ids):
        raise RuntimeError(f"row accounting failed in {dest.uri}: {len(shard_ids)} shard + {len(quarantine_ids)} "
                           f"quarantined != {len(manifest_ids)} manifest rows (doubled {doubled[:3]}, lost {lost[:3]}, "
                           f"unknown {extra[:3]}); rerun with force")

    per_chunk = [done[i] for i in sorted(done)]
    stats = _final_stats(merge_stats([{k: v for k, v in c.items() if k != "chunk"} for c in per_chunk]),
                         wall_s=time.perf_counter() - t0, chunks=len(chunks), resumed=len(chunks) - len(pending))
    run_audio = sum(done[i].get("decoded_audio_s", 0.0) for i in pending_ids)
    stats["this_run"] = {"chunks": len(pending_ids), "decoded_audio_s": run_audio, "pipeline_wall_s": run_wall,
                         "audio_s_per_wall_s": run_audio / run_wall if run_wall else 0.0}
    if stats["clip_rate"] > 0.01:
        log.warning("gain x%s clipped %.2f%% of the samples (%d): consider preprocess.gain=1 for loud corpora",
                    cfg.preprocess.gain, 100 * stats["clip_rate"], stats["clipped_samples"])
    marker = {
        "stage": "preprocess",
        "digest": digest,
        "manifest_uri": manifest_uri,
        "manifest_sha256": sha,
        "config": feature_config_dict(cfg),
        "pipeline_version": PIPELINE_VERSION,
        "counts": {"rows_in": len(manifest_ids), "rows_out": len(shard_ids), "rows_quarantined": len(quarantine_ids)},
        "stats": stats,
        "layout": {"shards": SHARDS_DIR, "quarantine": QUARANTINE_DIR, "chunks": CHUNKS_DIR,
                   "chunk_files": [f"part-{i:05d}.parquet" for i in range(len(chunks))]},
        "versions": _versions(),
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    stage.commit(marker)
    log.info("features committed at %s: %d rows, %d quarantined, %.2f h of audio",
             dest.uri, len(shard_ids), len(quarantine_ids), stats["output_audio_h"])
    return _feature_set(dest, marker, skipped=False)


def _final_stats(s: dict[str, Any], *, wall_s: float, chunks: int, resumed: int) -> dict[str, Any]:
    cpu = s.get("cpu_s", {}).get("total", 0.0)
    samples = s.get("samples_out", 0)
    s.update(
        manifest_audio_h=s.get("manifest_audio_s", 0.0) / 3600,
        decoded_audio_h=s.get("decoded_audio_s", 0.0) / 3600,
        output_audio_h=s.get("output_audio_s", 0.0) / 3600,
        clip_rate=(s.get("clipped_samples", 0) / samples) if samples else 0.0,
        audio_s_per_cpu_s=(s.get("decoded_audio_s", 0.0) / cpu) if cpu else 0.0,
        wall_s=wall_s,
        chunks=chunks,
        chunks_resumed=resumed,
    )
    for key in ("rows_in", "rows_out", "rows_quarantined", "samples_out", "clipped_samples", "files_opened"):
        s.setdefault(key, 0)
    for key in ("quarantined_by_stage", "quarantined_by_reason", "rows_by_label", "rows_by_split"):
        s.setdefault(key, {})
    return s


def _versions() -> dict[str, str]:
    import importlib.metadata as md

    out = {}
    for pkg in ("lssed", "ray", "av", "torch", "torchaudio", "pyarrow", "noisereduce", "numpy"):
        try:
            out[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            pass
    return out


def _feature_set(dest: Storage, marker: dict[str, Any], *, skipped: bool) -> FeatureSet:
    from lssed.preprocess.shards import QUARANTINE_DIR, SHARDS_DIR

    counts = marker["counts"]
    return FeatureSet(
        uri=dest.uri,
        digest=marker["digest"],
        shards_uri=dest.join_uri(SHARDS_DIR),
        quarantine_uri=dest.join_uri(QUARANTINE_DIR),
        rows_in=int(counts["rows_in"]),
        rows_out=int(counts["rows_out"]),
        rows_quarantined=int(counts["rows_quarantined"]),
        skipped=skipped,
        stats=dict(marker.get("stats", {})),
    )


def open_feature_set(features_uri: str, storage_cfg: Any = None) -> FeatureSet:
    """The :class:`FeatureSet` of an already committed ``<out>/features/<digest>`` URI."""
    st = storage_from_config(storage_cfg, features_uri)
    if not st.exists(SUCCESS_MARKER):
        raise StorageError(f"{features_uri} has no {SUCCESS_MARKER}: run `lssed preprocess` (or import-features) first")
    return _feature_set(st, st.read_json(SUCCESS_MARKER), skipped=True)


__all__ = ["FeatureSet", "ManifestError", "open_feature_set", "plan_chunks", "preprocess", "read_manifest"]
