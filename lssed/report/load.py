"""Read what training and tuning left in storage: every run's ``results.json`` and
``predictions.parquet``, its ``evaluations/*.json`` (``lssed evaluate``: merged into the run's
evaluations as ``<split>@<corpus>``, e.g. ``test@iemocap``), and the ``_SUCCESS.json`` of the
features each run trained on.

Nothing here fails on partial results: a run without ``results.json`` (still running, stopped
early by ASHA, crashed), unreadable JSON or a missing features marker becomes a line in
``missing`` that says what is absent and why it matters.
"""

from __future__ import annotations

import json
import logging
import posixpath
from dataclasses import dataclass, field
from typing import Any

import pyarrow.fs as pafs

from lssed.storage import SUCCESS_MARKER, Storage, StorageError, storage_from_config
from lssed.train.results import PREDICTIONS_FILE, RESULTS_FILE, RunResults

log = logging.getLogger(__name__)

# shard columns the dataset statistics need (never the heavy logmel / waveform lists)
STAT_COLUMNS: tuple[str, ...] = ("utt_id", "corpus", "speaker", "gender", "age", "label", "label4", "split",
                                 "start_s", "end_s", "n_frames", "sample_rate")


@dataclass(frozen=True)
class LoadedRun:
    name: str
    uri: str
    results: RunResults
    predictions_rows: int | None  # None: predictions.parquet absent or unreadable
    model_card: str | None = None  # URI of the run's MODEL_CARD.md; None: a run from before model cards


@dataclass(frozen=True)
class LoadedFeatures:
    uri: str
    marker: dict[str, Any]  # the features' _SUCCESS.json ({} when unreadable)
    shard_meta: Any | None  # pyarrow.Table of STAT_COLUMNS from the shards, or None


@dataclass(frozen=True)
class LoadedRuns:
    runs_uri: str  # the runs/ directory that was read
    runs: tuple[LoadedRun, ...]
    features: dict[str, LoadedFeatures] = field(default_factory=dict)  # by features_uri
    missing: tuple[str, ...] = ()
    incomplete_runs: tuple[str, ...] = ()  # run directories without usable results.json


def _dirs(storage: Storage) -> list[str]:
    selector = pafs.FileSelector(storage.root, allow_not_found=True, recursive=False)
    return sorted(i.path for i in storage.filesystem.get_file_info(selector) if i.type == pafs.FileType.Directory)


def resolve_runs_dir(runs_uri: str, storage_cfg: Any | None = None) -> Storage:
    """``runs_uri`` is the storage root holding ``runs/`` or ``runs/`` itself."""
    base = storage_from_config(storage_cfg, runs_uri)
    try:
        exists = base.exists()
    except OSError as exc:
        raise StorageError(f"cannot read {runs_uri!r} ({exc}); check the URI and storage.endpoint_url") from exc
    if not exists:
        raise FileNotFoundError(
            f"{runs_uri!r} does not exist: pass the storage root that holds runs/ (the --out of "
            "`lssed train`/`lssed tune`) or its runs/ directory"
        )
    if base.exists("runs") and posixpath.basename(base.root) != "runs":
        return base.child("runs")
    return base


