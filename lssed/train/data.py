"""Training data from the preprocess stage's shards: splits, crops, collation, train-time features.

* Splits come from the shards' ``split`` column (train/val/test, speaker-independent, made by
  the corpora stage), or with ``train.fold`` = f from the ``fold`` column (test fold f, val
  fold (f+1) mod k, train the rest; :func:`row_splits`, :func:`split_filter`); only rows with a
  non-null ``label4`` are used (the 4-class benchmark). Training start checks that train, val
  and test share no speaker.
* Training: a random crop (or silence pad) of ``train.crop_seconds`` (default 5 s; in frames
  at the run's hop, or ``train.crop_frames`` when set) per utterance; the paper does not
  state a crop length. Batches carry each crop's real ``lengths``, and the models keep the
  padded frames out of every conv, pool and their pooling over time, so a short utterance
  trains on what evaluation (whole utterances, never padded) will see. Crop offsets are a
  hash of (seed, epoch, utt_id), so a run is repeatable whatever the order or worker its
  rows arrive in.
* Evaluation: whole utterances (the models pool adaptively, so batch-of-one is exact).
* Train-time features: when ``cfg.features`` differs from the feature config stored in the
  shards' ``_SUCCESS.json``, batches carry the stored 16 kHz waveform (int16 / 32768) instead
  and the loop computes log-mel on its device with :func:`lssed.features.logmel`. A training
  crop then covers ``(crop_frames - 1) * hop`` samples, which gives exactly ``crop_frames``
  frames; its edge frames see zero padding rather than the neighbouring audio (a departure
  from cropping the whole-utterance spectrogram, harmless as augmentation).

Ray is imported lazily here, so the pure functions work on a machine without Ray.
"""

from __future__ import annotations

import logging
import zlib
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Iterator, Sequence

import numpy as np
import pyarrow as pa

from lssed.config import Config, ConfigError, FeatureConfig, config_from_dict, config_to_dict
from lssed.storage import SUCCESS_MARKER, Storage, StorageError, storage_from_config
from lssed.train.types import Utterance

try:  # a Ray-free machine (the GPU benchmark) still imports the pure functions below
    from ray.data.collate_fn import ArrowBatchCollateFn as _CollateBase
except ImportError:  # pragma: no cover - exercised only where Ray is absent
    _CollateBase = object  # type: ignore[assignment,misc]

log = logging.getLogger(__name__)

PCM_SCALE = 32768.0  # stored int16 waveform -> float in [-1, 1)
META_COLUMNS: tuple[str, ...] = ("utt_id", "label4", "split")


@dataclass(frozen=True)
class FeatureSource:
    """What the trainer needs to know about one committed feature set."""

    uri: str  # <out>/features/<digest>
    digest: str
    shards_path: str  # inside the storage's filesystem
    stored_features: dict[str, Any]  # the feature config the shards' log-mels were made with
    features: dict[str, Any]  # the feature config used for training
    recompute: bool  # True: log-mel from the stored waveform on the worker's device
    n_mels: int
    split_counts: dict[str, int]  # labelled (label4 non-null) rows per split
    class_counts: tuple[int, ...]  # label4 counts in the training split
    train_corpora: tuple[str, ...]
    rows_total: int
    rows_unlabelled: int  # label4 null: outside the 4-class benchmark, not used
    shards_bytes: int = 0  # on-disk size of the shard files
    shard_files: int = 0  # number of shard files (one Ray Data read block each)
    storage: Storage = field(repr=False, default=None)  # type: ignore[assignment]
    # k-fold protocol (train.fold): splits come from the `fold` column, not `split`
    fold: int | None = None
    folds: int | None = None  # k, the number of folds in the shards (None: no fold column values)

    @property
    def columns(self) -> list[str]:
        fold = ("fold",) if self.fold is not None else ()  # the k-fold filter reads it
        return [*META_COLUMNS, *fold, "n_frames", "waveform" if self.recompute else "logmel"]


