"""The transfer stage: SER embeddings and baselines -> participant-level scores -> results.json.

``run_transfer(cfg, features_uri, run_uris, out)``, for one feature set of a depression
corpus (DAIC-WOZ, or the synthetic demo interviews):

1. one embedding table per SER run (:func:`lssed.embed.compute.embed_features`, the pooled
   penultimate features on Ray Data) and per baseline (:mod:`lssed.transfer.baselines`, in
   this process, from the same shards' waveforms), all under ``<out>/embeddings/`` (a table
   already there for the same features and source is reused unless ``transfer.force``);
2. per table: pool per participant (:mod:`lssed.transfer.pooling`), split into training and
   dev participants (``transfer.dev_split``), fit and score the classifiers and the PHQ-8
   regression (:mod:`lssed.transfer.classifiers`) — the same participants and classifiers
   for every table;
3. ``<out>/transfer/<name>/results.json`` (:class:`TransferResults`), which the report turns
   into Table 6.

Baselines are resolved (weights and packages found) before anything is computed, so a
missing wav2vec2 weights file fails in a second with a message saying where to put it.
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Sequence

import numpy as np

from lssed.config import Config, digest
from lssed.errors import UserError
from lssed.storage import SUCCESS_MARKER, Storage, storage_from_config

log = logging.getLogger(__name__)

TRANSFER_DIR = "transfer"
RESULTS_FILE = "results.json"


@dataclass(frozen=True)
class FeatureScores:
    """One embedding table's scores (a group of Table 6 rows)."""

    features: str  # the row label: the run's name, or the baseline's
    kind: str  # ser | baseline
    embeddings_uri: str
    model: str
    layer: str | None
    dim: int
    window_ms: float | None
    hop_ms: float | None
    untrained: bool
    scores: tuple[dict[str, Any], ...]  # classifiers.Scores as dicts


@dataclass(frozen=True)
class TransferResults:
    name: str
    uri: str  # <out>/transfer/<name>
    features_uri: str
    corpus: str
    dev_split: str
    positive_label: str
    n_train: int  # participants
    n_dev: int
    sets: tuple[FeatureScores, ...]
    config: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def results_uri(self) -> str:
        return f"{self.uri.rstrip('/')}/{RESULTS_FILE}"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "TransferResults":
        sets = tuple(FeatureScores(**{**s, "scores": tuple(s["scores"])}) for s in data["sets"])
        return cls(**{**data, "sets": sets})


def transfer_name(cfg: Config, features_uri: str, corpus: str) -> str:
    """``transfer.name``, else ``<corpus>-<digest of the features and the transfer settings>``."""
    if cfg.transfer.name:
        return cfg.transfer.name
    from lssed.config import config_to_dict

    t = {k: v for k, v in config_to_dict(cfg.transfer).items() if k not in ("corpus", "force", "name")}
    return f"{corpus}-{digest(features_uri, t, length=10)}"


def _features_marker(cfg: Config, features_uri: str) -> tuple[Storage, dict[str, Any]]:
    feats = storage_from_config(cfg.storage, features_uri)
    if not feats.exists(SUCCESS_MARKER):
        raise UserError(f"{features_uri} has no {SUCCESS_MARKER}: pass a committed feature set "
                        "(<out>/features/<digest>, as `lssed preprocess` printed it)")
    return feats, feats.read_json(SUCCESS_MARKER)


def _committed(out: Storage, name: str, features_uri: str, source: str) -> dict[str, Any] | None:
    """An embedding set's marker when it is there for the same features and source."""
    from lssed.embed.compute import EMBEDDINGS_DIR, set_name

    sub = out.child(EMBEDDINGS_DIR, set_name(name))
    if not sub.exists(SUCCESS_MARKER):
        return None
    meta = sub.read_json(SUCCESS_MARKER)
    if meta.get("features_uri") == features_uri and meta.get("source") == source:
        return {**meta, "uri": sub.uri}
    return None


