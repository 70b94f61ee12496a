"""Run the whole benchmark from one config: corpus -> preprocess -> train -> tune -> report.

With no --config this is the embedded demo (workflows/configs/demo.yaml): a small synthetic
corpus is generated into storage, preprocessed, every model in ``train.models`` is trained
for every seed in ``train.seeds``, a small sweep runs and the report is written into storage.
``--config workflows/configs/lssed.yaml`` is the paper-scale benchmark (the whole zoo,
60 epochs, GPU workers, S3 storage).

Committed stages are skipped, so running the same config again (e.g. re-submitting a job
that failed half-way) picks up where it stopped; ``--force`` redoes everything. The exit
status is 0 only when every stage succeeded. Same as ``python workflows/full.py``.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import os
import tempfile
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from lssed.config import Config, ConfigError, config_to_dict, digest, load_config, replace_section
from lssed.storage import SUCCESS_MARKER, Storage, StorageError, stage_output, storage_from_config

log = logging.getLogger(__name__)

REPO_ROOT = Path(__file__).resolve().parents[1]
# What `lssed run` / `workflows/full.py` run without --config (present in a source checkout,
# which is also what `ray job submit --working-dir .` ships).
DEMO_CONFIG = REPO_ROOT / "workflows" / "configs" / "demo.yaml"
CORPUS_STAGE = "corpus"
WORKFLOW_SUMMARY = "workflow.json"


class WorkflowError(RuntimeError):
    """A stage failed in a way that stops the workflow (no manifest, no features)."""


@dataclass(frozen=True)
class StageFailure:
    """One stage (or one training run) that raised; the workflow went on where it could."""

    stage: str  # corpus | preprocess | train | tune | report
    name: str  # e.g. the run name for a training run
    error: str  # "ExceptionType: message"


@dataclass(frozen=True)
class CorpusResult:
    """The committed manifest: ``<out>/corpus/<digest>/manifest.parquet`` (+ rejects)."""

    uri: str
    manifest_uri: str
    rejects_uri: str
    digest: str
    input_rows: int
    rows: int
    rejected: int
    skipped: bool


@dataclass(frozen=True)
class WorkflowResult:
    """Everything one workflow run produced or found committed, and what failed."""

    storage_uri: str
    config_digest: str
    corpus: CorpusResult | None = None
    features: Any | None = None  # lssed.preprocess.stage.FeatureSet
    runs: tuple[Any, ...] = ()  # lssed.train.results.RunResults, one per (model, seed)
    sweep: Any | None = None  # lssed.tune.sweep.SweepResult
    report: Any | None = None  # lssed.report.build.Report
    report_uri: str | None = None  # where index.html lives
    skipped: tuple[str, ...] = ()  # committed stages/runs that were not redone
    failures: tuple[StageFailure, ...] = ()
    stage_seconds: dict[str, float] = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.failures


# --------------------------------------------------------------------------- validation


def validate_config(cfg: Config) -> Config:
    """Check what the stages will need before Ray starts; return the config normalised.

    Normalised: a local storage root becomes absolute (Ray workers and job drivers do not
    share the caller's working directory). Raises :class:`ConfigError` listing every problem.
    """
    problems: list[str] = []
    try:
        store = storage_from_config(cfg.storage)
        store.root  # parses the bucket / path
    except StorageError as exc:
        problems.append(f"storage.root: {exc}")
        store = None

    c = cfg.corpus
    if c.name == "demo":
        if c.speakers < 2 or c.per_class < 1:
            problems.append("corpus: the demo needs speakers >= 2 and per_class >= 1 (speaker-independent splits)")
    elif not c.root:
        problems.append(f"corpus.root: corpus {c.name!r} needs corpus.root (its directory, or the CSV for 'generic')")
    elif "://" not in c.root and not Path(c.root).expanduser().exists():
        problems.append(f"corpus.root: {c.root} does not exist on this machine")
    if not 0 <= c.val_fraction < 1 or not 0 < c.test_fraction < 1 or c.val_fraction + c.test_fraction >= 1:
        problems.append("corpus: need 0 <= val_fraction, 0 < test_fraction and val_fraction + test_fraction < 1")

    f = cfg.features
    if not (0 < f.hop_length <= f.win_length <= f.n_fft):
        problems.append(
            f"features: need 0 < hop_length ({f.hop_length}) <= win_length ({f.win_length}) <= n_fft ({f.n_fft})"
        )

    t = cfg.train
    if cfg.stages.train:
        if not t.models:
            problems.append("train.models is empty: list the models to train, e.g. --set 'train.models=[resnet18]'")
        if not t.seeds:
            problems.append("train.seeds is empty: give at least one seed, e.g. --set 'train.seeds=[0]'")
    if t.epochs < 1 or t.batch_size < 1 or t.crop_frames < 1:
        problems.append("train: epochs, batch_size and crop_frames must be >= 1")
    if t.num_workers < 0:
        problems.append("train.num_workers must be >= 0 (0 runs the loop in the driver, Ray Train local mode)")

    if cfg.stages.parallel_runs < 1:
        problems.append("stages.parallel_runs must be >= 1")

    wanted = set(t.models if cfg.stages.train else ()) | set(cfg.tune.models if cfg.stages.tune else ())
    if wanted:
        try:
            from lssed.models import list_models

            known = set(list_models())
        except ImportError as exc:  # a broken install, not a config problem
            log.warning("cannot check model names (%s)", exc)
            known = wanted
        unknown = sorted(wanted - known)
        if unknown:
            problems.append(f"unknown model(s) {unknown}; `lssed models` lists the zoo: {sorted(known)}")
    if cfg.stages.tune:
        if not cfg.tune.models or not cfg.tune.windows:
            problems.append("tune.models and tune.windows must not be empty (or set stages.tune=false)")
        # windows longer than features.n_fft are fine: the sweep raises n_fft to the window
        if any(w < 1 for w in cfg.tune.windows):
            problems.append("tune.windows must be window lengths in samples (>= 1)")

    if problems:
        raise ConfigError("invalid config:\n  - " + "\n  - ".join(problems))
    if store is not None and not store.is_s3:
        cfg = replace_section(cfg, "storage", root=store.root)
    return cfg


# --------------------------------------------------------------------------- corpus stage


def corpus_stage(cfg: Config, *, out: Storage, force: bool = False) -> CorpusResult:
    """The manifest in storage, keyed by the corpus config; skipped when committed.

    ``demo`` synthesises the corpus (speech + noise in audio/video files) into storage next to
    the manifest; other corpora are read from ``corpus.root`` with ``lssed.corpora.prepare``.
    """
    from lssed.corpora import prepare, write_manifest

    c = cfg.corpus
    key = f"{c.name}-{digest(c)}"
    stage = stage_output(out, CORPUS_STAGE, key)
    manifest_uri = stage.storage.join_uri("manifest.parquet")
    rejects_uri = stage.storage.join_uri("manifest.rejects.parquet")
    if stage.is_committed() and not force:
        marker = stage.marker()
        log.info("corpus: committed at %s (%d rows), skipping", stage.uri, marker["rows"])
        return CorpusResult(stage.uri, manifest_uri, rejects_uri, key, marker["input_rows"], marker["rows"],
                            marker["rejected"], skipped=True)
    stage.clear()
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="lssed-corpus-") as tmp:
        if c.name == "demo":
            from lssed.corpora.demo import make_demo_corpus

            # Local storage: the media live in storage beside the manifest. S3: generate
            # locally, upload, and point the manifest at the uploaded objects.
            demo_dir = Path(stage.storage.path("demo")) if not out.is_s3 else Path(tmp) / "demo"
            csv = make_demo_corpus(demo_dir, speakers=c.speakers, per_class=c.per_class, seed=c.seed)
            prepared = prepare("demo", csv, strict=c.strict, split=c.split, seed=c.seed,
                               val_fraction=c.val_fraction, test_fraction=c.test_fraction)
            if out.is_s3:
                prepared = _upload_media(prepared, demo_dir, stage.storage.child("demo"))
        else:
            prepared = prepare(c.name, c.root, strict=c.strict, split=c.split, seed=c.seed,
                               val_fraction=c.val_fraction, test_fraction=c.test_fraction,
                               encoding=c.encoding, allow_outside_root=c.allow_outside_root)
        local_manifest = Path(tmp) / "manifest.parquet"
        m_path, r_path = write_manifest(prepared, local_manifest)
        stage.storage.write_bytes(Path(m_path).read_bytes(), "manifest.parquet")
        stage.storage.write_bytes(Path(r_path).read_bytes(), "manifest.rejects.parquet")
    rows, rejected = prepared.manifest.num_rows, prepared.rejects.num_rows
    if rows + rejected != prepared.input_rows:  # never commit a manifest that lost rows
        raise RuntimeError(f"corpus {c.name}: {rows} rows + {rejected} rejects != {prepared.input_rows} input rows")
    stage.commit({
        "config": config_to_dict(c),
        "input_rows": prepared.input_rows,
        "rows": rows,
        "rejected": rejected,
        "seconds": round(time.perf_counter() - t0, 3),
    })
    log.info("corpus: %d utterances (%d rejected) -> %s", rows, rejected, manifest_uri)
    return CorpusResult(stage.uri, manifest_uri, rejects_uri, key, prepared.input_rows, rows, rejected, skipped=False)


def _upload_media(prepared: Any, media_dir: Path, dest: Storage) -> Any:
    """Upload the generated demo media and rewrite ``media_uri`` to the uploaded objects."""
    import pyarrow as pa

    media_dir = media_dir.resolve()
    uris = []
    uploaded: dict[str, str] = {}
    for uri in prepared.manifest.column("media_uri").to_pylist():
        local = Path(uri.removeprefix("file://")).resolve()
        if uri not in uploaded:
            rel = local.relative_to(media_dir).as_posix()
            dest.write_bytes(local.read_bytes(), rel)
            uploaded[uri] = dest.join_uri(rel)
        uris.append(uploaded[uri])
    table = prepared.manifest
    idx = table.schema.get_field_index("media_uri")
    table = table.set_column(idx, table.schema.field(idx), pa.array(uris, type=table.schema.field(idx).type))
    log.info("corpus: uploaded %d media files to %s", len(uploaded), dest.uri)
    return dataclasses.replace(prepared, manifest=table)


# --------------------------------------------------------------------------- the workflow


def _run_results_if_committed(out: Storage, run_name: str) -> Any | None:
    from lssed.train.outputs import read_results

    return read_results(out.child("runs", run_name))


def _train_task(run_cfg: Config, features_uri: str, out: Storage, model: str, run_name: str) -> Any:
    """One training run as a Ray task: it drives its own TorchTrainer (like a Tune trial)."""
    from lssed.train.stage import train

    return train(run_cfg, features_uri, out=out, model=model, run_name=run_name)


def _train_all(cfg: Config, features: Any, out: Storage, force: bool, runs: list[Any], skipped: list[str],
               failed: Callable[[str, str, BaseException], None]) -> None:
    """Train every (model, seed); committed runs are skipped, failures recorded, the rest go on.

    ``stages.parallel_runs`` > 1 keeps that many runs in flight, each a zero-CPU Ray task
    whose TorchTrainer asks the cluster (and so the autoscaler) for its own workers.
    """
    from lssed.train.stage import default_run_name

    pending: list[tuple[str, int, Config, str]] = []
    for model in cfg.train.models:
        for seed in cfg.train.seeds:
            run_cfg = replace_section(cfg, "train", model=model, seed=seed)
            run_name = _run_name(cfg, run_cfg, model, seed, features.digest, default_run_name)
            if force:
                out.child("runs", run_name).delete_dir()  # the train stage itself never redoes a finished run
            done = None if force else _run_results_if_committed(out, run_name)
            if done is not None:
                log.info("train %s: committed (val UA %.3f), skipping", run_name, done.val.ua)
                skipped.append(f"train:{run_name}")
                runs.append(done)
            else:
                pending.append((model, seed, run_cfg, run_name))

    def finished(run_name: str, res: Any) -> None:
        runs.append(res)
        test = res.evaluations.get("test")
        log.info("train %s: val UA %.3f%s", run_name, res.val.ua,
                 f", test UA {test.ua:.3f} WA {test.wa:.3f}" if test else "")

    parallel = max(1, cfg.stages.parallel_runs)
    if parallel == 1 or len(pending) <= 1:
        for model, seed, run_cfg, run_name in pending:
            log.info("train %s (model %s, seed %d)", run_name, model, seed)
            try:
                finished(run_name, _train_task(run_cfg, features.uri, out, model, run_name))
            except Exception as exc:  # noqa: BLE001 - recorded; the other runs still train
                failed("train", run_name, exc)
        return

    import ray

    remote = ray.remote(num_cpus=0, max_retries=0)(_train_task)
    queue = list(pending)
    in_flight: dict[Any, str] = {}
    while queue or in_flight:
        while queue and len(in_flight) < parallel:
            model, seed, run_cfg, run_name = queue.pop(0)
            log.info("train %s (model %s, seed %d) as a Ray task", run_name, model, seed)
            in_flight[remote.remote(run_cfg, features.uri, out, model, run_name)] = run_name
        ready, _ = ray.wait(list(in_flight), num_returns=1)
        run_name = in_flight.pop(ready[0])
        try:
            finished(run_name, ray.get(ready[0]))
        except Exception as exc:  # noqa: BLE001
            failed("train", run_name, exc)


def run_workflow(cfg: Config) -> WorkflowResult:
    """corpus -> preprocess -> train (models x seeds) -> tune -> report, on the ambient Ray.

    Validates the config first, then attaches to ``ray.address`` / ``RAY_ADDRESS`` (inside a
    Ray job) or starts a local Ray. A failing training run, sweep or report is recorded in
    ``failures`` and the remaining stages still run; without a manifest or features the
    workflow stops there. ``stages.force`` redoes committed stages.
    """
    t_start = time.perf_counter()
    cfg = validate_config(cfg)
    out = storage_from_config(cfg.storage)
    force = cfg.stages.force
    cfg_digest = digest(cfg)

    from lssed.runtime import init_ray

    init_ray(cfg.ray)
    _check_cluster(cfg)

    failures: list[StageFailure] = []
    skipped: list[str] = []
    timings: dict[str, float] = {}
    state: dict[str, Any] = {"corpus": None, "features": None, "runs": [], "sweep": None, "report": None,
                             "report_uri": None}

    def timed(name: str, fn: Callable[[], Any]) -> Any:
        t0 = time.perf_counter()
        try:
            return fn()
        finally:
            timings[name] = round(timings.get(name, 0.0) + time.perf_counter() - t0, 3)

    def failed(stage: str, name: str, exc: BaseException) -> None:
        log.error("%s %s failed: %s\n%s", stage, name, exc, "".join(traceback.format_exception(exc)))
        failures.append(StageFailure(stage, name, f"{type(exc).__name__}: {exc}"))

    def result() -> WorkflowResult:
        res = WorkflowResult(
            storage_uri=out.uri, config_digest=cfg_digest, corpus=state["corpus"], features=state["features"],
            runs=tuple(state["runs"]), sweep=state["sweep"], report=state["report"],
            report_uri=state["report_uri"], skipped=tuple(skipped), failures=tuple(failures),
            stage_seconds=dict(timings), seconds=round(time.perf_counter() - t_start, 3),
        )
        _write_summary(out, cfg, res)
        return res

    # 1. corpus -> manifest
    try:
        corpus = timed("corpus", lambda: corpus_stage(cfg, out=out, force=force))
    except Exception as exc:  # noqa: BLE001 - recorded, reported, non-zero exit
        failed("corpus", cfg.corpus.name, exc)
        return result()
    state["corpus"] = corpus
    if corpus.skipped:
        skipped.append("corpus")
    if corpus.rows == 0:
        failures.append(StageFailure("corpus", cfg.corpus.name, "no usable utterances; see " + corpus.rejects_uri))
        return result()

    # 2. preprocess -> shards
    if not cfg.stages.preprocess:
        log.info("stages.preprocess=false: stopping after the corpus")
        return result()
    from lssed.preprocess.stage import preprocess

    try:
        features = timed("preprocess", lambda: preprocess(cfg, corpus.manifest_uri, out=out, force=force))
    except Exception as exc:  # noqa: BLE001
        failed("preprocess", corpus.digest, exc)
        return result()
    state["features"] = features
    if features.skipped:
        skipped.append("preprocess")
    log.info("preprocess: %d in, %d out, %d quarantined -> %s", features.rows_in, features.rows_out,
             features.rows_quarantined, features.uri)
    if features.rows_out == 0:
        failures.append(StageFailure("preprocess", features.digest, "no rows survived; see " + features.quarantine_uri))
        return result()

    # 3. train every model x seed
    if cfg.stages.train:
        timed("train", lambda: _train_all(cfg, features, out, force, state["runs"], skipped, failed))

    # 4. tune
    if cfg.stages.tune:
        from lssed.tune.sweep import tune

        try:
            if force:
                from lssed.tune.space import sweep_name

                out.child("tune", sweep_name(cfg, features.uri)).delete_dir()
            state["sweep"] = timed("tune", lambda: tune(cfg, features.uri, out=out))
            log.info("tune %s: best %s (val UA %s)", state["sweep"].sweep_name, state["sweep"].best_run_name,
                     state["sweep"].best_val_ua)
        except Exception as exc:  # noqa: BLE001
            failed("tune", cfg.tune.name or "sweep", exc)

    # 5. report (always rebuilt: it only reads storage and is cheap)
    if cfg.stages.report and not out.exists("runs"):
        log.warning("report: nothing to report yet (no %s)", out.join_uri("runs"))
    elif cfg.stages.report:
        report_dir = cfg.report.out_dir or out.join_uri("report")
        try:
            state["report"], state["report_uri"] = timed("report", lambda: _report(cfg, out, report_dir))
            if state["report"].missing:
                log.warning("report: missing %s", "; ".join(state["report"].missing))
        except Exception as exc:  # noqa: BLE001
            failed("report", report_dir, exc)

    res = result()
    log.info("workflow %s in %.1f s (%s)", "finished" if res.ok else "FAILED", res.seconds,
             ", ".join(f"{k} {v:.1f} s" for k, v in timings.items()))
    return res


def _run_name(cfg: Config, run_cfg: Config, model: str, seed: int, features_digest: str,
              default_run_name: Callable[..., str]) -> str:
    """A stable name per (model, seed): same config -> same name -> Ray Train resumes it."""
    if not cfg.train.run_name:
        return default_run_name(run_cfg, model, features_digest)
    if len(cfg.train.models) * len(cfg.train.seeds) == 1:
        return cfg.train.run_name
    return f"{cfg.train.run_name}-{model}-s{seed}"


def _report(cfg: Config, out: Storage, report_dir: str) -> tuple[Any, str]:
    """Build the report; on S3 it is built in a temporary folder and uploaded to ``report_dir``."""
    from lssed.report.build import build_report

    runs_uri = out.join_uri("runs")
    dest = storage_from_config(cfg.storage, report_dir)
    if not dest.is_s3:
        report = build_report(runs_uri, dest.root, storage_cfg=cfg.storage)
        return report, str(report.index_html)
    with tempfile.TemporaryDirectory(prefix="lssed-report-") as tmp:
        report = build_report(runs_uri, tmp, storage_cfg=cfg.storage)
        files = [p for p in Path(tmp).rglob("*") if p.is_file()]
        for p in files:
            dest.write_bytes(p.read_bytes(), p.relative_to(tmp).as_posix())
        log.info("report: uploaded %d files to %s", len(files), dest.uri)
        return report, dest.join_uri(Path(report.index_html).relative_to(tmp).as_posix())


def _check_cluster(cfg: Config) -> None:
    """Warn early about configs the attached cluster cannot run."""
    try:
        from lssed.runtime import cluster_gpus

        if cfg.train.use_gpu and cluster_gpus() == 0:
            log.warning("train.use_gpu=true but the cluster has no GPU now; training waits for the "
                        "autoscaler to add GPU nodes (on a fixed cluster it never starts)")
    except Exception:  # noqa: BLE001 - purely advisory
        pass


def _write_summary(out: Storage, cfg: Config, res: WorkflowResult) -> None:
    """``<out>/workflow.json``: the last run's config, timings, skips and failures."""
    try:
        out.write_json({
            "ok": res.ok,
            "config_digest": res.config_digest,
            "config": config_to_dict(cfg),
            "manifest_uri": res.corpus.manifest_uri if res.corpus else None,
            "features_uri": getattr(res.features, "uri", None),
            "runs": [r.run_name for r in res.runs],
            "report_uri": res.report_uri,
            "skipped": list(res.skipped),
            "failures": [dataclasses.asdict(f) for f in res.failures],
            "stage_seconds": res.stage_seconds,
            "seconds": res.seconds,
        }, WORKFLOW_SUMMARY)
    except Exception as exc:  # noqa: BLE001 - the summary must never mask the real outcome
        log.warning("could not write %s: %s", WORKFLOW_SUMMARY, exc)


# --------------------------------------------------------------------------- CLI


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from lssed.cliutil import add_config_arguments

    add_config_arguments(parser)
    parser.add_argument("--force", action="store_true", help="redo committed stages (same as --set stages.force=true)")


def config_from_cli(args: argparse.Namespace) -> Config:
    """--config (default: the demo config when it exists) + --set + --force."""
    path = getattr(args, "config", None)
    if path is None and DEMO_CONFIG.exists():
        path = DEMO_CONFIG
    cfg = load_config(path, list(getattr(args, "overrides", []) or []))
    if getattr(args, "force", False):
        cfg = replace_section(cfg, "stages", force=True)
    return cfg


def format_summary(res: WorkflowResult) -> str:
    lines = [f"storage: {res.storage_uri}"]
    if res.corpus:
        lines.append(f"manifest: {res.corpus.manifest_uri} ({res.corpus.rows} utterances, {res.corpus.rejected} rejected)")
    if res.features is not None:
        lines.append(f"features: {res.features.uri} ({res.features.rows_out} rows, "
                     f"{res.features.rows_quarantined} quarantined)")
    for r in res.runs:
        test = r.evaluations.get("test")
        lines.append(f"run {r.run_name}: val UA {r.val.ua:.3f}" + (f", test UA {test.ua:.3f} WA {test.wa:.3f}" if test else ""))
    if res.skipped:
        lines.append("skipped (committed): " + ", ".join(res.skipped))
    for f in res.failures:
        lines.append(f"FAILED {f.stage} {f.name}: {f.error}")
    if res.report_uri:
        lines.append(f"report: {res.report_uri}")
    lines.append(f"{'ok' if res.ok else 'FAILED'} in {res.seconds:.1f} s")
    return "\n".join(lines)


def main(args: argparse.Namespace) -> int:
    cfg = config_from_cli(args)
    res = run_workflow(cfg)
    print(format_summary(res))
    return 0 if res.ok else 1

