"""The Ray glue of preprocessing (the only Ray code of this package).

A Ray Dataset holds the manifest as one block per chunk (rows sorted by media file); a pool
of :class:`ChunkWorker` actors (``map_batches`` with ``batch_size=None``, so one batch is one
chunk) runs :func:`lssed.preprocess.chain.process_chunk` and writes the chunk's shard,
quarantine file and marker straight to storage. Only a one-row summary per chunk comes back
to the driver, so no audio or features pass through it. Writing from the actor (rather than
``Dataset.write_parquet``) gives every chunk a deterministic file name, which is what makes a
killed run resumable chunk by chunk.
"""

from __future__ import annotations

import logging
import os
from typing import Any, Iterator

import pyarrow as pa
import pyarrow.compute as pc

from lssed.storage import Storage

log = logging.getLogger(__name__)

CHUNK_COLUMN = "_chunk"


class ChunkWorker:
    """A ``map_batches`` actor: one pyarrow batch (= one or more whole chunks) -> summaries."""

    def __init__(self, cfg: Any, out: Storage, media_storage: Storage | None) -> None:
        from lssed.preprocess.allocator import keep_freed_memory
        from lssed.preprocess.denoise import BATCHED

        if cfg.preprocess.keep_freed_memory:
            keep_freed_memory()
        # Parallelism comes from the actor pool; keep each actor on one core.
        os.environ.setdefault("OMP_NUM_THREADS", "1")
        if cfg.preprocess.denoise in BATCHED:  # only torchgate needs torch (~2 s to import)
            import torch

            torch.set_num_threads(1)
        self.cfg, self.out, self.media_storage = cfg, out, media_storage
        warm_up(cfg)

    def __call__(self, batch: pa.Table) -> pa.Table:
        from lssed.preprocess.chain import process_chunk
        from lssed.preprocess.shards import write_chunk

        summary: dict[str, list[int]] = {"chunk": [], "rows_in": [], "rows_out": [], "rows_quarantined": []}
        ids = batch.column(CHUNK_COLUMN).to_pylist()
        for chunk_id in sorted(set(ids)):
            rows = batch.filter(pc.equal(batch.column(CHUNK_COLUMN), chunk_id)).drop_columns([CHUNK_COLUMN])
            result = process_chunk(rows, self.cfg, storage=self.media_storage)
            stats = write_chunk(self.out, chunk_id, result.shard, result.quarantine, result.stats,
                                row_group_size=self.cfg.preprocess.batch_size)
            summary["chunk"].append(chunk_id)
            summary["rows_in"].append(stats["rows_in"])
            summary["rows_out"].append(stats["rows_out"])
            summary["rows_quarantined"].append(stats["rows_quarantined"])
        return pa.table({k: pa.array(v, pa.int64()) for k, v in summary.items()})


def warm_up(cfg: Any) -> None:
    """Import and run the chain once on a tiny signal, so first-call costs (imports, plans)
    are not billed to the first chunk's CPU time."""
    import numpy as np

    from lssed.preprocess.chain import process_samples

    rng = np.random.default_rng(0)
    n = max(int(cfg.preprocess.sample_rate * max(cfg.preprocess.min_duration_s, 0.5)), 1)
    process_samples((0.01 * rng.standard_normal(n)).astype(np.float32), cfg)


def num_actors(cfg: Any, n_chunks: int) -> int:
    """``preprocess.num_actors``, else as many as the CPUs free now allow; never more than chunks.

    Free, not total: the pool is started whole before work is handed out, so it must fit beside
    whatever else holds CPUs (on an autoscaling cluster, set ``preprocess.num_actors``).
    """
    import ray

    free = float(ray.available_resources().get("CPU", 1.0))
    wanted = cfg.preprocess.num_actors or max(1, int(free // max(cfg.preprocess.cpus_per_actor, 0.01)))
    return max(1, min(wanted, n_chunks))


def chunk_dataset(chunks: list[pa.Table], cfg: Any, *, out: Storage, media_storage: Storage | None,
                  actors: int) -> Any:
    """The lazy Ray Dataset of the chunks mapped by a pool of ``actors`` :class:`ChunkWorker`."""
    import ray

    ds = ray.data.from_arrow(chunks)
    # Start the whole pool before work is handed out, so that the first actor up does not take
    # every chunk of a small job while actors on other nodes are still starting. Set on
    # this dataset's own DataContext (Ray Data snapshots the process's one when a dataset is
    # created), so other datasets of the process, e.g. training's, keep their setting.
    ds.context.wait_for_min_actors_s = cfg.preprocess.actor_start_timeout_s
    return ds.map_batches(
        ChunkWorker,
        batch_size=None,  # a batch is a whole block, i.e. a whole chunk
        batch_format="pyarrow",
        # A chunk is seconds to minutes of work: one in flight per actor balances the pool.
        compute=ray.data.ActorPoolStrategy(size=actors, max_tasks_in_flight_per_actor=1),
        num_cpus=cfg.preprocess.cpus_per_actor,
        # A GPU actor runs denoise: torchgate on its GPU (lssed.preprocess.denoise.default_device).
        **({"num_gpus": cfg.preprocess.gpus_per_actor} if cfg.preprocess.gpus_per_actor > 0 else {}),
        fn_constructor_kwargs={"cfg": cfg, "out": out, "media_storage": media_storage},
    )


def run_chunks(chunks: list[pa.Table], cfg: Any, *, out: Storage, media_storage: Storage | None) -> Iterator[dict[str, int]]:
    """Process the chunks (each with a ``_chunk`` id column) on a Ray actor pool.

    Yields one summary per finished chunk, in completion order. Ray Data shows its progress
    bars; the caller logs chunk progress.
    """
    if not chunks:
        return
    n = num_actors(cfg, len(chunks))
    log.info("preprocessing %d chunk(s) on %d actor(s)", len(chunks), n)
    ds = chunk_dataset(chunks, cfg, out=out, media_storage=media_storage, actors=n)
    for row in ds.iter_rows():
        yield {k: int(v) for k, v in row.items()}
