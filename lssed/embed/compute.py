"""``lssed embed``: every utterance of a feature set -> one vector, on Ray Data; the table layout.

Layout (shared with the transfer stage's baseline encoders)::

    <out>/embeddings/<name>/part-00000.parquet ...   # EMBEDDING_SCHEMA rows, sorted by utt_id
    <out>/embeddings/<name>/_SUCCESS.json            # what made them (written last)

The model is loaded on the driver with :func:`lssed.models.export.model_from_run` /
:func:`~lssed.models.export.model_from_checkpoint` (weights only, so a missing or broken run
fails before Ray starts work); its weights go to an actor pool through the object store. The
actors run each utterance whole and alone (no padding, no batch neighbours), so the vectors are
bitwise the same from run to run whatever the scheduling or the number of actors (on the same
kind of device); batching utterances of equal shape would move the last digits (about 1e-5)
with the batch's composition, which Ray's streaming does not fix. A run whose STFT settings differ from the feature
set's gets log-mel recomputed from the stored waveforms with the run's settings, as
``lssed evaluate`` does; an imported checkpoint sees the stored log-mel as it is.
"""

from __future__ import annotations

import logging
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from lssed.errors import InputNotFoundError, UserError
from lssed.storage import SUCCESS_MARKER, Storage, storage_from_config

log = logging.getLogger(__name__)

EMBEDDINGS_DIR = "embeddings"
ROWS_PER_PART = 8192
ROWS_PER_CALL = 64  # shard rows per actor call (each still runs alone through the model)
# the shard columns every embedding row carries (``score`` is null for shards written before it)
CARRIED = ("utt_id", "corpus", "speaker", "session", "split", "label", "score", "start_s", "end_s")

EMBEDDING_SCHEMA = pa.schema([
    ("utt_id", pa.string()),
    ("corpus", pa.string()),
    ("speaker", pa.string()),
    ("session", pa.string()),
    ("split", pa.string()),
    ("label", pa.string()),  # the manifest's label (DAIC-WOZ: depressed / not-depressed)
    ("score", pa.float32()),  # numeric target (DAIC-WOZ: PHQ-8 score) or null
    ("start_s", pa.float64()),
    ("end_s", pa.float64()),
    ("embedding", pa.list_(pa.float32())),  # the same length (`dim` in _SUCCESS.json) on every row
])


@dataclass(frozen=True)
class EmbeddingSet:
    """A committed embedding table: ``uri`` is ``<out>/embeddings/<name>``."""

    uri: str
    name: str
    rows: int
    dim: int
    meta: dict[str, Any] = field(default_factory=dict)


def set_name(text: str) -> str:
    """A file-system-safe embedding set name."""
    name = re.sub(r"[^A-Za-z0-9._+-]+", "_", text).strip("._")
    if not name:
        raise UserError(f"embedding set name {text!r} has no usable characters; pass --name NAME")
    return name[:120]


# --------------------------------------------------------------------------- the table on storage


