"""The generic CSV layout: any corpus described by one CSV file.

About
-----
Columns ``path,start,end,label,speaker,gender,age,session,text`` (header required; order
free). ``path`` is relative to the CSV's folder (the corpus root) or absolute; empty
``start``/``end`` mean the start / end of the file; times are seconds (``12.5``) or
``hh:mm:ss,ms``. ``label`` is an LSSED label name or a common spelling of one (``ang``,
``anger``, ``joy``, ``fearful`` ...; see ``lssed.corpora.base.LABEL_ALIASES``), or several
joined by ``;`` (a multi-label utterance, kept whole); other labels are rejected. The 4
benchmark classes are angry/neutral/happy/sad only (``excited`` is a label of its own, as in
LSSED, unless ``corpus.merge_excited``). ``gender`` is F/M (any usual spelling) or empty. Required columns: ``path``,
``label``, ``speaker``; an optional ``utt_id`` column names the rows, otherwise the id is
``<file stem>_<start in ms>`` (see :func:`lssed.corpora.base.time_key`). Official split: an
optional ``split`` column (train/val/test; with no val rows, val is carved from the training
speakers). The demo corpus is written in this layout
(corpus name ``demo``).

Reading is strict so that no row can vanish: the file is UTF-8 (a BOM is fine; otherwise
Windows-1252/Latin-1 is detected with a warning, or the encoding is named with ``encoding``);
every line is one record, parsed on its own, so an unbalanced quote costs that line (a
``bad_quoting`` reject with its line number) and never swallows the lines after it. Media
paths must stay inside the CSV's folder unless ``allow_outside_root``. docs/corpora.md has
the rules and the reject codes.
"""

from __future__ import annotations

import codecs
import csv
import hashlib
import logging
import os
import posixpath
import re
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path, PurePath
from typing import Any

from lssed.corpora.base import (
    MAX_FIELD_CHARS, CorpusError, RowCollector, is_object_uri, normalise_gender, normalise_label, parse_time, time_key,
    time_problem,
)

log = logging.getLogger(__name__)

COLUMNS = ("path", "start", "end", "label", "speaker", "gender", "age", "session", "text")
REQUIRED = ("path", "label", "speaker")
OPTIONAL = ("utt_id", "split")
# A corpus listing line longer than this is a runaway field (a transcript pasted whole, a
# broken export), not an utterance: it is rejected instead of read.
MAX_LINE_CHARS = 65536
# File system limits (Linux PATH_MAX / NAME_MAX): longer paths cannot name a file.
MAX_PATH_BYTES = 4096
MAX_NAME_BYTES = 255
# Free-text columns may be long; every other column is a name or a number.
_FREE_TEXT = ("path", "text")
# Line breaks as csv and editors count them (not str.splitlines', which also splits at
# form feeds, U+2028 and others that can sit inside a field).
_LINE_BREAK = re.compile(r"\r\n|\r|\n")
_UTF16_BOMS = (codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)


def decode_listing(data: bytes, name: str, encoding: str = "auto") -> str:
    """The text of a corpus listing; never with silent replacement characters.

    ``auto``: UTF-8 (with or without BOM), UTF-16 with a BOM, else Windows-1252 (a superset
    of Latin-1's printable characters) with a warning that names it; bytes that fit none of
    these raise :class:`CorpusError` naming the line and byte. Any other value is a Python
    codec name, decoded strictly.
    """
    if encoding != "auto":
        try:
            codecs.lookup(encoding)
        except LookupError:
            raise CorpusError(f"{name}: unknown encoding {encoding!r}; use auto, utf-8, cp1252, latin-1, ...") from None
        return _decode_strict(data, name, encoding, how="as asked")
    if data.startswith(codecs.BOM_UTF8):
        return _decode_strict(data[len(codecs.BOM_UTF8):], name, "utf-8", how="(it starts with a UTF-8 BOM)")
    if data.startswith(_UTF16_BOMS):
        return _decode_strict(data, name, "utf-16", how="(it starts with a UTF-16 BOM)")
    nul = data.find(b"\x00")
    if nul >= 0:
        raise CorpusError(f"{name}: byte {nul} (line {_line_of(data, nul)}) is a NUL: this is UTF-16 without "
                          "a byte-order mark or not a text file; save it as UTF-8")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        first_bad = exc.start
    try:
        text = data.decode("cp1252")
    except UnicodeDecodeError:
        raise CorpusError(
            f"{name}: not UTF-8 (byte 0x{data[first_bad]:02x} at offset {first_bad}, line "
            f"{_line_of(data, first_bad)}) and not Windows-1252 either; save it as UTF-8 or give its "
            "encoding (--encoding / corpus.encoding, e.g. latin-1)"
        ) from None
    log.warning("%s is not UTF-8 (byte 0x%02x at line %d): read as Windows-1252/Latin-1; give --encoding "
                "(corpus.encoding) or save it as UTF-8 if that is wrong", name, data[first_bad],
                _line_of(data, first_bad))
    return text


