"""The whole benchmark from one config: corpus -> preprocess -> train -> [crosscorpus] -> [transfer] -> tune -> report.

Each stage lives in its package (``corpora/stage.py``, ``preprocess/stage.py``,
``train/runs.py``, ``tune/sweep.py``, ``report/publish.py``); this module calls them in order
on the ambient Ray and records what each produced, skipped or failed in a
:class:`WorkflowResult` and in ``<storage>/workflow.json``.

Committed stages are skipped, so running the same config again (e.g. re-submitting a job that
failed half-way) picks up where it stopped; ``stages.force`` redoes everything. A failing
training run, sweep or report is recorded and the remaining stages still run; without a
manifest or features the workflow stops there. The command line is ``lssed run``
(lssed/workflow_cli.py), the same as ``python workflows/full.py``.

Several corpora (``corpora:``, each a corpus section; else the single ``corpus:``) are each
prepared, preprocessed and trained on; with ``crosscorpus: true`` every run is then scored on
every other corpus's test split (``lssed/evaluate/stage.py``: Table 4). The sweep runs on the
first corpus. With a ``transfer.corpus`` (e.g. DAIC-WOZ), that corpus is prepared and
preprocessed after training and the transfer stage (``lssed/transfer/stage.py``: Table 6)
scores the trained runs' embeddings and the baselines on it.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable, ParamSpec, TypeVar

from lssed.config import Config, CorpusConfig, config_to_dict, digest
from lssed.storage import Storage, storage_from_config

if TYPE_CHECKING:  # the stages import torch, Ray and pyarrow: only when they run
    from lssed.corpora.stage import CorpusResult
    from lssed.evaluate.stage import CorpusFeatures, CrossCorpusResult, TrainedOn
    from lssed.preprocess.stage import FeatureSet
    from lssed.report.publish import PublishedReport
    from lssed.train.results import RunResults
    from lssed.transfer.stage import TransferResults
    from lssed.tune.sweep import SweepResult

log = logging.getLogger(__name__)

WORKFLOW_SUMMARY = "workflow.json"

P = ParamSpec("P")
T = TypeVar("T")


@dataclass(frozen=True)
class StageFailure:
    """One stage (or one training run) that raised; the workflow went on where it could."""

    stage: str  # corpus | preprocess | train | crosscorpus | transfer | tune | report
    name: str  # e.g. the run name for a training run
    error: str  # "ExceptionType: message"


@dataclass(frozen=True)
class WorkflowResult:
    """Everything one workflow run produced or found committed, and what failed."""

    storage_uri: str
    config_digest: str
    corpus: CorpusResult | None = None  # the first corpus's
    features: FeatureSet | None = None  # the first corpus's
    runs: tuple[RunResults, ...] = ()  # one per (corpus, model, seed, fold) that finished
    sweep: SweepResult | None = None
    corpora: tuple[CorpusResult, ...] = ()  # every corpus's, in config order
    feature_sets: tuple[FeatureSet, ...] = ()
    crosscorpus: CrossCorpusResult | None = None
    transfer: TransferResults | None = None  # the transfer stage's (transfer.corpus set)
    report: PublishedReport | None = None
    skipped: tuple[str, ...] = ()  # committed stages/runs that were not redone
    failures: tuple[StageFailure, ...] = ()
    stage_seconds: dict[str, float] = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.failures

    @property
    def report_uri(self) -> str | None:
        """Where index.html lives."""
        return self.report.index_uri if self.report else None


@dataclass
class _Progress:
    """What the stages have left so far; each stage adds its output, skips and failures."""

    corpus: CorpusResult | None = None
    features: FeatureSet | None = None
    runs: tuple[RunResults, ...] = ()
    sweep: SweepResult | None = None
    report: PublishedReport | None = None
    corpora: list[CorpusResult] = field(default_factory=list)
    feature_sets: list[FeatureSet] = field(default_factory=list)
    crosscorpus: CrossCorpusResult | None = None
    transfer: TransferResults | None = None
    skipped: list[str] = field(default_factory=list)
    failures: list[StageFailure] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)

    def call(self, stage: str, name: str, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T | None:
        """``fn(*args, **kwargs)``, timed under ``stage``; an exception is recorded (None returned)."""
        t0 = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        except Exception as exc:  # noqa: BLE001 - recorded, reported, non-zero exit
            self.fail(stage, name, f"{type(exc).__name__}: {exc}", exc)
            return None
        finally:
            self.seconds[stage] = round(self.seconds.get(stage, 0.0) + time.perf_counter() - t0, 3)

    def fail(self, stage: str, name: str, error: str, exc: BaseException | None = None) -> None:
        log.error("%s %s failed: %s", stage, name, error, exc_info=exc)
        self.failures.append(StageFailure(stage, name, error))


# --------------------------------------------------------------------------- the workflow


def run_workflow(cfg: Config) -> WorkflowResult:
    """corpus -> preprocess -> train (models x seeds) -> tune -> report, on the ambient Ray.

    Validates the config first, then attaches to ``ray.address`` / ``RAY_ADDRESS`` (inside a
    Ray job) or starts a local Ray.
    """
    from lssed.runtime import init_ray
    from lssed.validate import validate_config

    t_start = time.perf_counter()
    cfg = validate_config(cfg, "workflow")
    out = storage_from_config(cfg.storage)
    init_ray(cfg.ray)
    _warn_about_the_cluster(cfg)

    progress = _Progress()
    _run_stages(cfg, out, progress)
    res = WorkflowResult(
        storage_uri=out.uri, config_digest=digest(cfg), corpus=progress.corpus, features=progress.features,
        runs=progress.runs, sweep=progress.sweep, report=progress.report, corpora=tuple(progress.corpora),
        feature_sets=tuple(progress.feature_sets), crosscorpus=progress.crosscorpus, transfer=progress.transfer,
        skipped=tuple(progress.skipped),
        failures=tuple(progress.failures), stage_seconds=dict(progress.seconds),
        seconds=round(time.perf_counter() - t_start, 3),
    )
    write_summary(out, cfg, res)
    log.info("workflow %s in %.1f s (%s)", "finished" if res.ok else "FAILED", res.seconds,
             ", ".join(f"{k} {v:.1f} s" for k, v in res.stage_seconds.items()))
    return res


def corpus_sections(cfg: Config) -> tuple[CorpusConfig, ...]:
    """The workflow's corpora: the ``corpora:`` list, else the single ``corpus:`` section."""
    return cfg.corpora or (cfg.corpus,)