def _run_embeddings(cfg: Config, features_uri: str, digest8: str, run_uri: str, out: Storage) -> tuple[dict, Any]:
    from lssed.embed.compute import embed_features, read_embeddings

    run = storage_from_config(cfg.storage, run_uri)
    name = f"{run.root.rstrip('/').rsplit('/', 1)[-1]}.{digest8}"
    meta = None if cfg.transfer.force else _committed(out, name, features_uri, run.uri)
    if meta is None:
        es = embed_features(cfg, features_uri, run_uri=run_uri, out=out, name=name)
        meta = {**es.meta, "uri": es.uri}
    else:
        log.info("transfer: reusing the embeddings of %s at %s", run_uri, meta["uri"])
    return meta, read_embeddings(meta["uri"], cfg.storage)


def _baseline_embeddings(cfg: Config, features_uri: str, digest8: str, baseline: Any, out: Storage) -> tuple[dict, Any]:
    import pyarrow.dataset as pads

    from lssed.embed.compute import read_embeddings, write_embedding_table

    name = f"baseline-{baseline.name}.{digest8}"
    source = f"baseline:{baseline.name}:{baseline.meta.get('model')}:{baseline.meta.get('weights', '')}"
    meta = None if cfg.transfer.force else _committed(out, name, features_uri, source)
    if meta is None:
        from lssed.transfer.baselines import embed_shards

        t0 = time.perf_counter()
        feats = storage_from_config(cfg.storage, features_uri)
        shards = pads.dataset(feats.path("shards"), filesystem=feats.filesystem, format="parquet")
        table = embed_shards(baseline, shards)
        meta = {"name": name, "source": source, "source_kind": "baseline", "baseline": baseline.name,
                **baseline.meta, "features_uri": feats.uri, "window_ms": baseline.window_ms,
                "hop_ms": baseline.hop_ms, "seconds": round(time.perf_counter() - t0, 3)}
        uri = write_embedding_table(out, table, meta)
        meta = {**meta, "uri": uri, "dim": len(table.column("embedding")[0]) if table.num_rows else 0}
        log.info("transfer: %s baseline: %d embeddings in %.1f s -> %s", baseline.name, table.num_rows,
                 meta["seconds"], uri)
    else:
        log.info("transfer: reusing the %s baseline at %s", baseline.name, meta["uri"])
    return meta, read_embeddings(meta["uri"], cfg.storage)


def _score_table(label: str, kind: str, meta: dict[str, Any], table: Any, cfg: Config,
                 ids: tuple[tuple[str, ...], tuple[str, ...]] | None
                 ) -> tuple[FeatureScores, tuple[tuple[str, ...], tuple[str, ...]], int, int]:
    from lssed.transfer.classifiers import score_participants
    from lssed.transfer.pooling import pool_participants, train_dev

    t = cfg.transfer
    train, dev = train_dev(pool_participants(table, positive_label=t.positive_label), t.dev_split)
    if ids is not None and (train.ids, dev.ids) != ids:
        # every table comes from the same shards, so this is a bug or a changed feature set
        raise UserError(f"{label}: its participants differ from the first table's; recompute the embeddings "
                        "(transfer.force=true)")
    scores = score_participants(train, dev, classifiers=tuple(t.classifiers), folds=t.cv_folds,
                                bootstrap=t.bootstrap, seed=t.seed)
    fs = FeatureScores(
        features=label, kind=kind, embeddings_uri=str(meta.get("uri")), model=str(meta.get("model")),
        layer=None if meta.get("layer") is None else str(meta.get("layer")), dim=int(meta.get("dim") or 0),
        window_ms=None if meta.get("window_ms") is None else float(meta["window_ms"]),
        hop_ms=None if meta.get("hop_ms") is None else float(meta["hop_ms"]),
        untrained=bool(meta.get("untrained", False)),
        scores=tuple(_jsonable(asdict(s)) for s in scores))
    for s in scores:
        m = s.metrics
        log.info("transfer: %-28s %-6s F1(dep) %s macro-F1 %s UA %s MAE %s", label, s.classifier,
                 *(f"{m[k]:.3f}" if m[k] is not None else "-" for k in ("f1_depressed", "macro_f1", "ua", "mae")))
    return fs, (train.ids, dev.ids), len(train), len(dev)