def _load_run(run_dir: Storage, name: str, missing: list[str]) -> LoadedRun | None:
    if not run_dir.exists(RESULTS_FILE):
        entries = [posixpath.basename(p) for p in run_dir.list()]
        what = ", ".join(entries[:4]) + (" ..." if len(entries) > 4 else "") if entries else "empty"
        missing.append(f"run {name}: no {RESULTS_FILE} (found: {what}); it is still running, was stopped "
                       "early by the scheduler, or failed; rerun it with the same run name to finish it")
        return None
    try:
        data = json.loads(run_dir.read_bytes(RESULTS_FILE))
        results = RunResults.from_dict(data)
    except (ValueError, KeyError, TypeError) as exc:
        missing.append(f"run {name}: {RESULTS_FILE} is unreadable ({type(exc).__name__}: {exc}); "
                       "it was left out of every table")
        return None
    rows: int | None = None
    if run_dir.exists(PREDICTIONS_FILE):
        try:
            import pyarrow.parquet as pq

            with run_dir.filesystem.open_input_file(run_dir.path(PREDICTIONS_FILE)) as f:
                rows = pq.ParquetFile(f).metadata.num_rows
        except Exception as exc:  # a torn parquet file must not sink the report
            missing.append(f"run {name}: {PREDICTIONS_FILE} is unreadable ({exc})")
    else:
        missing.append(f"run {name}: no {PREDICTIONS_FILE}")
    results = _with_evaluations(run_dir, name, results, missing)
    from lssed.report.modelcard import CARD_FILE

    card = run_dir.join_uri(CARD_FILE) if run_dir.exists(CARD_FILE) else None
    return LoadedRun(name=name, uri=run_dir.uri, results=results, predictions_rows=rows, model_card=card)


def _with_evaluations(run_dir: Storage, name: str, results: RunResults, missing: list[str]) -> RunResults:
    """The run's results plus its ``evaluations/*.json`` as ``<split>@<corpus>`` evaluations."""
    import dataclasses

    from lssed.evaluate.scoring import read_evaluations

    try:
        found, problems = read_evaluations(run_dir)
    except OSError as exc:
        missing.append(f"run {name}: evaluations/ unreadable ({exc})")
        return results
    missing += [f"run {name}: {p}" for p in problems]
    extra = {e.key: e.metrics for e in found if e.corpus != results.train_corpus or e.split != "test"}
    if not extra:
        return results
    return dataclasses.replace(results, evaluations={**results.evaluations, **extra})


def _load_features(uri: str, storage_cfg: Any | None, missing: list[str]) -> LoadedFeatures:
    storage = storage_from_config(storage_cfg, uri)
    marker: dict[str, Any] = {}
    try:
        marker = storage.read_json(SUCCESS_MARKER)
    except (OSError, ValueError, StorageError) as exc:
        missing.append(f"features {uri}: no readable {SUCCESS_MARKER} ({type(exc).__name__}); "
                       "dataset statistics from its marker are missing")
    meta = None
    try:
        import pyarrow.dataset as pads

        shards = storage.child("shards")
        if shards.exists():
            ds = pads.dataset(shards.root, filesystem=shards.filesystem, format="parquet")
            cols = [c for c in STAT_COLUMNS if c in ds.schema.names]
            meta = ds.to_table(columns=cols)
    except Exception as exc:  # statistics are optional; say so instead of failing
        missing.append(f"features {uri}: shards unreadable for dataset statistics ({exc})")
    if meta is None and not marker:
        return LoadedFeatures(uri, {}, None)
    return LoadedFeatures(uri, marker, meta)


def load_runs(runs_uri: str, storage_cfg: Any | None = None, *, with_features: bool = True) -> LoadedRuns:
    """Every run under ``runs/`` plus the features they point at, and what is missing."""
    runs_dir = resolve_runs_dir(runs_uri, storage_cfg)
    missing: list[str] = []
    runs: list[LoadedRun] = []
    incomplete: list[str] = []
    for path in _dirs(runs_dir):
        name = posixpath.basename(path)
        loaded = _load_run(runs_dir.child(name), name, missing)
        if loaded is None:
            incomplete.append(name)
        else:
            runs.append(loaded)
    if not runs and not incomplete:
        missing.append(f"no runs under {runs_dir.uri}: train or tune first (`lssed train` / `lssed tune`)")
    features: dict[str, LoadedFeatures] = {}
    if with_features:
        for uri in sorted({r.results.features_uri for r in runs if r.results.features_uri}):
            features[uri] = _load_features(uri, storage_cfg, missing)
    log.info("report: %d complete run(s), %d incomplete, under %s", len(runs), len(incomplete), runs_dir.uri)
    return LoadedRuns(runs_dir.uri, tuple(runs), features, tuple(missing), tuple(incomplete))