def corpus_id(c: CorpusConfig) -> str:
    """A corpus's name in manifests, shards, runs and tables: ``corpus.id``, else its adapter name."""
    return c.id or c.name


def for_corpus(cfg: Config, c: CorpusConfig) -> Config:
    """The config one corpus's stages run with (its section as ``corpus``)."""
    return dataclasses.replace(cfg, corpus=c, corpora=())


def _run_stages(cfg: Config, out: Storage, progress: _Progress) -> None:
    """The stages in order; stops where a later stage would have nothing to read."""
    several = len(corpus_sections(cfg)) > 1
    prepared: list[tuple[Config, FeatureSet]] = []
    for section in corpus_sections(cfg):
        ccfg = for_corpus(cfg, section)
        corpus = _corpus(ccfg, out, progress, several)
        if corpus is None:
            continue
        if not cfg.stages.preprocess:
            log.info("stages.preprocess=false: stopping after the corpus")
            continue
        features = _preprocess(ccfg, out, progress, corpus, several)
        if features is not None:
            prepared.append((ccfg, features))
    if not prepared:
        return
    if cfg.stages.train:
        trained: list[TrainedOn] = []
        for ccfg, features in prepared:
            trained += _train(ccfg, out, progress, features)
        if cfg.crosscorpus:
            _crosscorpus(cfg, out, progress, trained, prepared)
    if cfg.transfer.corpus is not None:
        _transfer(cfg, out, progress)
    if cfg.stages.tune:
        _tune(prepared[0][0], out, progress, prepared[0][1])
    if cfg.stages.report:
        _report(cfg, out, progress)


def _corpus(cfg: Config, out: Storage, progress: _Progress, several: bool = False) -> CorpusResult | None:
    """1. corpus -> manifest; None unless it has utterances to preprocess."""
    from lssed.corpora.stage import corpus_stage

    corpus = progress.call("corpus", corpus_id(cfg.corpus), corpus_stage, cfg, out=out, force=cfg.stages.force)
    if corpus is None:
        return None
    progress.corpora.append(corpus)
    progress.corpus = progress.corpus or corpus
    if corpus.skipped:
        progress.skipped.append(f"corpus:{corpus_id(cfg.corpus)}" if several else "corpus")
    if corpus.rows == 0:
        progress.fail("corpus", cfg.corpus.name, "no usable utterances; see " + corpus.rejects_uri)
        return None
    return corpus


def _preprocess(cfg: Config, out: Storage, progress: _Progress, corpus: CorpusResult,
                several: bool = False) -> FeatureSet | None:
    """2. manifest -> feature shards; None unless rows survived."""
    from lssed.preprocess.stage import preprocess

    features = progress.call("preprocess", corpus.digest, preprocess, cfg, corpus.manifest_uri, out=out,
                             force=cfg.stages.force)
    if features is None:
        return None
    progress.feature_sets.append(features)
    progress.features = progress.features or features
    if features.skipped:
        progress.skipped.append(f"preprocess:{corpus_id(cfg.corpus)}" if several else "preprocess")
    log.info("preprocess: %d in, %d out, %d quarantined -> %s", features.rows_in, features.rows_out,
             features.rows_quarantined, features.uri)
    if features.rows_out == 0:
        progress.fail("preprocess", features.digest, "no rows survived; see " + features.quarantine_uri)
        return None
    return features


