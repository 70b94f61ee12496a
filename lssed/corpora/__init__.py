"""Corpus adapters: a corpus's own layout -> a manifest of utterances (``MANIFEST_SCHEMA``).

``prepare(name, root)`` reads a corpus, rejects the rows it cannot use (with the reason),
and assigns train/val/test: speaker-independent and label-stratified (``split="speaker"``,
the default), the corpus's own split (``split="official"``), k speaker-group folds
(``split="folds"``) or, leaky, per utterance (``split="utterance"``). ``write_manifest`` writes the
manifest and ``<stem>.rejects.parquet`` beside it (always, even when one of them is empty).
Adapters: generic (a CSV; ``demo`` is the same layout named ``demo``), iemocap, meld,
ravdess, cremad, daicwoz; see docs/corpora.md.
"""

from __future__ import annotations

import importlib
import logging
import os
from collections import Counter
from pathlib import Path
from typing import Any, Iterable

import pyarrow as pa
import pyarrow.parquet as pq

from lssed.corpora.base import (
    REJECT_CODES, CorpusError, MediaIndex, PreparedCorpus, RowCollector, is_object_uri, storage_lister,
)
from lssed.corpora.splits import (
    assert_speaker_disjoint, fold_split, official_split, speaker_split, speakers_overlap, split_of_fold,
)
from lssed.errors import UserError

log = logging.getLogger(__name__)

# corpus name -> (module, reader function); every module has an "About" docstring
ADAPTERS: dict[str, tuple[str, str]] = {
    "generic": ("lssed.corpora.generic", "read_generic"),
    "demo": ("lssed.corpora.generic", "read_generic"),
    "iemocap": ("lssed.corpora.iemocap", "read_iemocap"),
    "meld": ("lssed.corpora.meld", "read_meld"),
    "ravdess": ("lssed.corpora.ravdess", "read_ravdess"),
    "cremad": ("lssed.corpora.cremad", "read_cremad"),
    "daicwoz": ("lssed.corpora.daicwoz", "read_daicwoz"),
}
# Adapters that read a listing of media paths (and so take ``encoding`` and ``allow_outside_root``)
_LISTING_ADAPTERS = ("generic", "demo")

__all__ = [
    "ADAPTERS", "REJECT_CODES", "SPLIT_PROTOCOLS", "CorpusError", "PreparedCorpus", "list_corpora",
    "default_split", "merge_excited_default", "prepare", "prepare_config", "read_manifest", "reject_summary", "write_manifest",
]


def list_corpora() -> list[str]:
    return list(ADAPTERS)


# The split protocols (corpus.split); "utterance" is leaky (a speaker's rows land in several parts).
SPLIT_PROTOCOLS: tuple[str, ...] = ("speaker", "utterance", "official", "folds")


def merge_excited_default(name: str) -> bool:
    """The corpus's own 4-class convention: does ``excited`` count as happy? (IEMOCAP: yes.)"""
    if name not in ADAPTERS:
        return False
    return bool(getattr(importlib.import_module(ADAPTERS[name][0]), "MERGE_EXCITED", False))


def default_split(name: str) -> str:
    """The split protocol a corpus uses when ``corpus.split`` is unset: its adapter's
    ``DEFAULT_SPLIT`` (DAIC-WOZ: ``official``), else ``speaker``."""
    if name not in ADAPTERS:
        return "speaker"
    return str(getattr(importlib.import_module(ADAPTERS[name][0]), "DEFAULT_SPLIT", "speaker"))


