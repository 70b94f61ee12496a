"""Which ingest path a run's train split takes: read once into Ray's object store, or streamed.

``train.materialize_mb`` chooses:

* an integer N: materialize when the train split's estimated on-disk size is at most N MB
  (0: always stream);
* ``"auto"`` (the default): materialize when that size fits
  ``cluster object-store memory / concurrent runs x SAFETY_FRACTION``.

The split's size is estimated as the shards' on-disk bytes times its share of the rows. The
object store then holds only the columns the run reads (log-mel *or* waveform, while the
shards hold both), so the in-memory split is normally smaller than this estimate; shards
without a waveform (``import-features``) hold log-mels alone, which zstd barely compresses,
and the safety fraction covers that. The rest of the store is left to Ray Data's streaming
buffers, the val/test readers and Ray Train's own objects.

Concurrent runs are the larger of ``stages.parallel_runs`` and ``tune.max_concurrent_trials``
(the sweep sets the latter to the concurrency it resolved from the cluster): every run in
flight may hold its own materialized split. A lone ``lssed train`` counts them too, which
errs on the streamed (bounded-memory) side.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

log = logging.getLogger(__name__)

AUTO = "auto"
# Share of each run's slice of the object store that its materialized split may take.
SAFETY_FRACTION = 0.5


@dataclass(frozen=True)
class IngestPlan:
    """The decision and the numbers it was made from (logged at INFO by :func:`ingest_plan_for`)."""

    materialize: bool
    reason: str
    split_bytes: int  # estimated on-disk bytes of the train split
    budget_bytes: int | None  # what the split may take; None: no budget applies (a fixed setting)
    setting: int | str  # train.materialize_mb as configured
    object_store_bytes: int | None = None
    concurrent_runs: int = 1


def split_bytes(shards_bytes: int, split_rows: int, rows_total: int) -> int:
    """One split's share of the shards' on-disk bytes (by rows: utterance lengths are alike across splits)."""
    if rows_total <= 0:
        return int(shards_bytes)
    return int(round(shards_bytes * min(split_rows, rows_total) / rows_total))


def concurrent_runs(parallel_runs: int | None, max_concurrent_trials: int | None) -> int:
    """Runs that may each hold a materialized split in the object store at the same time."""
    return max(1, int(parallel_runs or 1), int(max_concurrent_trials or 1))


def plan_ingest(setting: int | str, split_size: int, *, object_store_bytes: float | None = None,
                concurrent: int = 1, safety_fraction: float = SAFETY_FRACTION) -> IngestPlan:
    """Materialize or stream; a pure function of the numbers (see the module docstring)."""
    mb = split_size / 2**20
    if setting != AUTO:
        limit = int(setting)
        if limit <= 0:
            return IngestPlan(False, "train.materialize_mb=0: always streamed", split_size, None, setting)
        fits = split_size <= limit * 2**20
        why = (f"train split ~{mb:.1f} MB on disk {'<=' if fits else '>'} train.materialize_mb={limit} MB")
        return IngestPlan(fits, why, split_size, limit * 2**20, setting)
    concurrent = max(1, int(concurrent))
    if not object_store_bytes or object_store_bytes <= 0:
        return IngestPlan(False, "train.materialize_mb=auto but the cluster reports no object-store memory: "
                                 "streamed", split_size, None, setting, None, concurrent)
    budget = int(object_store_bytes / concurrent * safety_fraction)
    fits = split_size <= budget
    why = (f"train.materialize_mb=auto: train split ~{mb:.1f} MB on disk {'<=' if fits else '>'} "
           f"{budget / 2**20:.0f} MB = object store {object_store_bytes / 2**20:.0f} MB / {concurrent} concurrent "
           f"run(s) x {safety_fraction:g}")
    return IngestPlan(fits, why, split_size, budget, setting, int(object_store_bytes), concurrent)


def cluster_object_store_bytes() -> float | None:
    """The connected Ray cluster's object-store memory (all nodes now up); None without Ray."""
    import ray

    if not ray.is_initialized():
        return None
    return float(ray.cluster_resources().get("object_store_memory", 0.0)) or None


def ingest_plan_for(cfg: Any, source: Any) -> IngestPlan:
    """The plan for one run: ``cfg`` a :class:`lssed.config.Config`, ``source`` its FeatureSource."""
    setting = cfg.train.materialize_mb
    size = split_bytes(source.shards_bytes, source.split_counts.get("train", 0), source.rows_total)
    store = cluster_object_store_bytes() if setting == AUTO else None
    plan = plan_ingest(setting, size, object_store_bytes=store,
                       concurrent=concurrent_runs(cfg.stages.parallel_runs, cfg.tune.max_concurrent_trials))
    log.info("ingest: %s (%s)", "materialized" if plan.materialize else "streamed", plan.reason)
    return plan