def write_embedding_table(out: Storage, table: pa.Table, meta: Mapping[str, Any]) -> str:
    """Write ``table`` (:data:`EMBEDDING_SCHEMA` columns) as ``<out>/embeddings/<meta["name"]>``; returns its URI.

    ``out`` is the storage root (``--out``); ``meta`` must name the set (``name``) and the
    ``source`` of the vectors (a run, a checkpoint, a baseline encoder); ``dim`` and ``rows``
    are filled in from the table. Rows are sorted by utt_id and every embedding must have the
    same length. Anything there before is replaced; ``_SUCCESS.json`` is written last.
    """
    if "name" not in meta or "source" not in meta:
        raise ValueError("write_embedding_table: meta needs 'name' and 'source'")
    name = set_name(str(meta["name"]))
    missing = [c for c in EMBEDDING_SCHEMA.names if c not in table.column_names]
    if missing:
        raise ValueError(f"embedding table lacks column(s) {missing}; expected {EMBEDDING_SCHEMA.names}")
    table = table.select(EMBEDDING_SCHEMA.names).cast(EMBEDDING_SCHEMA).sort_by("utt_id")
    emb = table.column("embedding").combine_chunks()
    if emb.null_count:
        raise ValueError(f"{emb.null_count} rows have no embedding")
    lengths = np.unique(np.diff(emb.offsets.to_numpy())) if len(emb) else np.asarray([0])
    if len(lengths) != 1 or (table.num_rows and lengths[0] == 0):
        raise ValueError(f"embeddings must all have one non-zero length; found lengths {lengths.tolist()[:5]}")
    ids = table.column("utt_id")
    if len(ids.unique()) != table.num_rows:
        raise ValueError("embedding table has duplicated utt_ids")
    dest = out.child(EMBEDDINGS_DIR, name)
    dest.delete_dir()
    parts = max(1, -(-table.num_rows // ROWS_PER_PART))
    for i in range(parts):
        sink = pa.BufferOutputStream()
        pq.write_table(table.slice(i * ROWS_PER_PART, ROWS_PER_PART), sink, compression="zstd")
        dest.write_bytes(sink.getvalue().to_pybytes(), f"part-{i:05d}.parquet")
    marker = {**dict(meta), "name": name, "dim": int(lengths[0]) if table.num_rows else 0,
              "rows": int(table.num_rows), "parts": parts, "columns": EMBEDDING_SCHEMA.names}
    dest.write_json(marker, SUCCESS_MARKER)
    return dest.uri


def read_embedding_meta(uri: str, storage_cfg: Any = None) -> dict[str, Any]:
    """The ``_SUCCESS.json`` of an embedding set (what made it: source, model, layer, dim, ...)."""
    store = storage_from_config(storage_cfg, uri)
    if not store.exists(SUCCESS_MARKER):
        raise InputNotFoundError(f"{uri} has no {SUCCESS_MARKER}: not a finished embedding set (write one with "
                                 "`lssed embed FEATURES --run RUN --out URI`)")
    return store.read_json(SUCCESS_MARKER)


def read_embeddings(uri: str, storage_cfg: Any = None) -> pa.Table:
    """An embedding set's rows (:data:`EMBEDDING_SCHEMA`, sorted by utt_id); checks the committed count."""
    import pyarrow.dataset as pads

    meta = read_embedding_meta(uri, storage_cfg)
    store = storage_from_config(storage_cfg, uri)
    files = sorted(f for f in store.list() if re.search(r"(^|/)part-\d+\.parquet$", f))
    paths = [store.path(f.rsplit("/", 1)[-1]) for f in files]
    if not paths:
        table = EMBEDDING_SCHEMA.empty_table()
    else:
        table = pads.dataset(paths, filesystem=store.filesystem, format="parquet").to_table()
    if table.num_rows != int(meta.get("rows", -1)):
        raise UserError(f"{uri}: {SUCCESS_MARKER} commits {meta.get('rows')} rows but the parts hold "
                        f"{table.num_rows}; the set changed after it was written: embed again")
    return table.select(EMBEDDING_SCHEMA.names).cast(EMBEDDING_SCHEMA).sort_by("utt_id")


# --------------------------------------------------------------------------- the Ray Data job


@dataclass(frozen=True)
class _Model:
    """The loaded model as the driver resolved it."""

    net: Any
    meta: dict[str, Any]
    kind: str  # run | checkpoint
    source: str
    features: dict[str, Any]  # the feature settings the model is fed with


def _load_model(cfg: Any, stored: dict[str, Any], preprocess: dict[str, Any] | None, *,
                run_uri: str | None, checkpoint: str | None, model: str | None) -> _Model:
    from lssed.models.export import model_from_checkpoint, model_from_run

    if (run_uri is None) == (checkpoint is None):
        raise UserError("embed needs exactly one of --run RUN_URI and --checkpoint FILE")
    if run_uri is not None:
        net, meta = model_from_run(run_uri, cfg.storage)
        return _Model(net, meta, "run", storage_from_config(cfg.storage, run_uri).uri, dict(meta["features"]))
    path = Path(str(checkpoint))
    if "://" in str(checkpoint) or not path.is_file():
        raise InputNotFoundError(f"--checkpoint {checkpoint} is not a local file (copy it here first)")
    # an imported checkpoint states no settings of its own: it sees the feature set's log-mel as it is
    net, meta = model_from_checkpoint(path, features=stored, preprocess=preprocess or {}, model=model)
    return _Model(net, meta, "checkpoint", str(path.resolve()), dict(stored))


class EmbedWorker:
    """Ray Data actor: shard rows -> the same rows' :data:`CARRIED` columns + ``embedding``."""

    def __init__(self, model_name: str, model_kwargs: dict[str, Any], num_classes: int, state: list[Any],
                 layer: str | None, n_mels: int, recompute: bool, features: dict[str, Any], use_gpu: bool) -> None:
        import ray
        import torch

        from lssed.embed.extract import Embedder
        from lssed.models import create_model

        self.device = torch.device("cuda" if use_gpu and torch.cuda.is_available() else "cpu")
        net = create_model(model_name, num_classes=num_classes, **model_kwargs)
        net.load_state_dict(ray.get(state[0]))  # a list hides the ref from Ray's argument resolution
        self.embedder = Embedder(net.to(self.device), layer)
        self.n_mels, self.recompute, self.features = n_mels, recompute, features

    def __call__(self, batch: pa.Table) -> pa.Table:
        from lssed.embed.extract import embed_utterances, table_utterances

        items = table_utterances(batch, n_mels=self.n_mels, recompute=self.recompute)
        vectors = embed_utterances(self.embedder, items, self.device, self.features if self.recompute else None)
        values = [vectors[u].tolist() for u in batch.column("utt_id").to_pylist()]
        out = {c: batch.column(c) if c in batch.column_names else pa.nulls(batch.num_rows, EMBEDDING_SCHEMA.field(c).type)
               for c in CARRIED}
        out["embedding"] = pa.array(values, pa.list_(pa.float32()))
        return pa.table(out).cast(EMBEDDING_SCHEMA)


def _plan(shard_files: int, actors: int | None, use_gpu: bool | None) -> tuple[int, bool]:
    """(model actors, on GPUs?): one per GPU where the cluster has GPUs, else one per free CPU but
    one (a pool holding every CPU would leave none for Ray Data's read tasks, and stall)."""
    import ray

    from lssed.runtime import cluster_gpus

    gpus = int(cluster_gpus())
    gpu = gpus > 0 if use_gpu is None else bool(use_gpu)
    if gpu and gpus == 0:
        raise UserError("embedding on a GPU was asked for but the Ray cluster has no GPU")
    free = int(ray.available_resources().get("CPU", 1.0))
    limit = gpus if gpu else max(1, free)
    n = actors if actors is not None else (gpus if gpu else max(1, free - 1))
    return max(1, min(int(n), limit, max(1, shard_files))), gpu


def embed_features(cfg: Any, features_uri: str, *, run_uri: str | None = None, checkpoint: str | None = None,
                   out: Storage, layer: str | None = None, name: str | None = None, model: str | None = None,
                   actors: int | None = None, use_gpu: bool | None = None) -> EmbeddingSet:
    """One embedding per utterance of ``features_uri`` -> ``<out>/embeddings/<name>`` (see module doc).

    ``cfg``: a :class:`lssed.config.Config` (its ``storage`` and ``ray`` sections). ``run_uri``
    or ``checkpoint`` (``model``: the checkpoint's architecture, default inferred). ``layer``:
    a module name whose output is pooled (default: the classifier's input). ``name``: the set's
    name (default: the run's / checkpoint's, plus ``.<layer>``). ``actors``: model actors
    (default: one per GPU, else one per free CPU but one, at most one per shard file); ``use_gpu``
    None: GPUs when the cluster has them. Ray is started (or joined) as ``cfg.ray`` says.
    """
    import ray

    from lssed.config import config_from_dict, config_to_dict
    from lssed.embed.extract import PENULTIMATE, Embedder
    from lssed.runtime import init_ray
    from lssed.train.data import _file_based_parquet_reader, describe_features, stored_feature_config

    t0 = time.perf_counter()
    feats = storage_from_config(cfg.storage, features_uri)
    if not feats.exists(SUCCESS_MARKER):
        raise InputNotFoundError(f"{features_uri} has no {SUCCESS_MARKER}: pass a committed feature set "
                                 "(<out>/features/<digest> as `lssed preprocess` printed it)")
    marker = feats.read_json(SUCCESS_MARKER)
    stored = config_to_dict(stored_feature_config(marker, features_uri))
    preprocess = (marker.get("config") or {}).get("preprocess")
    loaded = _load_model(cfg, stored, preprocess, run_uri=run_uri, checkpoint=checkpoint, model=model)
    Embedder(loaded.net, layer)  # an unknown --layer fails here, before any Ray work
    fc = getattr(loaded.net, "fc", None)
    run_cfg = config_from_dict({"storage": config_to_dict(cfg.storage), "features": loaded.features,
                                "train": {"num_classes": len(loaded.meta["class_names"])}})
    source = describe_features(run_cfg, features_uri, for_training=False)
    base = loaded.meta.get("run_name") or Path(loaded.source.rstrip("/")).name.rsplit(".", 1)[0]
    name = set_name(name or (f"{base}.{layer}" if layer else str(base)))

    init_ray(getattr(cfg, "ray", None))
    n_actors, gpu = _plan(source.shard_files, actors, use_gpu)
    have = _shard_columns(source)
    columns = [c for c in CARRIED if c in have] + ["n_frames", "waveform" if source.recompute else "logmel"]
    state = {k: v.detach().cpu() for k, v in loaded.net.state_dict().items()}
    log.info("embed: %s (%s, layer %s) on %d %s actor(s) over %d shard files%s", loaded.source, loaded.meta["model"],
             layer or "fc input", n_actors, "GPU" if gpu else "CPU", source.shard_files,
             "; log-mel recomputed with the model's STFT settings" if source.recompute else "")
    with _file_based_parquet_reader():
        ds = ray.data.read_parquet(source.shards_path, filesystem=feats.filesystem, columns=columns,
                                   override_num_blocks=max(1, source.shard_files))
    ds = ds.map_batches(
        EmbedWorker, batch_size=ROWS_PER_CALL, batch_format="pyarrow",
        compute=ray.data.ActorPoolStrategy(size=n_actors),
        **({"num_gpus": 1} if gpu else {"num_cpus": 1}),
        fn_constructor_kwargs={
            "model_name": loaded.meta["model"], "model_kwargs": dict(loaded.meta.get("model_kwargs") or {}),
            "num_classes": len(loaded.meta["class_names"]), "state": [ray.put(state)], "layer": layer,
            "n_mels": source.n_mels, "recompute": source.recompute, "features": dict(source.features),
            "use_gpu": gpu,
        },
    )
    parts = [t for t in ds.iter_batches(batch_size=None, batch_format="pyarrow") if t.num_rows]
    table = pa.concat_tables(parts) if parts else EMBEDDING_SCHEMA.empty_table()
    if table.num_rows != source.rows_total:
        raise RuntimeError(f"embed: {table.num_rows} embeddings for {source.rows_total} shard rows")
    features = dict(source.features)
    meta = {
        "name": name, "source": loaded.source, "source_kind": loaded.kind, "model": loaded.meta["model"],
        "layer": layer or f"{PENULTIMATE} input (penultimate)", "class_names": list(loaded.meta["class_names"]),
        "train_corpora": list(loaded.meta.get("train_corpora") or []),
        "features_uri": feats.uri, "features_digest": source.digest, "features": features,
        "stored_features": dict(source.stored_features), "features_recomputed": bool(source.recompute),
        "window_ms": 1000.0 * float(features["win_length"]) / float(features["sample_rate"]),
        "hop_ms": 1000.0 * float(features["hop_length"]) / float(features["sample_rate"]),
        "fc_in_features": int(fc.in_features) if hasattr(fc, "in_features") else None,
        "actors": n_actors, "device": "cuda" if gpu else "cpu", "seconds": round(time.perf_counter() - t0, 3),
    }
    uri = write_embedding_table(out, table, meta)
    written = read_embedding_meta(uri, out)
    log.info("embed: %d x %d embeddings -> %s", written["rows"], written["dim"], uri)
    return EmbeddingSet(uri=uri, name=name, rows=int(written["rows"]), dim=int(written["dim"]), meta=written)


def _shard_columns(source: Any) -> set[str]:
    """The shards' column names (older shards lack ``score``)."""
    import pyarrow.dataset as pads

    return set(pads.dataset(source.shards_path, filesystem=source.storage.filesystem, format="parquet").schema.names)