def prepare(
    name: str,
    root: str | os.PathLike[str],
    *,
    strict: bool = False,
    split: str | None = None,
    seed: int = 0,
    val_fraction: float = 0.15,
    test_fraction: float = 0.2,
    folds: int = 5,
    merge_excited: bool | None = None,
    corpus_id: str | None = None,
    encoding: str = "auto",
    allow_outside_root: bool = False,
    storage: Any = None,
    **options: Any,
) -> PreparedCorpus:
    """Read corpus ``name`` at ``root`` into a manifest with splits, plus its rejects.

    ``split``: None = the corpus's default (``official`` for DAIC-WOZ, else ``speaker``),
    ``speaker`` (speaker-group, label-stratified; IEMOCAP by session so both
    partners of a dialogue stay together), ``utterance`` (rows alone: leaks speakers),
    ``official`` (the corpus's own partition; val carved from train by speaker when it has
    none) or ``folds`` (``folds`` speaker-group folds in the ``fold`` column, IEMOCAP's
    sessions; ``split`` is fold 0's). Every protocol but ``utterance`` rejects rows without a
    speaker (``no_speaker``) and, except MELD's official one, is checked speaker-disjoint.
    ``merge_excited``: None = the corpus's convention (:func:`merge_excited_default`).
    ``corpus_id``: the manifest's ``corpus`` value (default ``name``), e.g. to tell two
    generic corpora apart. ``strict``: raise :class:`CorpusError` on the first unusable row
    instead of rejecting it. ``encoding`` (``auto``: UTF-8, else Windows-1252 with a warning)
    and ``allow_outside_root`` (media paths may leave the CSV's folder) apply to the
    generic/demo CSV. ``root`` may be an ``s3://`` URI for generic/demo (the CSV in a bucket;
    relative media paths name objects below its prefix), and any generic CSV may name
    ``s3://`` media; ``storage`` (a :class:`lssed.storage.Storage` or ``StorageConfig``; None:
    the defaults and AWS_ENDPOINT_URL) says how to reach them. ``options`` go to the adapter
    (e.g. ``test_session=5`` for IEMOCAP).
    When every row is rejected the manifest is empty (logged as a warning) and the rejects
    say why.
    """
    if name not in ADAPTERS:
        raise CorpusError(f"unknown corpus {name!r}; choose one of {list(ADAPTERS)}")
    if split is None:
        split = default_split(name)
    if split not in SPLIT_PROTOCOLS:
        raise CorpusError(f"split must be one of {list(SPLIT_PROTOCOLS)}, got {split!r}")
    if name in _LISTING_ADAPTERS:
        options = {"encoding": encoding, "allow_outside_root": allow_outside_root, **options}
    elif encoding != "auto" or allow_outside_root:
        raise CorpusError(f"{name}: encoding and allow_outside_root apply to the {'/'.join(_LISTING_ADAPTERS)} "
                          f"CSV only; {name} finds its media under its root itself")
    module_name, reader_name = ADAPTERS[name]
    module = importlib.import_module(module_name)
    reader = getattr(module, reader_name)
    root_path: str | Path
    if is_object_uri(os.fspath(root)):
        if name not in _LISTING_ADAPTERS:
            raise CorpusError(f"{name}: reads its corpus from a local directory, not {os.fspath(root)}; copy or mount "
                              f"it on every node (only {'/'.join(_LISTING_ADAPTERS)} read a CSV in object storage)")
        root_path = os.fspath(root)
        options = {"storage": storage, **options}
    else:
        root_path = Path(root).expanduser()
        if not root_path.exists():
            raise CorpusError(f"{name}: {root_path} does not exist")
    label = corpus_id or name
    merge = merge_excited_default(name) if merge_excited is None else bool(merge_excited)
    collector = RowCollector(corpus=label, strict=strict, merge_excited=merge, require_speaker=split != "utterance",
                             media_index=MediaIndex(storage_lister(storage)))
    reader(root_path, collector, **options)
    if collector.input_rows == 0:
        raise CorpusError(f"{name}: found no utterances under {root_path}; see docs/corpora.md for the expected layout")
    if not collector.rows:
        log.warning("%s: all %d rows were rejected; reasons: %s", label, collector.input_rows,
                    reject_summary(r["reason"] for r in collector.rejects))
        return PreparedCorpus(manifest=collector.manifest_table([]), rejects=collector.rejects_table(),
                              input_rows=collector.input_rows, name=label, split_protocol=split)

    # The unit a split keeps whole: the speaker, or the adapter's own (IEMOCAP: the session,
    # so both dialogue partners stay on one side); the utterance split: each row alone.
    group_by = "utt_id" if split == "utterance" else getattr(module, "SPLIT_GROUP", "speaker")
    groups = [f"{group_by}:{r[group_by]}" for r in collector.rows]
    labels = [r["label"] for r in collector.rows]
    fold_of: list[int] | None = None
    try:
        if split == "official":
            if all(o is None for o in collector.official):
                raise CorpusError(f"{name}: this corpus has no official split here; use split='speaker' or 'folds'")
            splits = official_split(collector.official, groups, labels, seed=seed, val_fraction=val_fraction)
        elif split == "folds":
            fixed = bool(getattr(module, "FOLDS_ARE_GROUPS", False))
            if fixed and folds != len(set(groups)):
                log.warning("%s: its folds are its %d %ss (leave one out), not corpus.folds=%d", label,
                            len(set(groups)), group_by, folds)
                folds = len(set(groups))
            fold_of = fold_split(groups, labels, folds=folds, seed=seed, fixed=fixed)
            splits = [split_of_fold(f, 0, folds) for f in fold_of]
        else:
            if split == "utterance":
                log.warning("%s: utterance split: a speaker's utterances land in train and test alike, so the "
                            "scores are not speaker-independent (use split=speaker for a fair protocol)", label)
            splits = speaker_split(groups, labels, seed=seed, val_fraction=val_fraction, test_fraction=test_fraction)
    except CorpusError:
        raise
    except ValueError as exc:  # too few speakers, bad fractions, rows without an official split
        raise CorpusError(f"{name}: {exc}") from None
    speakers = [r["speaker"] for r in collector.rows]
    if split == "utterance" or (split == "official" and not getattr(module, "OFFICIAL_SPEAKER_DISJOINT", True)):
        overlap = speakers_overlap(speakers, splits)
        if overlap:
            log.warning("%s: %d speakers are in more than one part of the %s split (not speaker-independent)",
                        label, len(overlap), split)
    else:
        try:
            assert_speaker_disjoint(speakers, splits, what=f"{label} ({split} split)")
            if fold_of is not None:
                assert_speaker_disjoint(speakers, [str(f) for f in fold_of], what=f"{label} (folds)")
        except UserError as exc:
            raise CorpusError(str(exc)) from None
    prepared = PreparedCorpus(
        manifest=collector.manifest_table(splits, fold_of), rejects=collector.rejects_table(),
        input_rows=collector.input_rows, name=label, split_protocol=split,
    )
    log.info("%s: %d utterances kept, %d rejected, splits %s", label, prepared.manifest.num_rows,
             prepared.rejects.num_rows, prepared.split_counts())
    return prepared


