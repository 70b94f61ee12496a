"""What every corpus adapter shares: row validation, rejects, label mapping, the result type.

An adapter walks its corpus's own listing and hands each candidate utterance to a
:class:`RowCollector`, which checks it (unique id, media exists, 0 <= start < end, a known
label) and either keeps it or records a reject with the reason. Every input row ends up in
exactly one of the two, so ``kept + rejected == input rows`` holds by construction.

A reject's reason is ``<code>: <detail>``; :data:`REJECT_CODES` lists the codes and what
they mean (docs/corpora.md shows the same table).
"""

from __future__ import annotations

import logging
import math
import os
import posixpath
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any, Callable, Mapping

import pyarrow as pa

from lssed.errors import UserError
from lssed.labels import LSSED_LABELS, MULTI_LABEL_SEPARATOR, label4_index
from lssed.schema import MANIFEST_SCHEMA, REJECTS_SCHEMA

log = logging.getLogger(__name__)

# (prefix URI, recursive) -> {object URI: size in bytes} for every object below the prefix
Lister = Callable[[str, bool], Mapping[str, int]]


class CorpusError(UserError, ValueError):
    """A corpus cannot be read as given; the message says what to fix."""


# code -> meaning. Every reject reason starts with one of these codes.
REJECT_CODES: dict[str, str] = {
    "bad_quoting": "a quote is unbalanced or misplaced, so the line's fields cannot be told apart",
    "field_count": "the line has more or fewer fields than the header",
    "line_too_long": "the line is longer than a corpus listing line can sensibly be (a runaway field)",
    "control_characters": "the line holds NUL characters (a binary or UTF-16 file?)",
    "field_too_long": "an id, name or label field is longer than 256 characters",
    "empty_path": "the row names no media file",
    "path_too_long": "the media path is longer than the file system allows (4096 bytes, 255 per name)",
    "outside_root": "the media path leaves the corpus root (allow with --allow-outside-root / "
                    "corpus.allow_outside_root)",
    "bad_time": "start or end is not a number of seconds >= 0 (or hh:mm:ss,ms), or is NaN/infinite/absurd",
    "bad_segment": "end <= start",
    "empty_id": "the utterance id is empty",
    "duplicate_id": "another row already has this utterance id (the same segment listed twice)",
    "unknown_label": "the label is outside the corpus's label set",
    "bad_gender": "gender is not F/M (or empty)",
    "bad_split": "the official split is not train/val/test",
    "no_media": "the corpus has no media file for this utterance",
    "missing_media": "the media file does not exist",
    "empty_media": "the media file is empty, not a regular file, or unreadable",
    "bad_name": "a file or turn name does not follow the corpus's naming scheme",
    "unparsable_line": "a line of the corpus's own listing cannot be parsed",
    "no_label": "the corpus gives this utterance no usable label (IEMOCAP xxx, DAIC-WOZ unlabelled)",
    "duplicate_recording": "another file of the corpus holds the same recording",
    "no_audio": "the recording has no audio (e.g. RAVDESS video-only)",
    "no_turns": "the recording has no usable turns of the speaker the corpus is about (DAIC-WOZ: no Participant "
                "turns, or no transcript)",
    "no_speaker": "the row names no speaker, so no speaker-independent split can place it (corpus.split=utterance "
                  "accepts such rows, but that split leaks speakers)",
}

# Times beyond this many seconds (~116 days) cannot be in any recording: rejected, not decoded.
MAX_TIME_S = 1e7
# Ids, speakers, labels and the like longer than this are a broken line, not a name.
MAX_FIELD_CHARS = 256


# Common spellings of LSSED's label names (lower case). Adapters add their own codes.
LABEL_ALIASES: dict[str, str] = {
    "ang": "angry", "anger": "angry", "angry": "angry", "mad": "angry",
    "neu": "neutral", "neutral": "neutral", "calm-neutral": "neutral",
    "hap": "happy", "happy": "happy", "happiness": "happy", "joy": "happy", "joyful": "happy",
    "sad": "sad", "sadness": "sad",
    "dis": "disgusted", "disgust": "disgusted", "disgusted": "disgusted",
    "disappointed": "disappointed", "disappointment": "disappointed",
    "bored": "bored", "boredom": "bored",
    "exc": "excited", "excited": "excited", "excitement": "excited",
    "fea": "fear", "fear": "fear", "fearful": "fear", "afraid": "fear",
    "sur": "surprised", "surprise": "surprised", "surprised": "surprised",
    "oth": "other", "other": "other",
}