def _line_of(data: bytes, offset: int) -> int:
    return data.count(b"\n", 0, offset) + 1


def _decode_strict(data: bytes, name: str, encoding: str, how: str) -> str:
    try:
        return data.decode(encoding)
    except UnicodeDecodeError as exc:
        raise CorpusError(
            f"{name}: not valid {encoding} {how}: byte 0x{data[exc.start]:02x} at offset {exc.start}, line "
            f"{_line_of(data, exc.start)}; save it in one encoding or give --encoding (corpus.encoding)"
        ) from None


def _parse_line(line: str) -> list[str]:
    """One record's fields; csv.Error on quoting that leaves the fields ambiguous."""
    return next(csv.reader([line], strict=True), [])


@dataclass(frozen=True)
class _Row:
    """A parsed line that passed the layout checks; ``key`` identifies its segment."""

    line_no: int
    fields: dict[str, str]
    media: str  # a normalised local path or an object storage URI
    start: float | None
    end: float | None
    key: tuple[str, float | None, float | None]  # (path relative to the root, start, end)


def read_generic(
    csv_path: str | Path, collector: RowCollector, *, encoding: str = "auto", allow_outside_root: bool = False,
    storage: Any = None,
) -> None:
    """Read every data line of the CSV into ``collector`` (kept or rejected, each once).

    ``csv_path`` may be an ``s3://`` URI, read through ``storage`` (a Storage or StorageConfig
    giving the endpoint; None: the defaults and AWS_ENDPOINT_URL); its relative media paths
    then name objects below the CSV's prefix, which the collector lists once.
    """
    if is_object_uri(os.fspath(csv_path)):
        data, csv_name, roots = _read_object_csv(os.fspath(csv_path), storage)
        if collector.media_index is not None:
            collector.media_index.add_root(roots[0])
    else:
        data, csv_name, roots = _read_local_csv(Path(csv_path))
    _read_listing(data, csv_name, roots, collector, encoding, allow_outside_root)


def _read_local_csv(csv_path: Path) -> tuple[bytes, str, tuple[str, ...]]:
    if csv_path.is_dir():
        candidate = csv_path / "corpus.csv"
        if not candidate.is_file():
            raise CorpusError(f"generic corpus: {csv_path} is a directory; give the CSV file itself")
        csv_path = candidate
    if not csv_path.is_file():
        raise CorpusError(f"generic corpus: CSV {csv_path} does not exist")
    return csv_path.read_bytes(), str(csv_path), _roots(csv_path)


def _read_object_csv(uri: str, storage: Any) -> tuple[bytes, str, tuple[str, ...]]:
    import pyarrow.fs as pafs

    from lssed.storage import storage_from_config

    store = storage_from_config(storage, uri.rstrip("/"))
    try:
        kind = store.filesystem.get_file_info(store.root).type
        if kind == pafs.FileType.Directory:
            store = store.child("corpus.csv")
            kind = store.filesystem.get_file_info(store.root).type
        if kind != pafs.FileType.File:
            raise CorpusError(f"generic corpus: CSV {store.uri} does not exist (give the CSV object itself)")
        data = store.read_bytes()
    except OSError as exc:
        raise CorpusError(f"generic corpus: cannot read {store.uri} ({exc}); check the bucket, "
                          "storage.endpoint_url (or AWS_ENDPOINT_URL) and the credentials") from None
    return data, store.uri, (posixpath.dirname(store.uri),)