def stored_feature_config(marker: dict[str, Any], uri: str) -> FeatureConfig:
    """The feature settings a feature set's ``_SUCCESS.json`` committed (``config.features``)."""
    section = None
    if isinstance(marker.get("config"), dict):
        section = marker["config"].get("features")
    if section is None:
        section = marker.get("features")
    if not isinstance(section, dict):
        raise StorageError(
            f"{uri}/{SUCCESS_MARKER} holds no 'config.features' section: these shards were not written by "
            "`lssed preprocess` / `lssed import-features`; rerun that stage"
        )
    return config_from_dict({"features": section}).features


def check_committed_rows(marker: dict[str, Any], shard_rows: int, marker_uri: str) -> None:
    """The shards must hold exactly the rows their ``_SUCCESS.json`` committed: fewer means files were
    lost or replaced after the commit, more means files from another run were added."""
    committed = (marker.get("counts") or {}).get("rows_out")
    if committed is not None and int(committed) != shard_rows:
        raise StorageError(
            f"{marker_uri} commits {committed} shard rows but the shards hold {shard_rows}: the feature set "
            "changed after it was written; rerun `lssed preprocess --force` (or restore the shards)"
        )


def feature_config_differs(a: FeatureConfig, b: FeatureConfig) -> bool:
    return config_to_dict(a) != config_to_dict(b)


def describe_features(cfg: Config, features_uri: str, *, for_training: bool = True) -> FeatureSource:
    """Read ``_SUCCESS.json`` and the shards' label columns; validate before any Ray work.

    ``for_training``: the splits must hold train and val rows, label4 must fit
    ``train.num_classes``, and train/val/test must be speaker-disjoint; an evaluation-only
    read (``lssed evaluate``) checks none of that.
    """
    import pyarrow.dataset as pads

    storage = storage_from_config(cfg.storage, features_uri)
    if not storage.exists(SUCCESS_MARKER):
        raise StorageError(
            f"{features_uri} has no {SUCCESS_MARKER}: pass the directory `lssed preprocess` printed "
            "(<out>/features/<digest>) and make sure that stage finished"
        )
    marker = storage.read_json(SUCCESS_MARKER)
    stored = stored_feature_config(marker, features_uri)
    wanted = cfg.features
    recompute = feature_config_differs(stored, wanted)
    shards_path = storage.path("shards")
    fs = storage.filesystem
    try:
        dataset = pads.dataset(shards_path, filesystem=fs, format="parquet")
        have = set(dataset.schema.names)
        meta = dataset.to_table(columns=["corpus", "label4", "split", *(c for c in ("speaker", "fold") if c in have)])
    except (FileNotFoundError, pa.ArrowInvalid, OSError) as exc:
        raise StorageError(f"cannot read the shards under {storage.join_uri('shards')}: {exc}") from exc
    check_committed_rows(marker, meta.num_rows, storage.join_uri(SUCCESS_MARKER))
    if meta.num_rows == 0:
        raise ValueError(f"{features_uri} has no shard rows: the preprocess stage produced nothing to train on")
    label4 = meta.column("label4").to_numpy(zero_copy_only=False)
    fold_column = meta.column("fold").to_pylist() if "fold" in meta.column_names else None
    folds = fold_count(fold_column)
    split = row_splits(meta.column("split").to_pylist(), fold_column, cfg.train.fold, folds, features_uri)
    corpus = np.asarray(meta.column("corpus").to_pylist(), dtype=object)
    labelled = ~np.isnan(label4.astype(np.float64))
    num_classes = cfg.train.num_classes
    split_counts = {s: int(np.sum(labelled & (split == s))) for s in ("train", "val", "test")}
    train_rows = labelled & (split == "train")
    counts = np.bincount(label4[train_rows].astype(np.int64), minlength=num_classes)
    if for_training:
        _check_speaker_disjoint(meta, labelled, split, features_uri, leaky=cfg.corpus.split == "utterance")
    if for_training and (split_counts["train"] == 0 or split_counts["val"] == 0):
        raise ValueError(
            f"{features_uri}: the shards have {split_counts} labelled rows per split; training needs "
            "train and val rows (the corpora stage assigns them: check corpus.split / val_fraction)"
        )
    if for_training and len(counts) > num_classes:
        raise ValueError(f"label4 holds indices >= train.num_classes={num_classes}; fix the manifest's label4")
    if recompute:
        schema_names = dataset.schema.names
        if "waveform" not in schema_names:
            raise ConfigError(
                f"features.* differ from the shards' ({config_to_dict(stored)}) but the shards hold no "
                "waveform; set the features.* keys to the stored values or rerun `lssed preprocess`"
            )
        nulls = dataset.to_table(columns=["waveform"]).column("waveform").null_count
        if nulls:
            raise ConfigError(
                f"features.* differ from the shards' ({config_to_dict(stored)}) but {nulls} rows have no "
                "waveform (imported features); use the stored feature settings for these shards"
            )
        log.info("features differ from the stored ones: log-mel is computed from the waveform on the worker")
    return FeatureSource(
        uri=features_uri,
        digest=str(marker.get("digest") or storage.root.rstrip("/").rsplit("/", 1)[-1]),
        shards_path=shards_path,
        stored_features=config_to_dict(stored),
        features=config_to_dict(wanted),
        recompute=recompute,
        n_mels=int(wanted.n_mels if recompute else stored.n_mels),
        split_counts=split_counts,
        class_counts=tuple(int(c) for c in counts[:num_classes]),
        train_corpora=tuple(sorted({str(c) for c in corpus[train_rows]})),
        rows_total=int(meta.num_rows),
        rows_unlabelled=int(np.sum(~labelled)),
        shards_bytes=int(sum(info.size or 0 for info in fs.get_file_info(list(dataset.files)))),
        shard_files=len(dataset.files),
        storage=storage,
        fold=cfg.train.fold,
        folds=folds,
    )