def _train(cfg: Config, out: Storage, progress: _Progress, features: FeatureSet) -> list[TrainedOn]:
    """3. every model x seed (x fold) of one corpus; each failing run is recorded, the others still train."""
    from lssed.evaluate.stage import TrainedOn
    from lssed.train.runs import train_runs

    trained = progress.call("train", "runs", train_runs, cfg, features.uri, features.digest, out=out,
                            force=cfg.stages.force)
    if trained is None:
        return []
    progress.runs = (*progress.runs, *trained.runs)
    progress.skipped += [f"train:{name}" for name in trained.skipped]
    progress.failures += [StageFailure("train", f.run_name, f.error) for f in trained.failures]
    return [TrainedOn(corpus_id(cfg.corpus), r) for r in trained.runs]


def _crosscorpus(cfg: Config, out: Storage, progress: _Progress, trained: list[TrainedOn],
                 prepared: list[tuple[Config, FeatureSet]]) -> None:
    """3b. every run on every other corpus's test split (Table 4)."""
    from lssed.evaluate.stage import CorpusFeatures, crosscorpus_stage

    corpora = [CorpusFeatures(corpus_id(ccfg.corpus), features.uri) for ccfg, features in prepared]
    result = progress.crosscorpus = progress.call("crosscorpus", "evaluations", crosscorpus_stage, cfg, trained,
                                                  corpora, out=out, force=cfg.stages.force)
    if result is None:
        return
    progress.skipped += [f"crosscorpus:{name}" for name in result.skipped]
    progress.failures += [StageFailure("crosscorpus", f.name, f.error) for f in result.failures]


def _transfer(cfg: Config, out: Storage, progress: _Progress) -> None:
    """3c. the transfer corpus (corpus + preprocess) and the transfer stage on the trained runs (Table 6)."""
    from lssed.transfer.stage import run_transfer

    names = cfg.transfer.runs or tuple(r.run_name for r in progress.runs)
    if not names:
        progress.fail("transfer", "runs", "no SER run to transfer: train one (stages.train) or name finished runs "
                                          "in transfer.runs")
        return
    tcfg = for_corpus(cfg, cfg.transfer.corpus)
    corpus = _corpus(tcfg, out, progress, several=True)
    features = _preprocess(tcfg, out, progress, corpus, several=True) if corpus is not None else None
    if features is None:
        return
    run_uris = [n if "/" in n else out.join_uri("runs", n) for n in names]
    progress.transfer = progress.call("transfer", corpus_id(cfg.transfer.corpus), run_transfer, cfg, features.uri,
                                      run_uris, out)


def _tune(cfg: Config, out: Storage, progress: _Progress, features: FeatureSet) -> None:
    """4. the sweep (Ray Tune); it resumes an interrupted experiment by itself."""
    from lssed.tune.sweep import tune

    sweep = progress.sweep = progress.call("tune", cfg.tune.name or "sweep", tune, cfg, features.uri, out=out,
                                           force=cfg.stages.force)
    if sweep is not None:
        log.info("tune %s: best %s (val UA %s)", sweep.sweep_name, sweep.best_run_name, sweep.best_val_ua)


def _report(cfg: Config, out: Storage, progress: _Progress) -> None:
    """5. the report, always rebuilt: it only reads storage and is cheap."""
    from lssed.report.publish import REPORT_DIR, publish_report

    if not out.exists("runs"):
        log.warning("report: nothing to report yet (no %s)", out.join_uri("runs"))
        return
    dest = cfg.report.out_dir or out.join_uri(REPORT_DIR)
    report = progress.report = progress.call("report", dest, publish_report, out.join_uri("runs"), dest,
                                             storage_cfg=cfg.storage)
    if report is not None and report.report.missing:
        log.warning("report: missing %s", "; ".join(report.report.missing))


def _warn_about_the_cluster(cfg: Config) -> None:
    """Say early what the attached cluster cannot run now (advisory: it may autoscale)."""
    import ray

    from lssed.validate import cluster_warnings

    if cfg.stages.train or cfg.stages.tune:
        for warning in cluster_warnings(cfg, ray.cluster_resources()):
            log.warning("%s", warning)


def write_summary(out: Storage, cfg: Config, res: WorkflowResult) -> None:
    """``<out>/workflow.json``: the last run's config, timings, skips and failures."""
    try:
        out.write_json({
            "ok": res.ok,
            "config_digest": res.config_digest,
            "config": config_to_dict(cfg),
            "manifest_uri": res.corpus.manifest_uri if res.corpus else None,
            "features_uri": res.features.uri if res.features else None,
            "manifest_uris": [c.manifest_uri for c in res.corpora],
            "features_uris": [f.uri for f in res.feature_sets],
            "evaluations": [e.json_uri for e in res.crosscorpus.evaluations] if res.crosscorpus else [],
            "transfer_uri": res.transfer.results_uri if res.transfer else None,
            "runs": [r.run_name for r in res.runs],
            "report_uri": res.report_uri,
            "skipped": list(res.skipped),
            "failures": [dataclasses.asdict(f) for f in res.failures],
            "stage_seconds": res.stage_seconds,
            "seconds": res.seconds,
        }, WORKFLOW_SUMMARY)
    except Exception as exc:  # noqa: BLE001 - the summary must never mask the real outcome
        log.warning("could not write %s: %s", WORKFLOW_SUMMARY, exc)
