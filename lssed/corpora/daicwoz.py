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
interview audio by their start/stop times; with ``max_segment_s`` (``corpus.max_segment_s``) a
longer turn becomes equal windows of at most that length, ids ``<pid>_<start>_w<k>``. Labels:
PHQ-8 binary per participant -> ``depressed`` (1) / ``not-depressed`` (0), the PHQ-8 score
(0-24) in ``score``; ``label4`` is null (not an emotion). Speaker and session: the participant
id; gender from the list's Gender (1 male, 0 female).

A participant that cannot be used is ONE reject with the reason: no transcript or no
Participant turns (``no_turns``), no label in the lists (``no_label``, e.g. the unlabelled
AVEC test set), a missing, empty or unreadable wav (``missing_media`` / ``empty_media`` /
``no_audio``). Single turns with unusable times are rejected one by one; a turn that runs past
the end of the audio is cut at its end (one that starts after it is rejected).

Official split (the default protocol, ``DEFAULT_SPLIT``): the AVEC 2017 lists. Without test
labels the dev list is the test set (the common practice, as the challenge's test labels were
withheld) and validation is carved from training participants; with ``full_test_split.csv``:
train / dev -> val / test.

Citation: J. Gratch et al., "The Distress Analysis Interview Corpus of human and computer
interviews", LREC 2014; F. Ringeval et al., "AVEC 2017", ACM MM workshops 2017.
"""

from __future__ import annotations

import csv
import logging
import math
import re
from dataclasses import dataclass
from pathlib import Path

from lssed.corpora.base import CorpusError, RowCollector, parse_time, time_key, time_problem

log = logging.getLogger(__name__)

# corpus.split unset -> the AVEC 2017 partition: the protocol published DAIC-WOZ results use
DEFAULT_SPLIT = "official"

LISTS = {
    "train": "train_split_Depression_AVEC2017.csv",
    "dev": "dev_split_Depression_AVEC2017.csv",
    "test": "full_test_split.csv",
}


@dataclass(frozen=True)
class Participant:
    """One participant's entry in the AVEC 2017 lists."""

    part: str  # train | dev | test (the list it is in)
    label: str  # depressed | not-depressed
    score: float | None  # PHQ-8 score 0-24 (None: the list has no score column or an empty cell)
    gender: str | None


@dataclass(frozen=True)
class Turn:
    start: float
    end: float
    text: str | None
    source: str


def _read_lists(root: Path) -> dict[str, Participant]:
    """participant id -> its list entry."""
    labels: dict[str, Participant] = {}
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
            score_col = fields.get("phq8_score") or fields.get("phq_score")
            gender_col = fields.get("gender")
            for row in reader:
                pid = (row[pid_col] or "").strip()
                if not pid:
                    continue
                binary = (row[bin_col] or "").strip()
                if binary not in ("0", "1"):
                    raise CorpusError(f"daicwoz: {name}: participant {pid} has PHQ-8 binary {binary!r} (want 0 or 1)")
                score = _score(row.get(score_col) if score_col else None, name, pid)
                gender = {"1": "M", "0": "F"}.get((row.get(gender_col) or "").strip()) if gender_col else None
                labels[pid] = Participant(part, "depressed" if binary == "1" else "not-depressed", score, gender)
    if not labels:
        raise CorpusError(f"daicwoz: none of {list(LISTS.values())[:2]} found in {root}; they give the PHQ-8 labels")
    return labels


def _score(raw: str | None, name: str, pid: str) -> float | None:
    text = (raw or "").strip()
    if not text:
        return None
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and 0 <= value <= 24):
        raise CorpusError(f"daicwoz: {name}: participant {pid} has PHQ-8 score {text!r} (want a number 0-24)")
    return value


def windows(start: float, end: float, max_segment_s: float | None) -> list[tuple[float, float]]:
    """``[start, end]`` as equal consecutive windows of at most ``max_segment_s`` (one when it
    fits or ``max_segment_s`` is None): equal lengths, so no window is a sliver."""
    if max_segment_s is None or end - start <= max_segment_s:
        return [(start, end)]
    n = math.ceil((end - start) / max_segment_s - 1e-9)
    step = (end - start) / n
    bounds = [start + k * step for k in range(n)] + [end]
    return list(zip(bounds[:-1], bounds[1:]))


