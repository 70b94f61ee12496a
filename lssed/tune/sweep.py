"""The only Ray Tune glue: a function trainable that launches one ``TorchTrainer`` per trial.

Train V2 pattern (``Tuner(trainer)`` is gone): each Tune trial runs a small driver function
that builds the trainer with :func:`lssed.train.trainer.make_trainer` and
``TuneReportCallback`` (so ASHA sees every epoch's ``val_ua``) and calls ``fit()``. The
trial's run is a normal training run in ``<out>/runs/<run name>/``; the Tune experiment
state lives in ``<out>/tune/<sweep name>/`` and a rerun with the same config restores it
(``Tuner.can_restore`` / ``Tuner.restore``): finished trials are kept, unfinished and errored
ones resume, and their training runs resume from their own checkpoints.

Selection uses validation UA only: ASHA stops on ``val_ua``, and the best trial is the one
whose selected checkpoint has the highest validation UA in its ``results.json``.
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass
from typing import Any

from lssed.config import Config, replace_section
from lssed.errors import InputNotFoundError
from lssed.storage import SUCCESS_MARKER, Storage, storage_from_config
from lssed.train.results import RESULTS_FILE, STOPPED_EARLY, RunResults
from lssed.tune import space
from lssed.tune.space import TrialSpec

log = logging.getLogger(__name__)

METRIC = "val_ua"
SWEEP_FILE = "lssed_sweep.json"


@dataclass(frozen=True)
class TrialRow:
    """One trial's outcome; ``spec`` holds its settings (model, STFT window, lr, crop, seed)."""

    run_name: str
    spec: TrialSpec
    status: str  # completed | stopped early, evaluated | stopped early | error | not run
    epochs: int  # epochs reported to Tune (or completed in results.json)
    val_ua: float | None  # the selected checkpoint's validation UA (results.json), else the best reported
    test_ua: float | None  # reported for reading only; never used to select
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """Flat: the run name, the spec's fields, then the outcome."""
        import dataclasses

        out: dict[str, Any] = {"run_name": self.run_name, **self.spec.to_dict()}
        out.update({f.name: getattr(self, f.name) for f in dataclasses.fields(self)
                    if f.name not in ("run_name", "spec")})
        return out


@dataclass(frozen=True)
class SweepResult:
    sweep_name: str
    experiment_uri: str  # <out>/tune/<sweep name>
    best_run_name: str | None
    best_val_ua: float | None
    trials: tuple[TrialRow, ...]
    errors: tuple[str, ...]
    max_concurrent_trials: int
    resumed: bool

    def table_markdown(self) -> str:
        head = "| run | model | window | hop | n_fft | lr | crop | seed | status | epochs | val UA | test UA |"
        lines = [head, "|" + "---|" * 12]
        pct = lambda v: "—" if v is None else f"{100 * v:.2f}"  # noqa: E731
        for t in self.trials:
            mark = " **(best)**" if t.run_name == self.best_run_name else ""
            s = t.spec
            lines.append(f"| {t.run_name}{mark} | {s.model} | {s.win_length} | {s.hop_length} | {s.n_fft} | "
                         f"{s.lr:g} | {s.crop_frames} | {s.seed} | {t.status} | {t.epochs} | {pct(t.val_ua)} | "
                         f"{pct(t.test_ua)} |")
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        import dataclasses

        out = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        out["trials"] = [t.to_dict() for t in self.trials]
        return out


def _read_results(out: Storage, run_name: str) -> RunResults | None:
    run = out.child("runs", run_name)
    try:
        if not run.exists(RESULTS_FILE):
            return None
        return RunResults.from_dict(run.read_json(RESULTS_FILE))
    except (OSError, ValueError, KeyError, TypeError) as exc:
        log.warning("run %s: unreadable %s (%s)", run_name, RESULTS_FILE, exc)
        return None


def _run_trial(config: dict[str, Any], *, cfg: Config, features_uri: str, out_cfg: dict[str, Any],
               sweep: str) -> None:
    """The Tune function trainable: one TorchTrainer run for one point of the space."""
    import ray.tune
    from ray.tune.integration.ray_train import TuneReportCallback

    from lssed.train.trainer import make_trainer

    spec = TrialSpec.from_dict(config["trial"])
    run_name = space.run_name_for(sweep, spec)
    out = Storage(**out_cfg)
    done = _read_results(out, run_name)
    if done is not None and done.epochs_completed >= space.epochs_of(cfg):
        # finished before an interruption that Tune's state did not record: report, don't retrain
        log.info("trial %s already has %s; reporting it", run_name, RESULTS_FILE)
        ray.tune.report({METRIC: done.val.ua, "epoch": done.epochs_completed, "best_val_ua": done.val.ua,
                         "from_results": True})
        return
    trial_cfg = space.trial_config(cfg, spec, run_name)
    trainer = make_trainer(trial_cfg, features_uri, out=out, model=spec.model, run_name=run_name,
                           callbacks=[TuneReportCallback()])
    if isinstance(getattr(trainer, "train_loop_config", None), dict):
        # recorded as RunResults.tune_trial by the training run
        trainer.train_loop_config["tune_trial"] = f"{sweep}/{ray.tune.get_context().get_trial_id()}"
    trainer.fit()