def normalise_label(raw: str | None, extra: Mapping[str, str] | None = None) -> str | None:
    """A corpus's label -> an LSSED label name (or an adapter's own name); None if unknown.

    A multi-label value ``"Anger; exc"`` -> ``"angry;excited"`` (each part normalised, in the
    given order, repeats dropped); None if any part is unknown.
    """
    if raw is None:
        return None
    if MULTI_LABEL_SEPARATOR in str(raw):
        parts = [p for p in str(raw).split(MULTI_LABEL_SEPARATOR) if p.strip()]
        names = [normalise_label(p, extra) for p in parts]
        if not names or any(n is None for n in names):
            return None
        return MULTI_LABEL_SEPARATOR.join(dict.fromkeys(n for n in names if n is not None))
    key = str(raw).strip().lower()
    if extra and key in extra:
        return extra[key]
    name = LABEL_ALIASES.get(key)
    if name is not None:
        return name
    return key if key in LSSED_LABELS else None


def normalise_gender(raw: Any) -> str | None:
    """``F``/``M`` from the usual spellings; None when missing or unrecognised."""
    if raw is None:
        return None
    key = str(raw).strip().lower()
    if key in ("f", "female", "w", "woman", "girl"):
        return "F"
    if key in ("m", "male", "man", "boy"):
        return "M"
    return None


@dataclass(frozen=True)
class PreparedCorpus:
    """An adapter's output: the manifest (``MANIFEST_SCHEMA``, with ``label4`` and ``split``),
    the rejected rows (``REJECTS_SCHEMA``) and how many rows the corpus listed."""

    manifest: pa.Table
    rejects: pa.Table
    input_rows: int
    name: str = ""
    split_protocol: str = "speaker"

    def __post_init__(self) -> None:
        if self.manifest.num_rows + self.rejects.num_rows != self.input_rows:
            raise AssertionError(  # a bug in an adapter, never a user error
                f"{self.name}: {self.manifest.num_rows} kept + {self.rejects.num_rows} rejected "
                f"!= {self.input_rows} input rows"
            )

    def split_counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for s in self.manifest.column("split").to_pylist():
            counts[s] = counts.get(s, 0) + 1
        return counts


