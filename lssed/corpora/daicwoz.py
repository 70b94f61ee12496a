"""DAIC-WOZ (Distress Analysis Interview Corpus, Wizard-of-Oz part), for depression transfer.

About
-----
Source: USC ICT, https://dcapswoz.ict.usc.edu/ (licence agreement, research use only).
Participants 300-492 interviewed by a virtual agent (Ellie); PHQ-8 questionnaire scores.
LSSED's Table 6 transfers SER features to depression detection on this corpus.

Layout read: ``XXX_P/XXX_AUDIO.wav`` and ``XXX_P/XXX_TRANSCRIPT.csv`` (tab-separated
``start_time, stop_time, speaker, value``) per participant, and the AVEC 2017 lists in ROOT:
``train_split_Depression_AVEC2017.csv`` and ``dev_split_Depression_AVEC2017.csv``
(``Participant_ID, PHQ8_Binary, PHQ8_Score, Gender, ...``), plus ``full_test_split.csv``
(``Participant_ID, PHQ_Binary, PHQ_Score, Gender``) if you have the test labels.

Utterances: the ``Participant`` turns only (Ellie's turns are not input rows), cut from the
interview audio by their start/stop times. Labels: PHQ-8 binary per participant ->
``depressed`` (1) / ``not-depressed`` (0); ``label4`` is null (not an emotion). Turns of a
participant without a label in the lists (e.g. the unlabelled AVEC test set) are rejected.
Speaker and session: the participant id; gender from the list's Gender (1 male, 0 female).

Official split: the AVEC 2017 lists. Without test labels the dev list is the test set
(the common practice, as the challenge's test labels were withheld) and validation is carved
from training participants; with ``full_test_split.csv``: train / dev -> val / test.

Citation: J. Gratch et al., "The Distress Analysis Interview Corpus of human and computer
interviews", LREC 2014; F. Ringeval et al., "AVEC 2017", ACM MM workshops 2017.
"""

from __future__ import annotations

import csv
import logging
import re
from pathlib import Path

from lssed.corpora.base import CorpusError, RowCollector, parse_time, time_key, time_problem

log = logging.getLogger(__name__)

LISTS = {
    "train": "train_split_Depression_AVEC2017.csv",
    "dev": "dev_split_Depression_AVEC2017.csv",
    "test": "full_test_split.csv",
}


def _read_lists(root: Path) -> dict[str, tuple[str, str, str | None]]:
    """participant id -> (list name, label, gender)."""
    labels: dict[str, tuple[str, str, str | None]] = {}
    for part, name in LISTS.items():
        path = root / name
        if not path.is_file():
            continue
        with path.open(newline="", encoding="utf-8-sig", errors="replace") as fh:
            reader = csv.DictReader(fh)
            fields = {f.strip().lower(): f for f in reader.fieldnames or []}
            pid_col = fields.get("participant_id")
            bin_col = fields.get("phq8_binary") or fields.get("phq_binary")
            if pid_col is None or bin_col is None:
                raise CorpusError(f"daicwoz: {name} needs Participant_ID and PHQ8_Binary columns; found {reader.fieldnames}")
            gender_col = fields.get("gender")
            for row in reader:
                pid = (row[pid_col] or "").strip()
                if not pid:
                    continue
                binary = (row[bin_col] or "").strip()
                if binary not in ("0", "1"):
                    raise CorpusError(f"daicwoz: {name}: participant {pid} has PHQ-8 binary {binary!r} (want 0 or 1)")
                gender = {"1": "M", "0": "F"}.get((row.get(gender_col) or "").strip()) if gender_col else None
                labels[pid] = (part, "depressed" if binary == "1" else "not-depressed", gender)
    if not labels:
        raise CorpusError(f"daicwoz: none of {list(LISTS.values())[:2]} found in {root}; they give the PHQ-8 labels")
    return labels


def read_daicwoz(root: Path, collector: RowCollector) -> None:
    """Read every participant turn of ``root/XXX_P`` into ``collector``."""
    labels = _read_lists(root)
    has_test = any(part == "test" for part, _, _ in labels.values())
    official = {"train": "train", "dev": "val" if has_test else "test", "test": "test"}
    dirs = sorted((p for p in root.iterdir() if p.is_dir() and re.fullmatch(r"\d+_P", p.name)),
                  key=lambda p: int(p.name[:-2]))
    if not dirs:
        raise CorpusError(f"daicwoz: no participant folders (300_P, 301_P, ...) in {root}")
    for folder in dirs:
        pid = folder.name[:-2]
        transcript = folder / f"{pid}_TRANSCRIPT.csv"
        if not transcript.is_file():
            log.warning("daicwoz: %s has no %s; skipped", folder.name, transcript.name)
            continue
        audio = folder / f"{pid}_AUDIO.wav"
        known = labels.get(pid)
        with transcript.open(newline="", encoding="utf-8", errors="replace") as fh:
            reader = csv.reader(fh, delimiter="\t")
            header = [h.strip().lower() for h in next(reader, [])]
            want = ("start_time", "stop_time", "speaker", "value")
            if any(c not in header for c in want):
                raise CorpusError(f"daicwoz: {transcript} must be tab-separated with columns {list(want)}; found {header}")
            col = {c: header.index(c) for c in want}
            for line_no, values in enumerate(reader, start=2):
                if not values or all(not v.strip() for v in values):
                    continue
                source = f"{folder.name}/{transcript.name}:{line_no}"
                if len(values) < len(header):
                    speaker = values[col["speaker"]].strip() if len(values) > col["speaker"] else ""
                    if speaker == "Ellie":
                        continue
                    collector.reject(None, source, "field_count", f"{len(values)} fields, the header has {len(header)}")
                    continue
                if values[col["speaker"]].strip() != "Participant":
                    continue  # the interviewer's turns are not utterances of this corpus
                try:
                    start, end = parse_time(values[col["start_time"]]), parse_time(values[col["stop_time"]])
                except ValueError:
                    start = end = None
                if start is None or end is None:  # empty, NaN, inf or not a number
                    collector.reject(None, source, "bad_time", f"unparsable start/stop time "
                                     f"{values[col['start_time']]!r}/{values[col['stop_time']]!r}")
                    continue
                problem = time_problem(start, end)
                if problem:
                    collector.reject(None, source, *problem)
                    continue
                utt_id = f"{pid}_{time_key(start)}"
                if known is None:
                    collector.reject(utt_id, source, "no_label",
                                     f"participant {pid} has no PHQ-8 label in the split lists")
                    continue
                part, label, gender = known
                collector.add(
                    source=source, utt_id=utt_id, media=audio, label=label, raw_label=label, start=start, end=end,
                    speaker=pid, gender=gender, session=pid, text=values[col["value"]].strip() or None,
                    official_split=official[part], label4=lambda _label: None,
                )