def finalize_stopped_run(cfg: Config, features_uri: str, *, out: Storage, sweep: str, spec: TrialSpec,
                         epochs_done: int) -> RunResults | None:
    """Give a trial that ASHA stopped after ``epochs_done`` epochs its ``results.json``.

    Reruns the trial's training run (same run name, so Ray Train resumes it from its latest
    checkpoint) with ``train.epochs = epochs_done``: no epoch is left to train, and the loop
    evaluates the validation-selected checkpoint on val and test and writes the run's outputs.
    """
    from lssed.config import replace_section
    from lssed.train.trainer import make_trainer

    name = space.run_name_for(sweep, spec)
    if epochs_done < 1:
        return None
    trial_cfg = replace_section(space.trial_config(cfg, spec, name), "train", epochs=int(epochs_done))
    trainer = make_trainer(trial_cfg, features_uri, out=out, model=spec.model, run_name=name)
    if isinstance(getattr(trainer, "train_loop_config", None), dict):
        trainer.train_loop_config["tune_trial"] = f"{sweep}/{STOPPED_EARLY}"
    log.info("evaluating %s, stopped early after %d epoch(s), from its last checkpoint", name, epochs_done)
    trainer.fit()
    return _read_results(out, name)


def _trial_dirname(trial: Any) -> str:
    """Short Tune trial directory names (the default embeds the whole config)."""
    spec = (trial.config or {}).get("trial") or {}
    return (f"{trial.trial_id}-{spec.get('model')}-w{spec.get('win_length')}-h{spec.get('hop_length')}"
            f"-lr{spec.get('lr')}-c{spec.get('crop_frames')}-s{spec.get('seed')}")


def _require_features(cfg: Config, features_uri: str) -> None:
    storage = storage_from_config(cfg.storage, features_uri)
    if not storage.exists(SUCCESS_MARKER):
        raise InputNotFoundError(f"{features_uri} has no {SUCCESS_MARKER}: pass the features directory "
                                 "`lssed preprocess` printed (<out>/features/<digest>)")


def clear_sweep(cfg: Config, features_uri: str, *, out: Storage) -> None:
    """Delete the sweep's Tune experiment and its trials' runs, so that it runs again from scratch."""
    sweep = space.sweep_name(cfg, features_uri)
    log.info("sweep %s: --force, deleting its experiment and trial runs", sweep)
    out.child("tune", sweep).delete_dir()
    for spec in space.trial_specs(cfg):
        out.child("runs", space.run_name_for(sweep, spec)).delete_dir()


def run_config(cfg: Config, sweep: str, storage_path: str, storage_fs: Any) -> Any:
    """The experiment's ``RunConfig``: a trial whose TorchTrainer gave up (after its own
    ``train.max_failures`` worker restarts) is retried by Tune ``train.max_failures`` times."""
    from ray import tune as rtune

    return rtune.RunConfig(name=sweep, storage_path=storage_path, storage_filesystem=storage_fs,
                           failure_config=rtune.FailureConfig(max_failures=cfg.train.max_failures), verbose=1)


