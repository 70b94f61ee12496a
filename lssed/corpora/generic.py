"""The generic CSV layout: any corpus described by one CSV file.

About
-----
Columns ``path,start,end,label,speaker,gender,age,session,text`` (header required; order
free). ``path`` is relative to the CSV (or absolute); empty ``start``/``end`` mean the start
/ end of the file; times are seconds (``12.5``) or ``hh:mm:ss,ms``. ``label`` is an LSSED
label name or a common spelling of one (``ang``, ``anger``, ``joy``, ``fearful`` ...; see
``lssed.corpora.base.LABEL_ALIASES``); other labels are rejected. ``gender`` is F/M (any
usual spelling) or empty. Required columns: ``path``, ``label``, ``speaker``; an optional
``utt_id`` column names the rows, otherwise the id is ``<file stem>_<start in ms>``.
Official split: an optional ``split`` column (train/val/test). The demo corpus is written in
this layout (corpus name ``demo``).
"""

from __future__ import annotations

import csv
import logging
from pathlib import Path

from lssed.corpora.base import CorpusError, RowCollector, normalise_gender, normalise_label, parse_time

log = logging.getLogger(__name__)

COLUMNS = ("path", "start", "end", "label", "speaker", "gender", "age", "session", "text")
REQUIRED = ("path", "label", "speaker")
OPTIONAL = ("utt_id", "split")


def read_generic(csv_path: str | Path, collector: RowCollector) -> None:
    """Read every data line of the CSV into ``collector``."""
    csv_path = Path(csv_path)
    if csv_path.is_dir():
        candidate = csv_path / "corpus.csv"
        if not candidate.is_file():
            raise CorpusError(f"generic corpus: {csv_path} is a directory; give the CSV file itself")
        csv_path = candidate
    if not csv_path.is_file():
        raise CorpusError(f"generic corpus: CSV {csv_path} does not exist")
    base = csv_path.resolve().parent
    with csv_path.open(newline="", encoding="utf-8-sig", errors="replace") as fh:
        reader = csv.reader(fh)
        header = next(reader, None)
        if header is None:
            raise CorpusError(f"generic corpus: {csv_path} is empty; it needs a header line {','.join(COLUMNS)}")
        header = [h.strip().lower() for h in header]
        missing = [c for c in REQUIRED if c not in header]
        if missing:
            raise CorpusError(
                f"generic corpus: {csv_path} lacks column(s) {missing}; found {header}. The header must name "
                f"{list(REQUIRED)} and may add {[c for c in COLUMNS + OPTIONAL if c not in REQUIRED]}"
            )
        dupes = sorted({h for h in header if header.count(h) > 1})
        if dupes:
            raise CorpusError(f"generic corpus: {csv_path} repeats column(s) {dupes} in its header")
        unknown = [h for h in header if h not in COLUMNS + OPTIONAL]
        if unknown:
            log.warning("generic corpus: ignoring unknown column(s) %s in %s", unknown, csv_path)
        for line_no, values in enumerate(reader, start=2):
            if not values or all(not v.strip() for v in values):
                continue  # blank lines are not rows
            source = f"{csv_path.name}:{line_no}"
            if len(values) != len(header):
                collector.reject(None, source, f"unparsable line: {len(values)} fields, the header has {len(header)}")
                continue
            row = {h: v.strip() for h, v in zip(header, values)}
            _add(collector, row, base, source)


def _add(collector: RowCollector, row: dict[str, str], base: Path, source: str) -> None:
    path = row.get("path", "")
    if not path:
        collector.reject(row.get("utt_id") or None, source, "empty path")
        return
    media = Path(path) if Path(path).is_absolute() else base / path
    try:
        start = parse_time(row.get("start"))
        end = parse_time(row.get("end"))
    except ValueError:
        collector.reject(row.get("utt_id") or None, source,
                         f"unparsable start/end {row.get('start')!r}/{row.get('end')!r}: use seconds or hh:mm:ss,ms")
        return
    utt_id = row.get("utt_id") or (f"{Path(path).stem}_{round((start or 0.0) * 1000):08d}")
    raw_gender = row.get("gender", "")
    gender = normalise_gender(raw_gender)
    if raw_gender and gender is None:
        collector.reject(utt_id, source, f"gender {raw_gender!r} is not F/M (or empty)")
        return
    split = (row.get("split") or "").lower() or None
    if split == "dev":
        split = "val"
    if split is not None and split not in ("train", "val", "test"):
        collector.reject(utt_id, source, f"split {row.get('split')!r} is not train/val/test")
        return
    collector.add(
        source=source, utt_id=utt_id, media=media, label=normalise_label(row.get("label")), raw_label=row.get("label"),
        start=start, end=end, speaker=row.get("speaker") or None, gender=gender, age=row.get("age") or None,
        session=row.get("session") or None, text=row.get("text") or None, official_split=split,
    )
