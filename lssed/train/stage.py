"""The training stage: one model on one feature set -> ``<out>/runs/<run name>/results.json``.

A finished run (``results.json`` present) is not trained again; an unfinished one with the
same run name resumes from its last checkpoint in storage (Ray Train restores it).
"""

from __future__ import annotations

import logging
import re

from lssed.config import Config, config_to_dict, digest
from lssed.storage import Storage
from lssed.train.results import RunResults

log = logging.getLogger(__name__)

# train.* keys that do not change what a run computes (they never enter the run name)
_NAME_FREE_KEYS = ("model", "models", "seeds", "run_name", "max_failures", "eval_batch_size", "materialize_mb",
                   "cpus_per_worker", "prefetch_batches", "checkpoints_to_keep")


def default_run_name(cfg: Config, model: str, features_digest: str) -> str:
    """``<model>-<features digest[:8]>-<digest of train+features settings>``: stable across reruns."""
    train = {k: v for k, v in config_to_dict(cfg.train).items() if k not in _NAME_FREE_KEYS}
    if train.get("fold") is None:  # runs from before the k-fold protocol keep their names
        train.pop("fold", None)
    for key in ("compile", "cuda_graph"):  # off (the default): runs from before these keys keep their names
        if not train.get(key):
            train.pop(key, None)
    if train.get("input_norm") == "none":  # the default: runs from before the key keep their names
        train.pop("input_norm", None)
    if not train.get("spec_augment"):  # settings of an unused option do not rename runs
        train = {k: v for k, v in train.items() if not k.startswith("spec_augment")}
    key = digest({"model": model, "train": train, "features": config_to_dict(cfg.features)}, length=10)
    safe_model = re.sub(r"[^A-Za-z0-9_.-]", "_", model)
    return f"{safe_model}-{features_digest[:8]}-{key}"


def train(cfg: Config, features_uri: str, *, out: Storage, model: str | None = None,
          run_name: str | None = None, force: bool = False) -> RunResults:
    """Train (or resume, or return the finished) run of ``model`` on ``features_uri``.

    ``force``: delete the run (results, checkpoints) first and train it from scratch.
    """
    from lssed.runtime import init_ray
    from lssed.train.data import describe_features
    from lssed.train.outputs import read_results
    from lssed.train.trainer import make_trainer
    from lssed.validate import cluster_warnings, validate_config

    model = model or cfg.train.model
    cfg = validate_config(cfg, "train", models=[model])
    source = describe_features(cfg, features_uri)  # checks the feature set before Ray starts
    name = run_name or cfg.train.run_name or default_run_name(cfg, model, source.digest)
    run = out.child("runs", name)
    if force:
        log.info("run %s: --force, deleting it to train again", run.uri)
        run.delete_dir()
    done = read_results(run)
    if done is not None:
        log.info("run %s is finished (test UA %.4f): not training again", run.uri, done.evaluations["test"].ua)
        return done
    init_ray(cfg.ray)
    import ray

    for warning in cluster_warnings(cfg, ray.cluster_resources()):
        log.warning("%s", warning)
    trainer = make_trainer(cfg, features_uri, out=out, model=model, run_name=name)
    result = trainer.fit()
    results = read_results(run)
    if results is None:
        raise RuntimeError(f"training {name} ended ({getattr(result, 'error', None)}) without {run.uri}/results.json")
    return results
