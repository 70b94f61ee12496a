"""Train every model of ``train.models`` for every seed of ``train.seeds`` (the workflow's train stage).

With k-fold features (``corpus.split=folds``: the shards' ``fold`` column holds 0..k-1) and
``train.fold`` unset, every fold is trained too: (model, seed, fold) runs, named ``...-f<fold>``;
the report gives mean ± std over folds and seeds. ``train.fold`` set trains that fold only.

Each (model, seed[, fold]) is one training run with a stable name, so a rerun finds it: committed runs
(``results.json``) are skipped unless ``force``; unfinished ones resume from their checkpoints.
A failing run is recorded and the others still train. ``stages.parallel_runs`` > 1 keeps that
many runs in flight, each a zero-CPU Ray task whose TorchTrainer asks the cluster (and so the
autoscaler) for its own workers: a GPU cluster trains the zoo in parallel.
"""

from __future__ import annotations

import logging
from collections import deque
from dataclasses import dataclass
from typing import Any

from lssed.config import Config, replace_section
from lssed.storage import Storage
from lssed.train.results import RunResults

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PlannedRun:
    """One (model, seed, fold) of the plan and its whole config."""

    model: str
    seed: int
    run_name: str
    cfg: Config
    fold: int | None = None


@dataclass(frozen=True)
class RunFailure:
    run_name: str
    error: str  # "ExceptionType: message"


@dataclass(frozen=True)
class TrainedRuns:
    """What the stage produced: finished runs in plan order, what was committed, what failed."""

    runs: tuple[RunResults, ...]
    skipped: tuple[str, ...]  # run names found committed and not redone
    failures: tuple[RunFailure, ...]


def run_name_for(cfg: Config, model: str, seed: int, features_digest: str, fold: int | None = None,
                 *, several: bool | None = None) -> str:
    """A stable name per (model, seed, fold): same config -> same name -> Ray Train resumes it.

    ``train.run_name`` names the run when there is one; with several (models x seeds x folds,
    or ``several``) it is their prefix. A fold's run name ends in ``-f<fold>``.
    """
    from lssed.train.stage import default_run_name

    tail = f"-f{fold}" if fold is not None else ""
    if not cfg.train.run_name:
        run_cfg = replace_section(cfg, "train", model=model, seed=seed, fold=fold)
        return default_run_name(run_cfg, model, features_digest) + tail
    if several is None:
        several = len(cfg.train.models) * len(cfg.train.seeds) > 1
    if not several and fold is None:
        return cfg.train.run_name
    return f"{cfg.train.run_name}-{model}-s{seed}{tail}"


def plan_runs(cfg: Config, features_digest: str, folds: int | None = None) -> list[PlannedRun]:
    """Every (model, seed[, fold]) in ``train.models`` x ``train.seeds`` [x folds] order.

    ``folds``: k of k-fold features; with ``train.fold`` unset every fold 0..k-1 is a run.
    """
    fold_list: list[int | None] = ([cfg.train.fold] if cfg.train.fold is not None
                                   else list(range(folds)) if folds else [None])
    several = len(cfg.train.models) * len(cfg.train.seeds) * len(fold_list) > 1
    return [PlannedRun(model, seed, run_name_for(cfg, model, seed, features_digest, fold, several=several),
                       replace_section(cfg, "train", model=model, seed=seed, fold=fold), fold)
            for model in cfg.train.models for seed in cfg.train.seeds for fold in fold_list]


def feature_folds(cfg: Config, features_uri: str) -> int | None:
    """k when the feature set was prepared with k-fold splits (its ``fold`` column), else None."""
    import pyarrow.dataset as pads

    from lssed.storage import storage_from_config
    from lssed.train.data import fold_count

    store = storage_from_config(cfg.storage, features_uri)
    dataset = pads.dataset(store.path("shards"), filesystem=store.filesystem, format="parquet")
    if "fold" not in dataset.schema.names:  # shards written before the k-fold protocol
        return None
    return fold_count(dataset.to_table(columns=["fold"]).column("fold").to_pylist())


