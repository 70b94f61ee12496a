"""IEMOCAP (Interactive Emotional Dyadic Motion Capture).

About
-----
Source: USC SAIL, https://sail.usc.edu/iemocap/ (licence by request, research use only).
Five sessions, each a pair of actors (one female, one male), ~12 h of scripted and improvised
dyadic dialogue, ~10k turns with categorical labels by majority vote of annotators.

Layout read: ``SessionN/dialog/EmoEvaluation/<dialog>.txt`` summary lines
``[start - end]<TAB><turn id><TAB><label><TAB>[v, a, d]`` (the per-annotator lines below them
are skipped); audio ``SessionN/sentences/wav/<dialog>/<turn>.wav`` (whole file). If a turn's
wav is missing, the dialog's ``SessionN/dialog/wav/<dialog>.wav`` or its video
``SessionN/dialog/avi/**/<dialog>.avi`` is used with the turn's start/end. Text comes from
``SessionN/dialog/transcriptions/<dialog>.txt`` when present.

Labels: neu -> neutral, hap -> happy, exc -> excited (benchmark: happy, the usual IEMOCAP
4-class convention, ``corpus.merge_excited`` on by default here only), ang -> angry, sad -> sad, sur -> surprised, fea -> fear, dis ->
disgusted, oth -> other, fru -> ``frustrated`` (IEMOCAP's own, outside the benchmark);
``xxx`` (no majority) rows are rejected. Speaker: ``Ses0N`` + the gender letter that starts
the turn id's last field (``Ses01F_impro01_M012`` -> ``Ses01M``, male). Session: ``Ses0N``.

Splits keep whole sessions together (both actors of a dialogue on one side, since each
hears and answers the other). Official split: session 5 is the test set by default
(``test_session=``); validation is one training session carved out. Folds: one per session
(leave one session out).

Citation: C. Busso et al., "IEMOCAP: Interactive emotional dyadic motion capture database",
Language Resources and Evaluation 42(4), 2008.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

from lssed.corpora.base import CorpusError, RowCollector, normalise_label

log = logging.getLogger(__name__)

# The corpus's conventions, read by lssed.corpora.prepare: excited counts as happy in the
# 4 classes; splits keep sessions whole; the folds are the sessions.
MERGE_EXCITED = True
SPLIT_GROUP = "session"
FOLDS_ARE_GROUPS = True

LABELS = {
    "neu": "neutral", "hap": "happy", "exc": "excited", "ang": "angry", "sad": "sad", "sur": "surprised",
    "fea": "fear", "dis": "disgusted", "oth": "other", "fru": "frustrated",
}
_SUMMARY = re.compile(r"^\[\s*([0-9.]+)\s*-\s*([0-9.]+)\s*\]\s+(\S+)\s+(\S+)\s+\[.*\]\s*$")
_TURN = re.compile(r"^Ses(\d{2})[FM]_.+_([FM])[A-Za-z]*\d+$")
_TRANSCRIPT = re.compile(r"^(\S+)\s+\[[^\]]*\]:\s*(.*)$")


def _transcripts(session_dir: Path, dialog: str, cache: dict[str, dict[str, str]]) -> dict[str, str]:
    if dialog not in cache:
        path = session_dir / "dialog" / "transcriptions" / f"{dialog}.txt"
        texts: dict[str, str] = {}
        if path.is_file():
            for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
                m = _TRANSCRIPT.match(line.strip())
                if m:
                    texts[m.group(1)] = m.group(2).strip()
        cache[dialog] = texts
    return cache[dialog]


def _dialog_media(session_dir: Path, dialog: str) -> Path | None:
    wav = session_dir / "dialog" / "wav" / f"{dialog}.wav"
    if wav.is_file():
        return wav
    avi_dir = session_dir / "dialog" / "avi"
    if avi_dir.is_dir():
        found = sorted(avi_dir.rglob(f"{dialog}.avi"))
        if found:
            return found[0]
    return None


def read_iemocap(root: Path, collector: RowCollector, *, test_session: int = 5) -> None:
    """Read every labelled turn of ``root/Session1..5`` into ``collector``."""
    sessions = sorted(p for p in root.iterdir() if p.is_dir() and re.fullmatch(r"Session\d+", p.name))
    if not sessions:
        raise CorpusError(f"iemocap: no SessionN directories under {root}; give the IEMOCAP_full_release directory")
    numbers = {int(p.name[len("Session"):]) for p in sessions}
    if test_session not in numbers:
        raise CorpusError(f"iemocap: test_session={test_session} but the sessions found are {sorted(numbers)}")
    for session_dir in sessions:
        eval_dir = session_dir / "dialog" / "EmoEvaluation"
        if not eval_dir.is_dir():
            raise CorpusError(f"iemocap: {eval_dir} is missing (expected SessionN/dialog/EmoEvaluation/*.txt)")
        number = int(session_dir.name[len("Session"):])
        texts: dict[str, dict[str, str]] = {}
        for eval_file in sorted(eval_dir.glob("*.txt")):
            dialog = eval_file.stem
            for line_no, line in enumerate(eval_file.read_text(encoding="utf-8", errors="replace").splitlines(), 1):
                if not line.startswith("["):
                    continue  # headers, blank lines and the per-annotator lines
                source = f"{session_dir.name}/dialog/EmoEvaluation/{eval_file.name}:{line_no}"
                m = _SUMMARY.match(line.strip())
                if not m:
                    collector.reject(None, source, "unparsable_line", f"{line.strip()[:80]!r}")
                    continue
                start, end, turn, code = float(m.group(1)), float(m.group(2)), m.group(3), m.group(4).lower()
                t = _TURN.match(turn)
                if not t:
                    collector.reject(turn, source, "bad_name",
                                     f"turn id {turn!r} does not look like Ses01F_impro01_F000")
                    continue
                if code == "xxx":
                    collector.reject(turn, source, "no_label", "no majority emotion (xxx)")
                    continue
                gender = t.group(2)
                sentence = session_dir / "sentences" / "wav" / dialog / f"{turn}.wav"
                media: Path | None = sentence
                seg_start: float | None = None
                seg_end: float | None = None
                if not sentence.is_file():
                    whole = _dialog_media(session_dir, dialog)
                    if whole is not None:
                        media, seg_start, seg_end = whole, start, end
                collector.add(
                    source=source, utt_id=turn, media=media, label=normalise_label(code, LABELS), raw_label=code,
                    start=seg_start, end=seg_end, speaker=f"Ses{t.group(1)}{gender}", gender=gender, age=None,
                    session=f"Ses{t.group(1)}", text=_transcripts(session_dir, dialog, texts).get(turn),
                    official_split="test" if number == test_session else "train",
                )
