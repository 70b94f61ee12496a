"""What every corpus adapter shares: row validation, rejects, label mapping, the result type.

An adapter walks its corpus's own listing and hands each candidate utterance to a
:class:`RowCollector`, which checks it (unique id, media exists, 0 <= start < end, a known
label) and either keeps it or records a reject with the reason. Every input row ends up in
exactly one of the two, so ``kept + rejected == input rows`` holds by construction.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

import pyarrow as pa

from lssed.labels import LSSED_LABELS, label4_index
from lssed.schema import MANIFEST_SCHEMA, REJECTS_SCHEMA

log = logging.getLogger(__name__)


class CorpusError(ValueError):
    """A corpus cannot be read as given; the message says what to fix."""


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
    """A corpus's label -> an LSSED label name (or an adapter's own name); None if unknown."""
    if raw is None:
        return None
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
    """Validates candidate rows; keeps them or records rejects (``strict``: raise instead)."""

    corpus: str
    strict: bool = False
    rows: list[dict[str, Any]] = field(default_factory=list)
    rejects: list[dict[str, Any]] = field(default_factory=list)
    official: list[str | None] = field(default_factory=list)
    input_rows: int = 0
    _ids: set[str] = field(default_factory=set)
    _exists: dict[str, bool] = field(default_factory=dict)

    def reject(self, utt_id: str | None, source: str, reason: str) -> None:
        """Record one unusable input row."""
        row = self.input_rows
        self.input_rows += 1
        if self.strict:
            raise CorpusError(f"{self.corpus}: {source}: {reason} (drop --strict to reject such rows and go on)")
        self.rejects.append({"row": row, "utt_id": utt_id, "source": source, "reason": reason})

    def _media_ok(self, media: Path) -> str | None:
        key = str(media)
        if key not in self._exists:
            self._exists[key] = media.is_file()
            if self._exists[key] and media.stat().st_size == 0:
                self._exists[key] = False
        if not self._exists[key]:
            return f"missing media: {media}" if not media.exists() else f"empty or unreadable media: {media}"
        return None

    def add(
        self,
        *,
        source: str,
        utt_id: str,
        media: Path | None,
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
        label4: Callable[[str], int | None] = label4_index,
    ) -> bool:
        """Validate and keep one row; False (and a reject) if it cannot be used."""
        if not utt_id:
            self.reject(None, source, "empty utterance id")
            return False
        if utt_id in self._ids:
            self.reject(utt_id, source, f"duplicate utterance id {utt_id!r}")
            return False
        if label is None:
            self.reject(utt_id, source, f"unknown label {raw_label!r}")
            return False
        if media is None:
            self.reject(utt_id, source, "no media file for this utterance")
            return False
        for name, value in (("start", start), ("end", end)):
            if value is not None and (not math.isfinite(value) or value < 0):
                self.reject(utt_id, source, f"{name} time {value!r} must be a finite number >= 0")
                return False
        if start is not None and end is not None and end <= start:
            self.reject(utt_id, source, f"end ({end}) <= start ({start})")
            return False
        problem = self._media_ok(Path(media))
        if problem:
            self.reject(utt_id, source, problem)
            return False
        self.input_rows += 1
        self._ids.add(utt_id)
        self.rows.append({
            "utt_id": utt_id, "corpus": self.corpus, "media_uri": str(Path(media).resolve()),
            "start_s": None if start is None else float(start),
            "end_s": None if end is None else float(end),
            "speaker": speaker or None, "gender": gender, "age": age or None, "session": session or None,
            "label": label, "label4": label4(label), "split": None, "text": text or None,
        })
        self.official.append(official_split)
        return True

    def manifest_table(self, splits: list[str]) -> pa.Table:
        rows = [dict(r, split=s) for r, s in zip(self.rows, splits)]
        return pa.Table.from_pylist(rows, schema=MANIFEST_SCHEMA)

    def rejects_table(self) -> pa.Table:
        return pa.Table.from_pylist(self.rejects, schema=REJECTS_SCHEMA)


def parse_time(raw: Any) -> float | None:
    """Seconds from a number or text; empty -> None; raises ValueError on anything else.

    Accepts ``12.5``, ``"12.5"``, ``"00:01:02,345"`` / ``"0:01:02.345"`` (h:m:s[,.]ms).
    """
    if raw is None:
        return None
    if isinstance(raw, (int, float)):
        if isinstance(raw, float) and math.isnan(raw):
            return None
        return float(raw)
    text = str(raw).strip()
    if not text:
        return None
    if ":" in text:
        parts = text.replace(",", ".").split(":")
        if len(parts) > 3:
            raise ValueError(f"cannot parse time {raw!r}")
        seconds = 0.0
        for part in parts:
            seconds = seconds * 60 + float(part)
        return seconds
    return float(text)