@dataclass
class RowCollector:
    """Validates candidate rows; keeps them or records rejects (``strict``: raise instead).

    ``merge_excited``: the corpus's 4-class convention (:func:`lssed.labels.label4_index`);
    ``require_speaker``: reject rows without a speaker (``no_speaker``), as every split but
    the utterance split needs one.
    """

    corpus: str
    strict: bool = False
    merge_excited: bool = False
    require_speaker: bool = False
    rows: list[dict[str, Any]] = field(default_factory=list)
    rejects: list[dict[str, Any]] = field(default_factory=list)
    official: list[str | None] = field(default_factory=list)
    input_rows: int = 0
    # Where s3:// media are looked up (one listing per prefix); None: the default endpoint.
    media_index: "MediaIndex | None" = None
    _ids: set[str] = field(default_factory=set)
    _exists: dict[str, tuple[str, str] | None] = field(default_factory=dict)

    def reject(self, utt_id: str | None, source: str, code: str, detail: str) -> None:
        """Record one unusable input row; the reason is ``<code>: <detail>`` (codes: :data:`REJECT_CODES`)."""
        if code not in REJECT_CODES:
            raise AssertionError(f"reject code {code!r} is not in REJECT_CODES")  # a bug in an adapter
        reason = f"{code}: {detail}"
        row = self.input_rows
        self.input_rows += 1
        if self.strict:
            raise CorpusError(f"{self.corpus}: {source}: {reason} (drop --strict to reject such rows and go on)")
        if utt_id is not None and len(utt_id) > MAX_FIELD_CHARS:
            utt_id = utt_id[:MAX_FIELD_CHARS] + "..."  # the rejects table stays readable
        self.rejects.append({"row": row, "utt_id": utt_id, "source": source, "reason": reason})

    def _media_problem(self, media: str) -> tuple[str, str] | None:
        if media not in self._exists:
            if is_object_uri(media):
                if self.media_index is None:
                    self.media_index = MediaIndex(storage_lister(None))
                self._exists[media] = self.media_index.problem(media)
            else:
                self._exists[media] = _media_problem(Path(media))
        return self._exists[media]

    def add(
        self,
        *,
        source: str,
        utt_id: str,
        media: Path | str | None,
        label: str | None,
        raw_label: Any = None,
        start: float | None = None,
        end: float | None = None,
        speaker: str | None = None,
        gender: str | None = None,
        age: str | None = None,
        session: str | None = None,
        text: str | None = None,
        official_split: str | None = None,
        label4: Callable[[str], int | None] | None = None,
        score: float | None = None,
    ) -> bool:
        """Validate and keep one row; False (and a reject) if it cannot be used."""
        if not utt_id:
            self.reject(None, source, "empty_id", "the utterance id is empty")
            return False
        if len(utt_id) > MAX_FIELD_CHARS:
            self.reject(utt_id, source, "field_too_long", f"utterance id of {len(utt_id)} characters "
                        f"(at most {MAX_FIELD_CHARS})")
            return False
        problem = time_problem(start, end)
        if problem:
            self.reject(utt_id, source, *problem)
            return False
        if utt_id in self._ids:
            self.reject(utt_id, source, "duplicate_id", f"duplicate utterance id {utt_id!r}")
            return False
        if label is None:
            self.reject(utt_id, source, "unknown_label", f"unknown label {_short(raw_label)}")
            return False
        if self.require_speaker and not (speaker and str(speaker).strip()):
            self.reject(utt_id, source, "no_speaker", "no speaker for this utterance (needed by speaker-independent "
                        "splits; corpus.split=utterance accepts it but leaks speakers)")
            return False
        if media is None:
            self.reject(utt_id, source, "no_media", "no media file for this utterance")
            return False
        media_text = os.fspath(media)
        media_problem = self._media_problem(media_text)
        if media_problem:
            self.reject(utt_id, source, *media_problem)
            return False
        # object storage URIs are kept as written; local paths become absolute
        media_uri = media_text if is_object_uri(media_text) else str(Path(media).resolve())
        self.input_rows += 1
        self._ids.add(utt_id)
        self.rows.append({
            "utt_id": utt_id, "corpus": self.corpus, "media_uri": media_uri,
            "start_s": None if start is None else float(start),
            "end_s": None if end is None else float(end),
            "speaker": speaker or None, "gender": gender, "age": age or None, "session": session or None,
            "label": label, "split": None, "fold": None, "text": text or None,
            "score": None if score is None else float(score),
            "label4": label4(label) if label4 is not None else label4_index(label, merge_excited=self.merge_excited),
        })
        self.official.append(official_split)
        return True

    def manifest_table(self, splits: list[str], folds: list[int] | None = None) -> pa.Table:
        folds = folds if folds is not None else [None] * len(splits)  # type: ignore[list-item]
        rows = [dict(r, split=s, fold=f) for r, s, f in zip(self.rows, splits, folds)]
        return pa.Table.from_pylist(rows, schema=MANIFEST_SCHEMA)

    def rejects_table(self) -> pa.Table:
        return pa.Table.from_pylist(self.rejects, schema=REJECTS_SCHEMA)