# --------------------------------------------------------------------------- splits (one place)


def fold_count(fold_column: Sequence[int | None] | None) -> int | None:
    """k of a k-fold feature set (folds 0..k-1 in the ``fold`` column); None without fold values."""
    values = [f for f in (fold_column or ()) if f is not None]
    return int(max(values)) + 1 if values else None


def row_splits(split_column: Sequence[str | None], fold_column: Sequence[int | None] | None, fold: int | None,
               folds: int | None, features_uri: str = "") -> np.ndarray:
    """Each row's split part: the stored ``split``, or with ``fold`` = f the k-fold protocol.

    Fold f is the test set, fold (f+1) mod k validation, the rest training (rows without a
    fold belong to none). Old shards without a ``fold`` column work with ``fold`` None.
    """
    if fold is None:
        return np.asarray(split_column, dtype=object)
    if folds is None:
        raise ConfigError(
            f"train.fold={fold} but {features_uri or 'the shards'} hold no folds (no `fold` values): prepare "
            "the corpus with corpus.split=folds, or leave train.fold unset to use the stored split"
        )
    if not 0 <= fold < folds:
        raise ConfigError(f"train.fold={fold} is outside the {folds} folds (0..{folds - 1}) of "
                          f"{features_uri or 'the shards'}")
    out = np.full(len(fold_column or ()), None, dtype=object)
    for i, f in enumerate(fold_column or ()):
        if f is not None:
            out[i] = "test" if f == fold else "val" if f == (fold + 1) % folds else "train"
    return out


def _check_speaker_disjoint(meta: pa.Table, labelled: np.ndarray, split: np.ndarray, features_uri: str, *,
                            leaky: bool = False) -> None:
    """The splits a run trains, selects and tests on share no speaker (before any Ray work).

    ``leaky``: the user chose ``corpus.split=utterance`` (the workflow's corpus section, or
    ``--set corpus.split=utterance`` for ``lssed train``), which leaks speakers by design
    (docs/corpora.md): only warned about.
    """
    if "speaker" not in meta.column_names:
        return
    if leaky:
        log.warning("%s: corpus.split=utterance: train, val and test may share speakers (a leaky protocol)",
                    features_uri)
        return
    from lssed.corpora.splits import assert_speaker_disjoint

    speakers = np.asarray(meta.column("speaker").to_pylist(), dtype=object)
    assert_speaker_disjoint(list(speakers[labelled]), list(split[labelled]), what=features_uri)


