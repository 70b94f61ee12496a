"""From speech regions to the windows the model sees, and given segments from a CSV.

A region longer than the window is cut into windows of exactly the window's length, spread
evenly from its start to its end so that neighbours overlap by at least
``predict.overlap_s`` (no short tail window that the model would see with little context).
A region shorter than ``predict.min_segment_s`` is kept as one window and flagged
``short``: its label is less reliable, but dropping it would hide that speech was there.
"""

from __future__ import annotations

import csv
import io
import math
import posixpath
from dataclasses import dataclass
from typing import Any, Iterable

from lssed.config import PredictConfig
from lssed.errors import UserError

SHORT = "short"  # flag: the region is shorter than predict.min_segment_s
SEGMENT_COLUMNS = ("path", "start", "end")


@dataclass(frozen=True)
class Window:
    """A span of a media file the model labels; ``region``: index of its speech region."""

    start_s: float
    end_s: float
    region: int
    flags: tuple[str, ...] = ()

    @property
    def duration_s(self) -> float:
        return self.end_s - self.start_s


def window_length(cfg: PredictConfig) -> float:
    """The window in seconds: ``predict.window_s`` (or max_segment_s) for fixed windows
    (``vad: none``), else ``predict.max_segment_s``."""
    if cfg.vad == "none" and cfg.window_s is not None:
        return float(cfg.window_s)
    return float(cfg.max_segment_s)


def plan_windows(regions: Iterable[tuple[float, float]], duration_s: float | None, cfg: PredictConfig) -> list[Window]:
    """Windows over ``regions`` (seconds; clipped to ``[0, duration_s]`` when it is known).

    With ``vad: none`` the region is the whole file, so this gives fixed windows of
    ``predict.window_s``. Empty regions (after clipping) are skipped; ``region`` numbers the
    regions as given.
    """
    length = window_length(cfg)
    overlap = float(cfg.overlap_s)
    if not (length > 0 and 0 <= overlap < length):
        raise ValueError(f"windows of {length:g} s with {overlap:g} s overlap never advance; "
                         "check predict.max_segment_s / predict.window_s and predict.overlap_s")
    windows: list[Window] = []
    for index, (start, end) in enumerate(regions):
        start, end = max(0.0, float(start)), float(end)
        if duration_s is not None:
            end = min(end, float(duration_s))
        if not end > start:
            continue
        span = end - start
        flags = (SHORT,) if span < cfg.min_segment_s else ()
        if span <= length:
            windows.append(Window(_t(start), _t(end), index, flags))
            continue
        # the fewest windows of `length` whose neighbours overlap by >= overlap, spread evenly
        n = 1 + math.ceil((span - length) / (length - overlap) - 1e-9)
        step = (span - length) / (n - 1)
        for k in range(n):
            s = start + k * step
            windows.append(Window(_t(s), _t(min(s + length, end)), index, flags))
    return windows


def _t(x: float) -> float:
    return round(float(x), 4)  # 0.1 ms: stable CSVs without float noise


# --------------------------------------------------------------------------- given segments


def read_segments_csv(uri: str, storage: Any | None = None) -> dict[str, list[tuple[float, float]]]:
    """Segments per media from a CSV with columns ``path,start,end`` (seconds; more columns
    are ignored), local or ``s3://``. Relative paths are taken against the CSV's folder.
    Each media's segments are sorted by start. Raises :class:`UserError` naming the bad row.
    """
    from lssed.storage import StorageError, storage_from_config

    store = storage_from_config(storage, uri)
    try:
        text = store.read_bytes().decode("utf-8-sig")
    except FileNotFoundError as exc:
        raise UserError(f"segments CSV {uri} does not exist") from exc
    except (OSError, StorageError) as exc:
        raise UserError(f"cannot read the segments CSV {uri}: {exc}") from exc
    except UnicodeDecodeError as exc:
        raise UserError(f"segments CSV {uri} is not UTF-8 text: {exc}") from exc
    reader = csv.DictReader(io.StringIO(text))
    header = [h.strip() for h in (reader.fieldnames or [])]
    missing = [c for c in SEGMENT_COLUMNS if c not in header]
    if missing:
        raise UserError(f"segments CSV {uri} lacks column(s) {missing}: it needs a header with "
                        f"{','.join(SEGMENT_COLUMNS)} (times in seconds), found {header}")
    folder = _folder(uri, store.is_s3)
    out: dict[str, list[tuple[float, float]]] = {}
    for line, row in enumerate(reader, start=2):
        row = {(k or "").strip(): (v or "").strip() for k, v in row.items()}
        path = row["path"]
        try:
            start, end = float(row["start"]), float(row["end"])
        except ValueError:
            raise UserError(f"segments CSV {uri} line {line}: start and end must be numbers of seconds, got "
                            f"{row['start']!r}, {row['end']!r}") from None
        if not path:
            raise UserError(f"segments CSV {uri} line {line}: empty path")
        if not (math.isfinite(start) and math.isfinite(end) and 0 <= start < end):
            raise UserError(f"segments CSV {uri} line {line}: need 0 <= start < end, got {start:g}, {end:g}")
        out.setdefault(_resolve(path, folder), []).append((start, end))
    return {media: sorted(spans) for media, spans in out.items()}


def _folder(uri: str, is_s3: bool) -> str:
    if is_s3:
        return uri.rsplit("/", 1)[0]
    import os
    from urllib.parse import urlparse

    parsed = urlparse(uri)
    path = parsed.path if parsed.scheme == "file" else uri
    return os.path.dirname(os.path.abspath(os.path.expanduser(path)))


def _resolve(path: str, folder: str) -> str:
    """``path`` as written when it is a URI or absolute, else below the CSV's ``folder``."""
    if "://" in path or path.startswith("/"):
        return path
    if "://" in folder:
        scheme, rest = folder.split("://", 1)
        return f"{scheme}://" + posixpath.normpath(posixpath.join(rest, path))
    import os

    return os.path.normpath(os.path.join(folder, path))