def _short(value: Any, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + f"... ({len(text)} characters)"


def _media_problem(media: Path) -> tuple[str, str] | None:
    """(code, detail) when ``media`` is not a non-empty regular file, else None."""
    try:
        if not media.exists():
            return "missing_media", f"{media} does not exist"
        if not media.is_file():
            return "empty_media", f"{media} is not a regular file"
        if media.stat().st_size == 0:
            return "empty_media", f"{media} is empty"
    except OSError as exc:  # a name too long, a permission denied: this row only
        return "empty_media", f"{_short(str(media))} cannot be read ({exc.strerror or exc})"
    return None


def is_object_uri(path: str) -> bool:
    """True for an object storage URI (``s3://...``); local paths and ``file://`` are not."""
    scheme = path.split("://", 1)[0] if "://" in path else ""
    return bool(scheme) and scheme != "file" and "/" not in scheme


def media_problem_in_listing(uri: str, listing: Mapping[str, int]) -> tuple[str, str] | None:
    """(code, detail) when ``uri`` is not a non-empty object of ``listing`` (URI -> size), else None.

    The same codes as a local file's check, so a corpus in a bucket is rejected row for row
    as the same corpus on disk.
    """
    size = listing.get(uri)
    if size is None:
        return "missing_media", f"{uri} does not exist"
    if size == 0:
        return "empty_media", f"{uri} is empty"
    return None


class MediaIndex:
    """Which objects exist, from ONE listing per prefix instead of one request per row.

    Media below a registered root (:meth:`add_root`, e.g. the CSV's prefix) come from one
    recursive listing of that root; any other media from one listing of their own parent
    prefix (not recursive, so an absolute URI at a bucket's top does not list the bucket).
    ``lister`` does the listing (:func:`storage_lister`, or anything with its signature).
    """

    def __init__(self, lister: Lister) -> None:
        self._lister = lister
        self._roots: list[str] = []
        self._listings: dict[tuple[str, bool], Mapping[str, int]] = {}

    def add_root(self, prefix: str) -> None:
        prefix = prefix.rstrip("/")
        if prefix not in self._roots:
            self._roots.append(prefix)

    def problem(self, uri: str) -> tuple[str, str] | None:
        root = next((r for r in self._roots if uri.startswith(r + "/")), None)
        where = (root, True) if root is not None else (posixpath.dirname(uri), False)
        if where not in self._listings:
            try:
                self._listings[where] = self._lister(*where)
            except OSError as exc:  # the endpoint, the credentials or the bucket: every row would fail alike
                raise CorpusError(f"cannot list {where[0]} to check the corpus's media ({exc}); check the bucket, "
                                  "storage.endpoint_url (or AWS_ENDPOINT_URL) and the credentials") from None
        return media_problem_in_listing(uri, self._listings[where])


def storage_lister(storage: Any) -> Lister:
    """A :data:`Lister` through ``storage`` (a :class:`lssed.storage.Storage` or StorageConfig
    giving endpoint, region, retries and timeouts; None: the defaults and AWS_ENDPOINT_URL)."""
    from lssed.storage import storage_from_config

    def list_prefix(prefix: str, recursive: bool) -> Mapping[str, int]:
        return storage_from_config(storage, prefix).file_sizes(recursive=recursive)

    return list_prefix


def time_problem(start: float | None, end: float | None) -> tuple[str, str] | None:
    """(code, detail) when a segment's times cannot be used, else None."""
    for name, value in (("start", start), ("end", end)):
        if value is not None and (not math.isfinite(value) or value < 0 or value > MAX_TIME_S):
            return "bad_time", f"{name} time {value!r} must be a finite number of seconds in [0, {MAX_TIME_S:g}]"
    if start is not None and end is not None and end <= start:
        return "bad_segment", f"end ({end}) <= start ({start})"
    return None


def time_key(seconds: float | None) -> str:
    """A start time as an id part: milliseconds, at least 8 digits, plus the exact finer digits.

    ``1.5`` -> ``00001500``; ``0.1005`` -> ``00000100.5``. Distinct times always give distinct
    keys (the shortest decimal text of the float, scaled exactly), so two segments never share
    an id because of rounding. ``None`` (the start of the file) is ``0``.
    """
    value = 0.0 if seconds is None else float(seconds)
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"time_key: {value!r} is not a time >= 0")
    ms = Decimal(repr(value)) * 1000  # exact: repr has <= 17 significant digits
    whole = int(ms)
    text = f"{whole:08d}"
    fraction = ms - whole
    if fraction:
        text += "." + format(fraction.normalize(), "f").split(".", 1)[1]
    return text


def parse_time(raw: Any) -> float | None:
    """Seconds from a number or text; empty -> None; raises ValueError on anything else.

    Accepts ``12.5``, ``"12.5"``, ``"00:01:02,345"`` / ``"0:01:02.345"`` (h:m:s[,.]ms).
    NaN and infinite values in text (``nan``, ``inf``) are errors, not times.
    """
    if raw is None:
        return None
    if isinstance(raw, (int, float)):
        if isinstance(raw, float) and math.isnan(raw):
            return None  # a missing value in a table read by pandas or pyarrow
        return float(raw)
    text = str(raw).strip()
    if not text:
        return None
    if len(text) > 64:
        raise ValueError(f"cannot parse time {_short(raw)}")
    if ":" in text:
        parts = text.replace(",", ".").split(":")
        if len(parts) > 3:
            raise ValueError(f"cannot parse time {raw!r}")
        seconds = 0.0
        for part in parts:
            seconds = seconds * 60 + float(part)
    else:
        seconds = float(text)
    if not math.isfinite(seconds):
        raise ValueError(f"time {raw!r} is not a finite number")
    return seconds
