"""Chunk files of a feature set: ``shards/``, ``quarantine/`` and per-chunk ``_chunks/`` markers.

Layout (docs/shards.md)::

    <out>/features/<digest>/
        shards/part-00000.parquet      # SHARD_SCHEMA rows, zstd
        quarantine/part-00000.parquet  # QUARANTINE_SCHEMA rows, zstd (possibly empty)
        _chunks/part-00000.json        # the chunk's stats; written last = the chunk is done
        _SUCCESS.json                  # written last of all = the feature set is committed

Every file is written atomically (S3: one PUT; local: a hidden temporary name, then a
rename), so a killed run leaves only whole files; a chunk counts as done only when its
``_chunks`` marker exists, and a rerun redoes the rest under the same deterministic names.
Readers (pyarrow datasets, Ray Data) skip the hidden ``.tmp-*`` and ``_``-prefixed names.
"""

from __future__ import annotations

import io
import json
import logging
import posixpath
import re
import time
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from lssed.storage import Storage

log = logging.getLogger(__name__)

SHARDS_DIR = "shards"
QUARANTINE_DIR = "quarantine"
CHUNKS_DIR = "_chunks"
_PART = re.compile(r"part-(\d{5,})\.(parquet|json)$")


def part_name(chunk_id: int, ext: str) -> str:
    return f"part-{chunk_id:05d}.{ext}"


def write_table_atomic(out: Storage, table: pa.Table, *parts: str, row_group_size: int | None = None) -> None:
    """zstd Parquet, all-or-nothing: on S3 one PUT of the whole object; locally temp + rename.

    The list columns (waveform, log-mel) get neither dictionary encoding nor statistics:
    both are useless for per-sample values, and skipping them writes a shard ~2.4x faster
    (and ~10% smaller) than Parquet's defaults.
    """
    scalar = [f.name for f in table.schema if not pa.types.is_list(f.type) and not pa.types.is_large_list(f.type)]
    buf = io.BytesIO()
    pq.write_table(table, buf, compression="zstd", row_group_size=row_group_size, use_dictionary=scalar,
                   write_statistics=scalar)
    out.write_bytes(buf.getvalue(), *parts)


def write_chunk(out: Storage, chunk_id: int, shard: pa.Table, quarantine: pa.Table, stats: dict[str, Any],
                *, row_group_size: int | None = None) -> dict[str, Any]:
    """Write one chunk's shard and quarantine files, then its marker (the commit of the chunk).

    The CPU time of encoding and writing the two Parquet files is added to the marker's
    ``cpu_s`` as ``write`` (and to its ``total``).
    """
    cpu0 = time.process_time()
    write_table_atomic(out, quarantine, QUARANTINE_DIR, part_name(chunk_id, "parquet"))
    write_table_atomic(out, shard, SHARDS_DIR, part_name(chunk_id, "parquet"), row_group_size=row_group_size)
    write_cpu = time.process_time() - cpu0
    cpu = dict(stats.get("cpu_s", {}))
    cpu["write"] = cpu.get("write", 0.0) + write_cpu
    cpu["total"] = cpu.get("total", 0.0) + write_cpu
    marker = dict(stats, chunk=chunk_id, cpu_s=cpu)
    out.write_json(marker, CHUNKS_DIR, part_name(chunk_id, "json"))
    return marker


def done_chunks(out: Storage) -> dict[int, dict[str, Any]]:
    """Chunk id -> stats of every chunk whose marker exists."""
    found: dict[int, dict[str, Any]] = {}
    for path in out.list(CHUNKS_DIR):
        m = _PART.search(posixpath.basename(path))
        if m and m.group(2) == "json":
            found[int(m.group(1))] = json.loads(out.read_bytes(CHUNKS_DIR, posixpath.basename(path)))
    return found


def part_files(out: Storage, subdir: str) -> list[str]:
    """Committed part files (filesystem paths) under ``subdir``, in chunk order."""
    return [p for p in out.list(subdir) if _PART.search(posixpath.basename(p)) and p.endswith(".parquet")]


def remove_stale(out: Storage, keep_ids: set[int]) -> int:
    """Delete temporary files and part files of chunks that are not done; returns how many."""
    fs = out.filesystem
    removed = 0
    for subdir in (SHARDS_DIR, QUARANTINE_DIR):
        for path in out.list(subdir):
            name = posixpath.basename(path)
            m = _PART.search(name)
            if name.startswith(".tmp-") or (m and int(m.group(1)) not in keep_ids):
                fs.delete_file(path)
                removed += 1
    return removed


def read_column(out: Storage, subdir: str, column: str) -> list[Any]:
    """One column of every committed part file under ``subdir`` (plain pyarrow)."""
    fs = out.filesystem
    values: list[Any] = []
    for path in part_files(out, subdir):
        values.extend(pq.read_table(path, columns=[column], filesystem=fs).column(column).to_pylist())
    return values