def _read_listing(data: bytes, csv_name: str, roots: tuple[str, ...], collector: RowCollector, encoding: str,
                  allow_outside_root: bool) -> None:
    csv_path = _Named(csv_name)
    text = decode_listing(data, f"generic corpus: {csv_path}", encoding)
    lines = _LINE_BREAK.split(text)
    header_at = next((i for i, line in enumerate(lines) if line.strip()), None)
    if header_at is None:
        raise CorpusError(f"generic corpus: {csv_path} is empty; it needs a header line {','.join(COLUMNS)}")
    header = _header(lines[header_at], csv_path, header_at + 1)

    parsed: list[_Row | tuple[int, str, str, str | None]] = []  # rows, or (line, code, detail, utt_id) rejects
    empty = 0
    for i in range(header_at + 1, len(lines)):
        line, line_no = lines[i], i + 1
        if not line.strip():
            continue  # blank lines are not records
        item = _parse(line, line_no, header, roots, allow_outside_root)
        if item is None:
            empty += 1
            continue
        parsed.append(item)
    if empty:
        log.info("generic corpus: %s: %d lines of empty fields skipped (no data in them)", csv_path.name, empty)

    ids = _auto_ids([p for p in parsed if isinstance(p, _Row)])
    for item in parsed:
        if isinstance(item, tuple):
            line_no, code, detail, utt_id = item
            collector.reject(utt_id, f"{csv_path.name}:{line_no}", code, detail)
        else:
            _add(collector, item, ids.get(item.line_no), f"{csv_path.name}:{item.line_no}")


@dataclass(frozen=True)
class _Named:
    """A CSV's location as messages name it: the path or URI, and ``.name`` its last part."""

    where: str

    @property
    def name(self) -> str:
        return posixpath.basename(self.where) if is_object_uri(self.where) else Path(self.where).name

    def __str__(self) -> str:
        return self.where


def _header(line: str, csv_path: _Named, line_no: int) -> list[str]:
    try:
        header = [h.strip().lower() for h in _parse_line(line)]
    except csv.Error as exc:
        raise CorpusError(f"generic corpus: {csv_path}:{line_no}: the header line cannot be parsed ({exc})") from None
    missing = [c for c in REQUIRED if c not in header]
    if missing:
        raise CorpusError(
            f"generic corpus: {csv_path} lacks column(s) {missing}; found {header[:20]}. The header must name "
            f"{list(REQUIRED)} and may add {[c for c in COLUMNS + OPTIONAL if c not in REQUIRED]}"
        )
    dupes = sorted({h for h in header if header.count(h) > 1})
    if dupes:
        raise CorpusError(f"generic corpus: {csv_path} repeats column(s) {dupes} in its header")
    unknown = [h for h in header if h not in COLUMNS + OPTIONAL]
    if unknown:
        log.warning("generic corpus: ignoring unknown column(s) %s in %s", unknown, csv_path)
    return header


def _roots(csv_path: Path) -> tuple[str, ...]:
    """The corpus root as written and as resolved (the CSV may be reached through a link)."""
    written = os.path.normpath(os.path.abspath(csv_path.parent))
    resolved = str(csv_path.resolve().parent)
    return (written,) if written == resolved else (written, resolved)


def _inside(path: str, roots: tuple[str, ...]) -> bool:
    return any(path == r or path.startswith(r.rstrip(os.sep) + os.sep) for r in roots)


