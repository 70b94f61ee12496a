"""Corpus adapters: a corpus's own layout -> a manifest of utterances (``MANIFEST_SCHEMA``).

``prepare(name, root)`` reads a corpus, rejects the rows it cannot use (with the reason),
and assigns train/val/test: speaker-independent and label-stratified (``split="speaker"``,
the default) or the corpus's own split (``split="official"``). ``write_manifest`` writes the
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

from lssed.corpora.base import REJECT_CODES, CorpusError, PreparedCorpus, RowCollector
from lssed.corpora.splits import official_split, speaker_groups, speaker_split

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
    "ADAPTERS", "REJECT_CODES", "CorpusError", "PreparedCorpus", "list_corpora", "prepare", "read_manifest",
    "reject_summary", "write_manifest",
]


def list_corpora() -> list[str]:
    return list(ADAPTERS)


def prepare(
    name: str,
    root: str | os.PathLike[str],
    *,
    strict: bool = False,
    split: str = "speaker",
    seed: int = 0,
    val_fraction: float = 0.15,
    test_fraction: float = 0.2,
    encoding: str = "auto",
    allow_outside_root: bool = False,
    **options: Any,
) -> PreparedCorpus:
    """Read corpus ``name`` at ``root`` into a manifest with splits, plus its rejects.

    ``strict``: raise :class:`CorpusError` on the first unusable row instead of rejecting it.
    ``encoding`` (``auto``: UTF-8, else Windows-1252 with a warning) and ``allow_outside_root``
    (media paths may leave the CSV's folder) apply to the generic/demo CSV. ``options`` go to
    the adapter (e.g. ``test_session=5`` for IEMOCAP). When every row is rejected the
    manifest is empty (logged as a warning) and the rejects say why.
    """
    if name not in ADAPTERS:
        raise CorpusError(f"unknown corpus {name!r}; choose one of {list(ADAPTERS)}")
    if split not in ("speaker", "official"):
        raise CorpusError(f"split must be 'speaker' or 'official', got {split!r}")
    if name in _LISTING_ADAPTERS:
        options = {"encoding": encoding, "allow_outside_root": allow_outside_root, **options}
    elif encoding != "auto" or allow_outside_root:
        raise CorpusError(f"{name}: encoding and allow_outside_root apply to the {'/'.join(_LISTING_ADAPTERS)} "
                          f"CSV only; {name} finds its media under its root itself")
    module_name, reader_name = ADAPTERS[name]
    reader = getattr(importlib.import_module(module_name), reader_name)
    root_path = Path(root).expanduser()
    if not root_path.exists():
        raise CorpusError(f"{name}: {root_path} does not exist")
    collector = RowCollector(corpus=name, strict=strict)
    reader(root_path, collector, **options)
    if collector.input_rows == 0:
        raise CorpusError(f"{name}: found no utterances under {root_path}; see docs/corpora.md for the expected layout")
    if not collector.rows:
        log.warning("%s: all %d rows were rejected; reasons: %s", name, collector.input_rows,
                    reject_summary(r["reason"] for r in collector.rejects))
        return PreparedCorpus(manifest=collector.manifest_table([]), rejects=collector.rejects_table(),
                              input_rows=collector.input_rows, name=name, split_protocol=split)

    groups = speaker_groups([r["speaker"] for r in collector.rows], [r["session"] for r in collector.rows],
                            [r["utt_id"] for r in collector.rows])
    labels = [r["label"] for r in collector.rows]
    try:
        if split == "official":
            if all(o is None for o in collector.official):
                raise CorpusError(f"{name}: this corpus has no official split here; use split='speaker'")
            splits = official_split(collector.official, groups, labels, seed=seed, val_fraction=val_fraction)
        else:
            splits = speaker_split(groups, labels, seed=seed, val_fraction=val_fraction, test_fraction=test_fraction)
    except CorpusError:
        raise
    except ValueError as exc:  # too few speakers, bad fractions, rows without an official split
        raise CorpusError(f"{name}: {exc}") from None
    prepared = PreparedCorpus(
        manifest=collector.manifest_table(splits), rejects=collector.rejects_table(),
        input_rows=collector.input_rows, name=name, split_protocol=split,
    )
    log.info("%s: %d utterances kept, %d rejected, splits %s", name, prepared.manifest.num_rows,
             prepared.rejects.num_rows, prepared.split_counts())
    return prepared


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
    """Read a manifest and check it has the manifest schema's columns."""
    from lssed.schema import MANIFEST_SCHEMA

    table = pq.read_table(path)
    missing = [n for n in MANIFEST_SCHEMA.names if n not in table.column_names]
    if missing:
        raise CorpusError(f"{path} is not a manifest: it lacks column(s) {missing} (write it with `lssed prepare`)")
    return table.select(MANIFEST_SCHEMA.names).cast(MANIFEST_SCHEMA)