def _fold_parts(split: str, fold: int, folds: int) -> tuple[list[int], bool]:
    """The folds that make up ``split`` (and whether it is their complement: train)."""
    if split == "test":
        return [fold], False
    if split == "val":
        return [(fold + 1) % folds], False
    return [fold, (fold + 1) % folds], True


def split_filter(split: str, fold: int | None = None, folds: int | None = None) -> Any:
    """A pyarrow dataset filter: one split part's labelled rows (stored ``split`` or k-fold)."""
    import pyarrow.compute as pc

    labelled = pc.field("label4").is_valid()
    if fold is None or folds is None:
        return (pc.field("split") == split) & labelled
    parts, complement = _fold_parts(split, fold, folds)
    member = pc.field("fold").isin(parts)
    return (~member if complement else member) & pc.field("fold").is_valid() & labelled


def _ray_split_filter(split: str, fold: int | None, folds: int | None) -> Any:
    """:func:`split_filter` as a Ray Data expression."""
    from ray.data.expressions import col

    if fold is None or folds is None:
        return (col("split") == split) & col("label4").is_not_null()
    parts, complement = _fold_parts(split, fold, folds)
    if complement:
        member = (col("fold") != parts[0]) & (col("fold") != parts[1])
    else:
        member = col("fold") == parts[0]
    return member & col("fold").is_not_null() & col("label4").is_not_null()


def _named_split(table: pa.Table, split: str, fold: int | None) -> pa.Table:
    """With k-fold splits the stored ``split`` column is fold 0's: name the rows' real part."""
    if fold is None or "split" not in table.column_names:
        return table
    idx = table.column_names.index("split")
    return table.set_column(idx, table.schema.field(idx), pa.array([split] * table.num_rows, pa.string()))


def split_datasets(source: FeatureSource, splits: Sequence[str] = ("train", "val", "test")) -> dict[str, Any]:
    """One Ray Dataset per split: the labelled rows of that split, only the needed columns.

    Read with Ray Data's file-based Parquet reader, one block per shard file. Ray 2.60's
    default (``DataContext.use_datasource_v2``) starts a pool of up to 32 footer-reading
    actors for every execution, and a streamed train split is executed once per epoch: on
    a 2-core node that stalled every epoch 6-10 s before its first batch (benchmarks/
    train_ray.py: 162 samples/s; this reader: see docs/performance.md). Shards are sized by
    ``preprocess.rows_per_shard``, so one block per file needs no further splitting.
    """
    import ray.data

    out = {}
    with _file_based_parquet_reader():
        for name in splits:
            ds = ray.data.read_parquet(source.shards_path, filesystem=source.storage.filesystem,
                                       columns=source.columns, override_num_blocks=max(1, source.shard_files))
            # Blocks in file order, also through materialize() (which otherwise keeps them in the
            # order read tasks finish): with the seeded local shuffle, a seed repeats a run.
            ds.context.execution_options.preserve_order = True
            out[name] = ds.filter(expr=_ray_split_filter(name, source.fold, source.folds))
    return out


@contextmanager
def _file_based_parquet_reader() -> Iterator[None]:
    """Plan ``read_parquet`` calls in this block with the V1 reader (see :func:`split_datasets`)."""
    import ray.data

    ctx = ray.data.DataContext.get_current()
    if not hasattr(ctx, "use_datasource_v2"):  # a Ray without the V2 reader
        yield
        return
    previous = ctx.use_datasource_v2
    ctx.use_datasource_v2 = False
    try:
        yield
    finally:
        ctx.use_datasource_v2 = previous


# --------------------------------------------------------------------------- pure collation


def _list_column(table: pa.Table, name: str) -> tuple[np.ndarray, np.ndarray]:
    """(values, offsets) of a list column, zero-copy where Arrow allows."""
    arr = table.column(name).combine_chunks()
    if isinstance(arr, pa.ChunkedArray):  # pragma: no cover - combine_chunks returns an Array
        arr = arr.chunk(0)
    if arr.null_count:
        raise ValueError(f"{arr.null_count} rows have a null {name!r}; the shards are incomplete")
    return arr.values.to_numpy(zero_copy_only=False), arr.offsets.to_numpy()


