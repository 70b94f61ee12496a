"""RAVDESS (Ryerson Audio-Visual Database of Emotional Speech and Song).

About
-----
Source: https://zenodo.org/record/1188976 (CC BY-NC-SA 4.0). 24 actors (12 female, 12
male) speak two fixed statements, and sing them, in 8 emotions at two intensities.

Layout read: every ``MM-VV-EE-II-SS-RR-AA.wav|mp4`` under ROOT (any folders): modality MM
(01 audio-video, 02 video only, 03 audio only), vocal channel VV (01 speech, 02 song),
emotion EE, intensity II (01 normal, 02 strong), statement SS (01 "Kids are talking by the
door", 02 "Dogs are sitting by the door"), repetition RR, actor AA (odd = male).
Video-only files have no audio and are rejected; when a recording exists as both an
audio-only wav and an audio-video mp4 the wav is kept and the mp4 is rejected as its copy.

Labels: 01 neutral, 02 calm (RAVDESS's own, outside the benchmark), 03 happy, 04 sad,
05 angry, 06 fearful -> fear, 07 disgust -> disgusted, 08 surprised. Speaker ``Actor_AA``;
session ``Actor_AA_speech|song``; age not given per actor (the actors were 21-33).

Official split: none (use the speaker split).

Citation: S. R. Livingstone and F. A. Russo, "The Ryerson Audio-Visual Database of
Emotional Speech and Song (RAVDESS)", PLoS ONE 13(5), 2018.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

from lssed.corpora.base import CorpusError, RowCollector

log = logging.getLogger(__name__)

EMOTIONS = {1: "neutral", 2: "calm", 3: "happy", 4: "sad", 5: "angry", 6: "fear", 7: "disgusted", 8: "surprised"}
STATEMENTS = {1: "Kids are talking by the door", 2: "Dogs are sitting by the door"}
_NAME = re.compile(r"^(\d{2})-(\d{2})-(\d{2})-(\d{2})-(\d{2})-(\d{2})-(\d{2})$")


def read_ravdess(root: Path, collector: RowCollector) -> None:
    """Read every RAVDESS file under ``root`` into ``collector``."""
    files = sorted(p for p in root.rglob("*") if p.suffix.lower() in (".wav", ".mp4") and p.is_file())
    if not files:
        raise CorpusError(f"ravdess: no .wav or .mp4 files under {root}")
    parsed: list[tuple[Path, tuple[int, ...] | None]] = []
    audio_only: set[str] = set()
    for path in files:
        m = _NAME.match(path.stem)
        fields = tuple(int(g) for g in m.groups()) if m else None
        parsed.append((path, fields))
        if fields and fields[0] == 3:
            audio_only.add(path.stem[3:])
    for path, fields in parsed:
        source = str(path.relative_to(root))
        if fields is None:
            collector.reject(None, source, "bad_name", f"file name {path.name!r} is not MM-VV-EE-II-SS-RR-AA.wav|mp4")
            continue
        modality, channel, emotion, intensity, statement, repetition, actor = fields
        key = path.stem[3:]
        utt_id = f"{key}"
        if modality == 2:
            collector.reject(utt_id, source, "no_audio", "video-only recording (modality 02) has no audio")
            continue
        if modality == 1 and key in audio_only:
            collector.reject(utt_id, source, "duplicate_recording",
                             f"audio-video copy of 03-{key}.wav (the audio-only file is used)")
            continue
        if modality not in (1, 3) or channel not in (1, 2) or not 1 <= actor <= 24:
            collector.reject(utt_id, source, "bad_name",
                             f"file name {path.name!r}: modality, vocal channel or actor out of range")
            continue
        vocal = "speech" if channel == 1 else "song"
        collector.add(
            source=source, utt_id=utt_id, media=path, label=EMOTIONS.get(emotion), raw_label=f"{emotion:02d}",
            speaker=f"Actor_{actor:02d}", gender="M" if actor % 2 else "F", session=f"Actor_{actor:02d}_{vocal}",
            text=STATEMENTS.get(statement),
        )