def _jsonable(v: Any) -> Any:
    if isinstance(v, dict):
        return {k: _jsonable(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_jsonable(x) for x in v]
    if isinstance(v, np.generic):
        return v.item()
    return v


def run_transfer(cfg: Config, features_uri: str, run_uris: Sequence[str], out: Storage) -> TransferResults:
    """Score every run in ``run_uris`` and every ``transfer.baselines`` entry on ``features_uri``.

    Writes ``<out>/transfer/<name>/results.json`` and returns its contents. ``cfg`` is
    validated for the transfer stage first.
    """
    from lssed.config import config_to_dict
    from lssed.transfer.baselines import make_baseline
    from lssed.validate import validate_config

    t0 = time.perf_counter()
    cfg = validate_config(cfg, "transfer")
    if not run_uris and not cfg.transfer.baselines:
        raise UserError("transfer: nothing to score; pass --run RUN_URI and/or --baselines")
    feats, marker = _features_marker(cfg, features_uri)
    digest8 = str(marker.get("digest") or feats.root.rstrip("/").rsplit("/", 1)[-1])[:8]
    baselines = [make_baseline(b, cfg.transfer) for b in cfg.transfer.baselines]  # fail fast: weights, packages
    corpus = _corpus_of(feats)
    name = transfer_name(cfg, feats.uri, corpus)
    sets: list[FeatureScores] = []
    ids = None
    n_train = n_dev = 0
    for run_uri in run_uris:
        meta, table = _run_embeddings(cfg, feats.uri, digest8, run_uri, out)
        run_name = storage_from_config(cfg.storage, run_uri).root.rstrip("/").rsplit("/", 1)[-1]
        fs, ids, n_train, n_dev = _score_table(run_name, "ser", meta, table, cfg, ids)
        sets.append(fs)
    for baseline in baselines:
        meta, table = _baseline_embeddings(cfg, feats.uri, digest8, baseline, out)
        label = baseline.name if baseline.name != "wav2vec2" else f"wav2vec2 {baseline.meta['model']}"
        fs, ids, n_train, n_dev = _score_table(label, "baseline", {**meta, "untrained": baseline.meta.get("untrained")},
                                               table, cfg, ids)
        sets.append(fs)
    dest = out.child(TRANSFER_DIR, name)
    res = TransferResults(name=name, uri=dest.uri, features_uri=feats.uri, corpus=corpus,
                          dev_split=cfg.transfer.dev_split, positive_label=cfg.transfer.positive_label,
                          n_train=n_train, n_dev=n_dev, sets=tuple(sets),
                          config=config_to_dict(cfg.transfer),
                          seconds=round(time.perf_counter() - t0, 3))
    dest.write_json(res.to_dict(), RESULTS_FILE)
    log.info("transfer: %d feature set(s) on %d train / %d dev participants -> %s", len(sets), n_train, n_dev,
             res.results_uri)
    return res


def _corpus_of(feats: Storage) -> str:
    """The shards' corpus id (one value; several joined with '+')."""
    import pyarrow.dataset as pads

    ds = pads.dataset(feats.path("shards"), filesystem=feats.filesystem, format="parquet")
    values = sorted({str(v) for v in ds.to_table(columns=["corpus"]).column("corpus").unique().to_pylist()})
    return "+".join(values) or "corpus"


def load_transfer_results(root: Storage) -> tuple[list[TransferResults], list[str]]:
    """Every ``<root>/transfer/*/results.json`` and a line per unreadable one (for the report)."""
    import posixpath

    found: list[TransferResults] = []
    missing: list[str] = []
    if not root.exists(TRANSFER_DIR):
        return found, missing
    for path in sorted(root.list(TRANSFER_DIR)):
        name = posixpath.basename(path)
        sub = root.child(TRANSFER_DIR, name)
        if not sub.exists(RESULTS_FILE):
            continue
        try:
            found.append(TransferResults.from_dict(sub.read_json(RESULTS_FILE)))
        except (ValueError, KeyError, TypeError) as exc:
            missing.append(f"transfer {name}: {RESULTS_FILE} is unreadable ({type(exc).__name__}: {exc})")
    return found, missing