def train_runs(cfg: Config, features_uri: str, features_digest: str, *, out: Storage,
               force: bool = False) -> TrainedRuns:
    """Train the plan on the features at ``features_uri``; runs go to ``<out>/runs/<run name>/``."""
    from lssed.train.outputs import read_results

    done: dict[str, RunResults] = {}
    skipped: list[str] = []
    pending: list[PlannedRun] = []
    plans = plan_runs(cfg, features_digest, feature_folds(cfg, features_uri))
    for plan in plans:
        committed = None if force else read_results(out.child("runs", plan.run_name))
        if committed is None:
            pending.append(plan)
            continue
        log.info("train %s: committed (val UA %.3f), skipping", plan.run_name, committed.val.ua)
        skipped.append(plan.run_name)
        done[plan.run_name] = committed

    parallel = cfg.stages.parallel_runs
    trained, failures = (_train_in_tasks(pending, features_uri, out, force, parallel) if parallel > 1 and len(pending) > 1
                         else _train_here(pending, features_uri, out, force))
    done.update(trained)
    order = [p.run_name for p in plans]
    return TrainedRuns(tuple(done[n] for n in order if n in done), tuple(skipped), tuple(failures))


def _train_one(plan: PlannedRun, features_uri: str, out: Storage, force: bool) -> RunResults:
    """One training run; as a Ray task it drives its own TorchTrainer (like a Tune trial)."""
    from lssed.train.stage import train

    return train(plan.cfg, features_uri, out=out, model=plan.model, run_name=plan.run_name, force=force)


def _finished(plan: PlannedRun, res: RunResults) -> None:
    test = res.evaluations.get("test")
    log.info("train %s: val UA %.3f%s", plan.run_name, res.val.ua,
             f", test UA {test.ua:.3f} WA {test.wa:.3f}" if test else "")


def _failed(plan: PlannedRun, exc: BaseException) -> RunFailure:
    log.error("train %s failed: %s", plan.run_name, exc, exc_info=exc)
    return RunFailure(plan.run_name, f"{type(exc).__name__}: {exc}")


def _train_here(pending: list[PlannedRun], features_uri: str, out: Storage,
                force: bool) -> tuple[dict[str, RunResults], list[RunFailure]]:
    """One run after another in this process."""
    trained: dict[str, RunResults] = {}
    failures: list[RunFailure] = []
    for plan in pending:
        log.info("train %s (model %s, seed %d)", plan.run_name, plan.model, plan.seed)
        try:
            trained[plan.run_name] = res = _train_one(plan, features_uri, out, force)
        except Exception as exc:  # noqa: BLE001 - recorded; the other runs still train
            failures.append(_failed(plan, exc))
            continue
        _finished(plan, res)
    return trained, failures


def _train_in_tasks(pending: list[PlannedRun], features_uri: str, out: Storage, force: bool,
                    parallel: int) -> tuple[dict[str, RunResults], list[RunFailure]]:
    """Up to ``parallel`` runs in flight, each a Ray task; results as they finish."""
    import ray

    remote = ray.remote(num_cpus=0, max_retries=0)(_train_one)
    queue = deque(pending)
    in_flight: dict[Any, PlannedRun] = {}
    trained: dict[str, RunResults] = {}
    failures: list[RunFailure] = []
    while queue or in_flight:
        while queue and len(in_flight) < parallel:
            plan = queue.popleft()
            log.info("train %s (model %s, seed %d) as a Ray task", plan.run_name, plan.model, plan.seed)
            in_flight[remote.remote(plan, features_uri, out, force)] = plan
        ready, _ = ray.wait(list(in_flight), num_returns=1)
        plan = in_flight.pop(ready[0])
        try:
            trained[plan.run_name] = res = ray.get(ready[0])
        except Exception as exc:  # noqa: BLE001 - recorded; the other runs still train
            failures.append(_failed(plan, exc))
            continue
        _finished(plan, res)
    return trained, failures