def tune(cfg: Config, features_uri: str, *, out: Storage, force: bool = False) -> SweepResult:
    """Sweep ``cfg.tune``'s space over the features at ``features_uri``; runs go to ``<out>/runs/``.

    ``force``: delete the sweep's experiment and trial runs first (see :func:`clear_sweep`).
    """
    import ray
    from ray import tune as rtune
    from ray.tune.schedulers import ASHAScheduler, FIFOScheduler

    from lssed.runtime import init_ray
    from lssed.validate import validate_config

    cfg = validate_config(cfg, "tune")
    _require_features(cfg, features_uri)
    specs = space.trial_specs(cfg)
    if force:
        clear_sweep(cfg, features_uri, out=out)
    init_ray(cfg.ray)
    resources = ray.cluster_resources()
    concurrency = space.max_concurrent(cfg, float(resources.get("CPU", 1.0)), float(resources.get("GPU", 0.0)),
                                       len(specs))
    sweep = space.sweep_name(cfg, features_uri)
    epochs = space.epochs_of(cfg)
    tune_dir = out.child("tune")
    storage_path = tune_dir.root
    storage_fs = tune_dir.filesystem if out.is_s3 else None
    experiment_path = tune_dir.path(sweep)
    experiment_uri = tune_dir.join_uri(sweep)

    trainable = rtune.with_resources(
        # trials see the resolved concurrency (train.materialize_mb=auto divides the object store by it)
        rtune.with_parameters(_run_trial, cfg=replace_section(cfg, "tune", max_concurrent_trials=concurrency),
                              features_uri=features_uri,
                              out_cfg=dataclasses.asdict(out),
                              sweep=sweep),
        {"CPU": space.DRIVER_CPUS},
    )
    param_space = {"trial": rtune.grid_search([s.to_dict() for s in specs])}
    resumed = bool(rtune.Tuner.can_restore(experiment_path, storage_filesystem=storage_fs))
    if resumed:
        log.info("resuming sweep %s from %s", sweep, experiment_uri)
        tuner = rtune.Tuner.restore(experiment_path, trainable=trainable, resume_unfinished=True,
                                    resume_errored=True, param_space=param_space, storage_filesystem=storage_fs)
    else:
        if cfg.tune.asha and epochs > 1:
            scheduler: Any = ASHAScheduler(time_attr="epoch", max_t=epochs,
                                           grace_period=min(cfg.tune.grace_period, epochs),
                                           reduction_factor=cfg.tune.reduction_factor)
        else:
            scheduler = FIFOScheduler()
        tuner = rtune.Tuner(
            trainable,
            param_space=param_space,
            tune_config=rtune.TuneConfig(metric=METRIC, mode="max", scheduler=scheduler,
                                         max_concurrent_trials=concurrency, num_samples=1,
                                         trial_name_creator=_trial_dirname, trial_dirname_creator=_trial_dirname),
            run_config=run_config(cfg, sweep, storage_path, storage_fs),
        )
    log.info("sweep %s: %d trial(s), %d at a time, %d epoch(s) each, ASHA=%s, experiment %s", sweep, len(specs),
             concurrency, epochs, cfg.tune.asha and epochs > 1, experiment_uri)
    grid = tuner.fit()

    rows, errors = _collect(grid, specs, sweep, out, epochs)
    stopped = [r for r in rows if r.status == "stopped early"]
    if stopped and cfg.tune.finalize_stopped:
        for row in stopped:
            spec = next(s for s in specs if space.run_name_for(sweep, s) == row.run_name)
            try:
                finalize_stopped_run(cfg, features_uri, out=out, sweep=sweep, spec=spec, epochs_done=row.epochs)
            except Exception as exc:  # one failed evaluation must not lose the sweep's result
                errors.append(f"{row.run_name}: evaluating the early-stopped run failed ({type(exc).__name__}: {exc})")
        rows, more = _collect(grid, specs, sweep, out, epochs)
        errors += [e for e in more if e not in errors]
    complete = [r for r in rows if r.status.startswith(("completed", "stopped early, evaluated"))
                and r.val_ua is not None]
    best = max(complete, key=lambda r: r.val_ua) if complete else None
    result = SweepResult(sweep, experiment_uri, best.run_name if best else None, best.val_ua if best else None,
                         tuple(rows), tuple(errors), concurrency, resumed)
    tune_dir.write_json(result.to_dict(), sweep, SWEEP_FILE)
    log.info("sweep %s: best %s (val UA %s); %d error(s)", sweep, result.best_run_name,
             f"{100 * result.best_val_ua:.2f}" if result.best_val_ua is not None else "n/a", len(errors))
    return result


def _collect(grid: Any, specs: list[TrialSpec], sweep: str, out: Storage, epochs: int) -> tuple[list[TrialRow], list[str]]:
    by_name: dict[str, Any] = {}
    for i in range(len(grid)):
        res = grid[i]
        trial = (res.config or {}).get("trial")
        if trial:
            by_name[space.run_name_for(sweep, TrialSpec.from_dict(trial))] = res
    rows, errors = [], []
    for spec in specs:
        name = space.run_name_for(sweep, spec)
        res = by_name.get(name)
        metrics = dict(getattr(res, "metrics", None) or {})
        error = getattr(res, "error", None)
        results = _read_results(out, name)
        if results is not None:
            status = "completed" if results.epochs_completed >= epochs else "stopped early, evaluated"
            val_ua = results.val.ua
            test = results.evaluations.get("test")
            test_ua, done = (test.ua if test else None), results.epochs_completed
        else:
            done = int(metrics.get("epoch", 0) or 0)
            val_ua = metrics.get("best_val_ua", metrics.get(METRIC))
            test_ua = None
            status = "error" if error else ("not run" if res is None or not metrics else "stopped early")
        err_text = f"{type(error).__name__}: {error}" if error else None
        if error:
            errors.append(f"{name}: {err_text}")
        elif res is None:
            errors.append(f"{name}: Tune returned no result for this trial")
        rows.append(TrialRow(name, spec, status, done, val_ua, test_ua, err_text))
    return rows, errors
