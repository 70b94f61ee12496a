"""What `lssed predict INPUT...` means: a sorted list of media, each with its given segments or none.

An INPUT is a media file, a folder (every file below it whose suffix is in
``predict.extensions``, recursively), or a CSV of segments (``path,start,end``; relative paths
against the CSV's folder), local or ``s3://``. ``--segments CSV`` adds a segments CSV too.
Media named in a segments CSV are cut at those segments; all other media are segmented by
voice activity detection (or fixed windows). A folder on S3 costs one listing.

Missing inputs are usage errors (nothing runs); a file that exists but does not decode is
the pipeline's business (it is quarantined, the rest goes on).
"""

from __future__ import annotations

import logging
import os
import posixpath
from dataclasses import dataclass
from typing import Any, Sequence

from lssed.errors import InputNotFoundError, UserError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class MediaInput:
    """One media file to predict on; ``segments`` None means: find the speech (``predict.vad``)."""

    uri: str
    segments: tuple[tuple[float, float], ...] | None = None


def normalise_uri(uri: str) -> str:
    """s3:// URIs as given (s3a:// as s3://); local paths absolute, so that names from a CSV and an INPUT meet."""
    if uri.startswith("s3a://"):
        uri = "s3://" + uri[len("s3a://"):]
    if uri.startswith("s3://"):
        return uri
    if uri.startswith("file://"):
        uri = uri[len("file://"):]
    return os.path.abspath(os.path.expanduser(uri))


def is_segments_csv(uri: str) -> bool:
    return uri.lower().endswith(".csv")


def _kind(storage: Any) -> str:
    import pyarrow.fs as pafs

    info = storage.filesystem.get_file_info(storage.root)
    if info.type == pafs.FileType.File:
        return "file"
    if info.type == pafs.FileType.Directory:
        return "dir"
    if storage.is_s3 and storage.file_sizes():  # a prefix with objects below it (S3 has no folders)
        return "dir"
    return "missing"


def list_media(storage: Any, extensions: Sequence[str]) -> list[str]:
    """Media files below a folder or prefix (one listing), by suffix (case-insensitive), sorted."""
    wanted = tuple(e.lower() for e in extensions)
    found = []
    for uri in storage.file_sizes(recursive=True):
        name = posixpath.basename(uri)
        if name.startswith(".") or not name.lower().endswith(wanted):
            continue  # hidden files: partial uploads, editor and OS droppings
        found.append(uri)
    return sorted(found)


def expand_inputs(inputs: Sequence[str], *, segments_csv: str | None = None, storage_cfg: Any = None,
                  extensions: Sequence[str] = ()) -> list[MediaInput]:
    """The media that ``inputs`` (and ``segments_csv``) name, each once, sorted by URI.

    Raises :class:`~lssed.errors.InputNotFoundError` for an input that does not exist and
    :class:`~lssed.errors.UserError` when nothing is left to predict on.
    """
    from lssed.predict.segments import read_segments_csv
    from lssed.storage import storage_from_config

    media: set[str] = set()
    segments: dict[str, list[tuple[float, float]]] = {}
    csvs = [u for u in inputs if is_segments_csv(u)] + ([segments_csv] if segments_csv else [])
    for csv in csvs:
        st = storage_from_config(storage_cfg, normalise_uri(csv))
        if _kind(st) != "file":
            raise InputNotFoundError(f"segments CSV {csv} does not exist")
        for uri, spans in read_segments_csv(st.uri, storage=st).items():
            segments.setdefault(normalise_uri(uri), []).extend((float(s), float(e)) for s, e in spans)
    for item in inputs:
        if is_segments_csv(item):
            continue
        st = storage_from_config(storage_cfg, normalise_uri(item))
        kind = _kind(st)
        if kind == "missing":
            raise InputNotFoundError(f"input {item} does not exist (give media files, folders or a segments CSV, "
                                     "local or s3://BUCKET/KEY)")
        if kind == "file":
            media.add(st.uri)
            continue
        found = list_media(st, extensions)
        if not found:
            log.warning("%s holds no media files with suffixes %s (predict.extensions)", item, ", ".join(extensions))
        media.update(found)
    media.update(segments)
    if not media:
        raise UserError("no media to predict on: the inputs hold no media files (see predict.extensions) and "
                        "no segments CSV names any")
    out = [MediaInput(uri, tuple(sorted(segments[uri])) if uri in segments else None) for uri in sorted(media)]
    given = sum(m.segments is not None for m in out)
    if csvs and given < len(out):
        log.info("%d media have segments from the CSV; %d others are segmented by voice activity detection",
                 given, len(out) - given)
    return out