def _parse(line: str, line_no: int, header: list[str], roots: tuple[str, ...],
           allow_outside_root: bool) -> _Row | tuple[int, str, str, str | None] | None:
    """One line -> a row, a reject ``(line, code, detail, utt_id)``, or None (all fields empty)."""
    if len(line) > MAX_LINE_CHARS:
        return line_no, "line_too_long", f"{len(line)} characters (at most {MAX_LINE_CHARS})", None
    if "\x00" in line:
        return line_no, "control_characters", "the line holds NUL characters", None
    try:
        values = _parse_line(line)
    except csv.Error as exc:
        return (line_no, "bad_quoting", f"{exc}: quote a field whole, double any quote inside it (\"\") and keep a "
                "record on one line", None)
    if all(not v.strip() for v in values):
        return None
    if len(values) != len(header):
        return line_no, "field_count", f"{len(values)} fields, the header has {len(header)}", None
    row = {h: v.strip() for h, v in zip(header, values)}
    utt_id = row.get("utt_id") or None
    for column, value in row.items():
        if column not in _FREE_TEXT and len(value) > MAX_FIELD_CHARS:
            return (line_no, "field_too_long", f"column {column!r} has {len(value)} characters "
                    f"(at most {MAX_FIELD_CHARS})", utt_id)
    path = row.get("path", "")
    if not path:
        return line_no, "empty_path", "the path column is empty", utt_id
    encoded = os.fsencode(path)
    longest = max(len(os.fsencode(part)) for part in Path(path).parts)
    if len(encoded) > MAX_PATH_BYTES or longest > MAX_NAME_BYTES:
        return (line_no, "path_too_long", f"{path[:60]!r}... has {len(encoded)} bytes, its longest name {longest} "
                f"(at most {MAX_PATH_BYTES} and {MAX_NAME_BYTES})", utt_id)
    # Lexical, not resolved: a link the user put inside the root is theirs to follow, while
    # ``..`` written in a listing someone sent them must not reach the rest of the machine
    # (nor, in a bucket, the keys beside the CSV's prefix).
    media = _join(roots[0], path)
    if not allow_outside_root and not _inside(media, roots):
        return (line_no, "outside_root", f"{path!r} is outside the corpus root {roots[0]} (move the media under "
                "it, or allow it with --allow-outside-root / corpus.allow_outside_root=true)", utt_id)
    try:
        start, end = parse_time(row.get("start")), parse_time(row.get("end"))
    except ValueError:
        return (line_no, "bad_time", f"unparsable start/end {row.get('start')!r}/{row.get('end')!r}: use seconds "
                "or hh:mm:ss,ms", utt_id)
    problem = time_problem(start, end)
    if problem:
        return line_no, problem[0], problem[1], utt_id
    if not _inside(media, roots[:1]):
        rel = media
    elif is_object_uri(media):
        rel = media[len(roots[0].rstrip("/")) + 1:]
    else:
        rel = os.path.relpath(media, roots[0])
    return _Row(line_no, row, media, start, end, (rel, start, end))


def _join(root: str, path: str) -> str:
    """The media a CSV's ``path`` names: an object URI is kept (normalised), ``file://`` is a
    local path, anything else is relative to ``root`` (a local folder or an ``s3://`` prefix)."""
    if path.startswith("file://"):
        return os.path.normpath(path[len("file://"):])
    if is_object_uri(path):
        scheme, key = path.split("://", 1)
        return f"{scheme}://{posixpath.normpath(key)}"
    if is_object_uri(root) and not os.path.isabs(path):
        scheme, key = root.split("://", 1)
        return f"{scheme}://{posixpath.normpath(posixpath.join(key, path))}"
    return os.path.normpath(os.path.join(root, path))


def _auto_ids(rows: list[_Row]) -> dict[int, str]:
    """line -> id for rows without an ``utt_id``: ``<stem>_<start>``.

    When that id would name different segments (files of the same stem in two folders, or
    one start with two ends) each of them gets a short hash of (path, start, end) appended,
    so no segment is lost as a "duplicate" and the ids do not depend on the row order. The
    same segment listed twice keeps one id and its repeats are rejected as duplicates.
    """
    groups: dict[str, list[_Row]] = defaultdict(list)
    for row in rows:
        if not row.fields.get("utt_id"):
            groups[f"{PurePath(row.media).stem}_{time_key(row.start)}"].append(row)
    ids: dict[int, str] = {}
    for base, members in groups.items():
        distinct = len({m.key for m in members}) > 1
        for m in members:
            if distinct:
                digest = hashlib.sha1(repr(m.key).encode()).hexdigest()[:8]
                ids[m.line_no] = f"{base}_{digest}"
            else:
                ids[m.line_no] = base
    return ids


def _add(collector: RowCollector, item: _Row, auto_id: str | None, source: str) -> None:
    row = item.fields
    utt_id = row.get("utt_id") or auto_id or ""
    raw_gender = row.get("gender", "")
    gender = normalise_gender(raw_gender)
    if raw_gender and gender is None:
        collector.reject(utt_id, source, "bad_gender", f"gender {raw_gender!r} is not F/M (or empty)")
        return
    split = (row.get("split") or "").lower() or None
    if split == "dev":
        split = "val"
    if split is not None and split not in ("train", "val", "test"):
        collector.reject(utt_id, source, "bad_split", f"split {row.get('split')!r} is not train/val/test")
        return
    collector.add(
        source=source, utt_id=utt_id, media=item.media, label=normalise_label(row.get("label")),
        raw_label=row.get("label"), start=item.start, end=item.end, speaker=row.get("speaker") or None,
        gender=gender, age=row.get("age") or None, session=row.get("session") or None, text=row.get("text") or None,
        official_split=split,
    )