def audio_problem(path: Path) -> tuple[str, str, float | None]:
    """("", "", duration s) for a readable wav with an audio stream, else (code, detail, None).

    Reads the header and decodes the first packet only: an interview is ~15 minutes."""
    import av

    if not path.is_file():
        return "missing_media", f"{path.name} does not exist", None
    if path.stat().st_size == 0:
        return "empty_media", f"{path.name} is empty", None
    try:
        with av.open(str(path)) as container:
            if not container.streams.audio:
                return "no_audio", f"{path.name} has no audio stream", None
            stream = container.streams.audio[0]
            next(container.decode(stream))  # a header alone does not prove the samples decode
            if stream.duration is not None and stream.time_base is not None:
                duration = float(stream.duration * stream.time_base)
            elif container.duration is not None:
                duration = container.duration / 1_000_000  # av.time_base: microseconds
            else:
                duration = None
    except StopIteration:
        return "no_audio", f"{path.name} holds no audio samples", None
    except Exception as exc:  # noqa: BLE001 - PyAV raises many error types for a broken file
        return "empty_media", f"{path.name} cannot be decoded ({type(exc).__name__}: {exc})", None
    return "", "", duration


def _read_turns(folder: Path, transcript: Path, collector: RowCollector) -> list[Turn]:
    """The Participant turns of one transcript; unusable single turns are rejected here."""
    turns: list[Turn] = []
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
            turns.append(Turn(start, end, values[col["value"]].strip() or None, source))
    return turns


def read_daicwoz(root: Path, collector: RowCollector, *, max_segment_s: float | None = None) -> None:
    """Read every participant turn of ``root/XXX_P`` into ``collector`` (long turns as windows
    of at most ``max_segment_s``; None keeps whole turns)."""
    if max_segment_s is not None and not (math.isfinite(max_segment_s) and max_segment_s > 0):
        raise CorpusError(f"daicwoz: max_segment_s must be a positive number of seconds, got {max_segment_s!r}")
    labels = _read_lists(root)
    has_test = any(p.part == "test" for p in labels.values())
    official = {"train": "train", "dev": "val" if has_test else "test", "test": "test"}
    dirs = sorted((p for p in root.iterdir() if p.is_dir() and re.fullmatch(r"\d+_P", p.name)),
                  key=lambda p: int(p.name[:-2]))
    if not dirs:
        raise CorpusError(f"daicwoz: no participant folders (300_P, 301_P, ...) in {root}")
    for folder in dirs:
        pid = folder.name[:-2]
        transcript = folder / f"{pid}_TRANSCRIPT.csv"
        if not transcript.is_file():
            collector.reject(None, folder.name, "no_turns", f"participant {pid}: no {transcript.name}")
            continue
        turns = _read_turns(folder, transcript, collector)
        what = f"participant {pid} ({len(turns)} turns)"
        if not turns:
            collector.reject(None, f"{folder.name}/{transcript.name}", "no_turns",
                             f"participant {pid}: no usable Participant turns in {transcript.name}")
            continue
        known = labels.get(pid)
        if known is None:
            collector.reject(None, folder.name, "no_label", f"{what} has no PHQ-8 label in the split lists")
            continue
        audio = folder / f"{pid}_AUDIO.wav"
        code, detail, duration = audio_problem(audio)
        if code:
            collector.reject(None, f"{folder.name}/{audio.name}", code, f"{what}: {detail}")
            continue
        for turn in turns:
            _add_turn(collector, pid, audio, turn, known, official[known.part], duration, max_segment_s)


def _add_turn(collector: RowCollector, pid: str, audio: Path, turn: Turn, known: Participant, split: str,
              duration: float | None, max_segment_s: float | None) -> None:
    utt_id = f"{pid}_{time_key(turn.start)}"
    end = turn.end
    if duration is not None and turn.start >= duration:
        collector.reject(utt_id, turn.source, "bad_segment",
                         f"starts at {turn.start:g} s, after the end of {audio.name} ({duration:.3f} s)")
        return
    if duration is not None and end > duration:
        end = duration  # transcripts often stop a few ms past the recording
    parts = windows(turn.start, end, max_segment_s)
    for k, (w_start, w_end) in enumerate(parts):
        collector.add(
            source=turn.source if len(parts) == 1 else f"{turn.source} window {k}",
            utt_id=utt_id if len(parts) == 1 else f"{utt_id}_w{k}", media=audio, label=known.label,
            raw_label=known.label, start=w_start, end=w_end, speaker=pid, gender=known.gender, session=pid,
            text=turn.text, official_split=split, label4=lambda _label: None, score=known.score,
        )
