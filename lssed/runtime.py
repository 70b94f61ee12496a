"""Connecting to Ray: a cluster when there is one, else a local Ray sized for this machine.

On a 2-core laptop, Ray Data's tasks starve beside training workers unless Ray is started
with more logical CPUs than cores, so a local Ray gets ``2 x cores`` (at least 4) by default.
A process that only runs Ray Data work (``lssed preprocess``) starts a lean local Ray
instead: one logical CPU per core (so its CPU-bound actors are not twice as many as the
cores, each paying its start-up) and no dashboard (whose State API only Tune needs).
"""

from __future__ import annotations

import logging
import os
from typing import Any

log = logging.getLogger(__name__)


def default_local_cpus() -> int:
    return max(4, 2 * (os.cpu_count() or 1))


def init_ray(ray_cfg: Any | None = None, *, data_only: bool = False, **kwargs: Any) -> None:
    """Attach to the configured / ambient cluster, or start a local Ray. Idempotent.

    ``data_only``: this process runs no training or Tune (see the module docstring); it only
    changes how a *local* Ray is started, and ``ray.num_cpus`` still wins.
    """
    import ray

    if ray.is_initialized():
        return
    address = getattr(ray_cfg, "address", None) or os.environ.get("RAY_ADDRESS")
    init_kwargs: dict[str, Any] = {"ignore_reinit_error": True, "log_to_driver": True}
    # Inside `ray job submit` the driver finds its cluster itself (RAY_ADDRESS is set there).
    if address:
        init_kwargs["address"] = address
    else:
        local_cpus = (os.cpu_count() or 1) if data_only else default_local_cpus()
        num_cpus = getattr(ray_cfg, "num_cpus", None) or local_cpus
        init_kwargs["num_cpus"] = num_cpus
        store_mb = getattr(ray_cfg, "object_store_memory_mb", None)
        if store_mb:
            init_kwargs["object_store_memory"] = int(store_mb) * 1024 * 1024
        # The dashboard's State API is what Ray Train's PlacementGroupCleaner uses to free the
        # placement groups of finished Tune trials; without it they leak and a sweep on a small
        # local Ray waits forever for CPUs (seen with 4 trials on 4 logical CPUs).
        init_kwargs["include_dashboard"] = not data_only
    init_kwargs.update(kwargs)
    log.info("starting Ray (%s)", "address=" + address if address else f"local, {init_kwargs.get('num_cpus')} logical CPUs")
    ray.init(**init_kwargs)


def cluster_gpus() -> float:
    import ray

    return float(ray.cluster_resources().get("GPU", 0.0))