def crop_starts(utt_ids: Sequence[str], lengths: np.ndarray, crop: int, seed: int, epoch: int) -> np.ndarray:
    """Random-crop offsets from a hash of (seed, epoch, utt_id): order- and worker-independent."""
    room = np.maximum(np.asarray(lengths, dtype=np.int64) - crop + 1, 1)
    hashes = np.fromiter((zlib.crc32(f"{seed}:{epoch}:{u}".encode()) for u in utt_ids),
                         dtype=np.int64, count=len(utt_ids))
    return hashes % room


def silence_value(feature_cfg: dict[str, Any]) -> float:
    """The log-mel value of silence (what zero padding of the waveform gives)."""
    kind = feature_cfg.get("log", "log")
    if kind == "log":
        return float(np.log(np.float32(0.0) + np.float32(feature_cfg.get("log_offset", 1e-6))))
    if kind == "db":
        return -100.0
    return 0.0


def collate_logmel_crops(table: pa.Table, *, n_mels: int, crop_frames: int, seed: int, epoch: int,
                         pad_value: float) -> dict[str, np.ndarray]:
    """Rows with stored log-mels -> ``x`` (B, 1, n_mels, crop_frames) float32, ``y`` (B,) int64,
    ``lengths`` (B,) int64: the real frames of each crop (the rest is ``pad_value``), which the
    models keep out of their pooling (``model(x, lengths)``)."""
    values, offsets = _list_column(table, "logmel")
    n_frames = table.column("n_frames").to_numpy(zero_copy_only=False).astype(np.int64)
    utt = table.column("utt_id").to_pylist()
    starts = crop_starts(utt, n_frames, crop_frames, seed, epoch)
    x = np.full((len(utt), 1, n_mels, crop_frames), pad_value, dtype=np.float32)
    for i in range(len(utt)):
        t = int(n_frames[i])
        lo, hi = int(offsets[i]), int(offsets[i + 1])
        if hi - lo != n_mels * t:
            raise ValueError(
                f"utterance {utt[i]!r}: logmel has {hi - lo} values, expected n_mels*n_frames = "
                f"{n_mels}*{t}; the shards do not match features.n_mels={n_mels}"
            )
        mel = values[lo:hi].reshape(n_mels, t)
        s = int(starts[i])
        take = min(crop_frames, t)
        x[i, 0, :, :take] = mel[:, s:s + take]
    return {"x": x, "y": _labels(table), "lengths": np.minimum(n_frames, crop_frames)}


def crop_samples_for(crop_frames: int, hop_length: int) -> int:
    """Samples whose centred STFT gives exactly ``crop_frames`` frames."""
    return max(1, (crop_frames - 1) * hop_length)