def prepare_config(corpus: Any, root: str | os.PathLike[str] | None = None, *, storage: Any = None,
                   **options: Any) -> PreparedCorpus:
    """:func:`prepare` with the settings of a ``CorpusConfig`` (``root`` overrides ``corpus.root``);
    ``storage`` reaches an ``s3://`` root or media (the config's ``storage`` section or a Storage)."""
    where = root if root is not None else corpus.root
    if where is None:
        raise CorpusError(f"corpus {corpus.name!r} needs corpus.root (its directory, or the CSV for 'generic')")
    if getattr(corpus, "max_segment_s", None) is not None:
        options = {"max_segment_s": corpus.max_segment_s, **options}
    return prepare(corpus.name, where, strict=corpus.strict, split=corpus.split, seed=corpus.seed,
                   val_fraction=corpus.val_fraction, test_fraction=corpus.test_fraction, folds=corpus.folds,
                   merge_excited=corpus.merge_excited, corpus_id=corpus.id, encoding=corpus.encoding,
                   allow_outside_root=corpus.allow_outside_root, storage=storage, **options)


def reject_summary(reasons: Iterable[str], top: int | None = None) -> str:
    """``"missing_media (3); bad_time (1)"``: the reject codes with their counts, most common first."""
    counts = Counter(r.split(":", 1)[0] for r in reasons)
    return "; ".join(f"{code} ({n})" for code, n in counts.most_common(top))


def rejects_path(manifest_path: str | os.PathLike[str]) -> Path:
    """``dir/NAME.parquet`` -> ``dir/NAME.rejects.parquet``."""
    p = Path(manifest_path)
    return p.with_name(f"{p.stem}.rejects.parquet")


def _write_atomic(table: pa.Table, path: Path) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    pq.write_table(table, tmp, compression="zstd")
    os.replace(tmp, path)


def write_manifest(prepared: PreparedCorpus, path: str | os.PathLike[str]) -> tuple[Path, Path]:
    """Write the manifest and ``<stem>.rejects.parquet`` beside it; returns both paths."""
    path = Path(path)
    if path.suffix != ".parquet":
        raise CorpusError(f"manifest path {path} must end in .parquet")
    path.parent.mkdir(parents=True, exist_ok=True)
    rej = rejects_path(path)
    _write_atomic(prepared.manifest, path)
    _write_atomic(prepared.rejects, rej)
    return path, rej


def read_manifest(path: str | os.PathLike[str]) -> pa.Table:
    """Read a manifest and check it has the manifest schema's columns (``fold`` and ``score``,
    added later, may be missing: they are then null)."""
    from lssed.schema import MANIFEST_SCHEMA

    table = pq.read_table(path)
    if "fold" not in table.column_names:  # manifests written before k-fold splits
        table = table.append_column("fold", pa.nulls(table.num_rows, pa.int8()))
    if "score" not in table.column_names:  # manifests written before numeric targets
        table = table.append_column("score", pa.nulls(table.num_rows, pa.float32()))
    missing = [n for n in MANIFEST_SCHEMA.names if n not in table.column_names]
    if missing:
        raise CorpusError(f"{path} is not a manifest: it lacks column(s) {missing} (write it with `lssed prepare`)")
    return table.select(MANIFEST_SCHEMA.names).cast(MANIFEST_SCHEMA)