def collate_wave_crops(table: pa.Table, *, crop_samples: int, seed: int, epoch: int,
                       hop_length: int | None = None) -> dict[str, np.ndarray]:
    """Rows with stored waveforms -> ``wave`` (B, crop_samples) float32 (zero padded), ``y``;
    with ``hop_length``, also ``lengths``: the log-mel frames of each crop's real samples
    (what the centred STFT gives an utterance of that many samples)."""
    values, offsets = _list_column(table, "waveform")
    lengths = np.diff(offsets).astype(np.int64)
    utt = table.column("utt_id").to_pylist()
    starts = crop_starts(utt, lengths, crop_samples, seed, epoch)
    wave = np.zeros((len(utt), crop_samples), dtype=np.float32)
    for i in range(len(utt)):
        lo = int(offsets[i]) + int(starts[i])
        take = min(crop_samples, int(lengths[i]))
        wave[i, :take] = values[lo:lo + take]
    wave /= PCM_SCALE
    out = {"wave": wave, "y": _labels(table)}
    if hop_length:
        frames = 1 + crop_samples // hop_length
        out["lengths"] = np.minimum(1 + np.minimum(lengths, crop_samples) // hop_length, frames)
    return out


def _labels(table: pa.Table) -> np.ndarray:
    col = table.column("label4")
    if col.null_count:
        raise ValueError("a training row has a null label4: filter the split to labelled rows first")
    return col.to_numpy(zero_copy_only=False).astype(np.int64)


def utterances(table: pa.Table, *, n_mels: int, recompute: bool, labelled: bool = True) -> Iterator[Utterance]:
    """Whole utterances for evaluation, one per row (``labelled=False``: label4 is not read and
    every label is -1, for passes that need no label, such as embeddings of any corpus)."""
    column = "waveform" if recompute else "logmel"
    values, offsets = _list_column(table, column)
    n_frames = table.column("n_frames").to_numpy(zero_copy_only=False).astype(np.int64)
    utt = table.column("utt_id").to_pylist()
    split = table.column("split").to_pylist()
    labels = _labels(table) if labelled else np.full(table.num_rows, -1, dtype=np.int64)
    for i in range(len(utt)):
        chunk = values[int(offsets[i]):int(offsets[i + 1])]
        if recompute:
            data = chunk.astype(np.float32) / PCM_SCALE
        else:
            if chunk.size != n_mels * int(n_frames[i]):
                raise ValueError(f"utterance {utt[i]!r}: logmel size {chunk.size} != {n_mels}*{n_frames[i]}")
            data = np.asarray(chunk, dtype=np.float32).reshape(n_mels, int(n_frames[i]))
        yield Utterance(utt[i], int(labels[i]), str(split[i]), data, recompute)


class TrainCollate(_CollateBase):  # type: ignore[misc,valid-type]
    """Ray Data collate (Arrow batch -> dict of tensors): crop or pad, stack, to tensor.

    Runs in Ray Data's prefetch threads on the training worker; the iterator moves the
    tensors to the worker's device.
    """

    def __init__(self, *, recompute: bool, n_mels: int, crop_frames: int, hop_length: int,
                 pad_value: float, seed: int, epoch: int) -> None:
        self.recompute = recompute
        self.n_mels = n_mels
        self.crop_frames = crop_frames
        self.crop_samples = crop_samples_for(crop_frames, hop_length)
        self.hop_length = hop_length
        self.pad_value = pad_value
        self.seed = seed
        self.epoch = epoch

    def __call__(self, batch: pa.Table) -> dict[str, Any]:
        import torch

        if self.recompute:
            arrays = collate_wave_crops(batch, crop_samples=self.crop_samples, seed=self.seed, epoch=self.epoch,
                                        hop_length=self.hop_length)
        else:
            arrays = collate_logmel_crops(batch, n_mels=self.n_mels, crop_frames=self.crop_frames,
                                          seed=self.seed, epoch=self.epoch, pad_value=self.pad_value)
        return {k: torch.from_numpy(v) for k, v in arrays.items()}


def shard_tables(source: FeatureSource, split: str, columns: Sequence[str] | None = None) -> pa.Table:
    """One split's labelled rows read with plain pyarrow, sorted by utt_id (tests, local evaluation)."""
    import pyarrow.dataset as pads

    dataset = pads.dataset(source.shards_path, filesystem=source.storage.filesystem, format="parquet")
    table = dataset.to_table(columns=list(columns or source.columns),
                             filter=split_filter(split, source.fold, source.folds))
    return _named_split(table, split, source.fold).sort_by("utt_id")


def iter_split_batches(storage: Storage, split: str, columns: Sequence[str], batch_size: int, *,
                       fold: int | None = None, folds: int | None = None) -> Iterator[pa.Table]:
    """Stream one split's labelled rows from ``<features>/shards`` with pyarrow (rank 0's evaluation).

    Evaluation sets are read whole by one process, so plain pyarrow streaming is enough and
    saves a Ray Data execution per epoch.
    """
    import pyarrow.dataset as pads

    dataset = pads.dataset(storage.path("shards"), filesystem=storage.filesystem, format="parquet")
    scanner = dataset.scanner(columns=list(columns), filter=split_filter(split, fold, folds), batch_size=batch_size)
    for batch in scanner.to_batches():
        if batch.num_rows:
            yield _named_split(pa.Table.from_batches([batch]), split, fold)
