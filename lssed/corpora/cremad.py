"""CREMA-D (Crowd-sourced Emotional Multimodal Actors Dataset).

About
-----
Source: https://github.com/CheyneyComputerScience/CREMA-D (Open Database License / Database
Contents License). 7,442 clips of 91 actors (48 male, 43 female, aged 20-74) saying 12
sentences in 6 emotions at up to 4 levels.

Layout read: ``AudioWAV/<actor>_<sentence>_<emotion>_<level>.wav`` (e.g. ``1001_DFA_ANG_XX``;
if there is no ``AudioWAV/``, the videos ``VideoFlash/*.flv``) and the actors'
``VideoDemographics.csv`` (``ActorID, Age, Sex, Race, Ethnicity``) in ROOT. The release holds
a few empty or broken files: they are rejected.

Labels: ANG -> angry, DIS -> disgusted, FEA -> fear, HAP -> happy, NEU -> neutral, SAD -> sad
(the level LO/MD/HI/XX is not kept). Speaker: the actor id; gender from Sex; age: the actor's
age in years as given. Session: the actor id. Text: the sentence the code names.

Official split: none (use the speaker split).

Citation: H. Cao et al., "CREMA-D: Crowd-sourced Emotional Multimodal Actors Dataset",
IEEE Transactions on Affective Computing 5(4), 2014.
"""

from __future__ import annotations

import csv
import logging
import re
from pathlib import Path

from lssed.corpora.base import CorpusError, RowCollector, normalise_gender

log = logging.getLogger(__name__)

EMOTIONS = {"ANG": "angry", "DIS": "disgusted", "FEA": "fear", "HAP": "happy", "NEU": "neutral", "SAD": "sad"}
SENTENCES = {
    "IEO": "It's eleven o'clock.",
    "TIE": "That is exactly what happened.",
    "IOM": "I'm on my way to the meeting.",
    "IWW": "I wonder what this is about.",
    "TAI": "The airplane is almost full.",
    "MTI": "Maybe tomorrow it will be cold.",
    "IWL": "I would like a new alarm clock.",
    "ITH": "I think I have a doctor's appointment.",
    "DFA": "Don't forget a jacket.",
    "ITS": "I think I've seen this before.",
    "TSI": "The surface is slick.",
    "WSI": "We'll stop in a couple of minutes.",
}
_NAME = re.compile(r"^(\d{4})_([A-Z]{3})_([A-Z]{3})_([A-Z]{2})$")


def _demographics(root: Path) -> dict[str, tuple[str | None, str | None]]:
    path = root / "VideoDemographics.csv"
    if not path.is_file():
        log.warning("cremad: %s not found: gender and age will be empty", path)
        return {}
    out: dict[str, tuple[str | None, str | None]] = {}
    with path.open(newline="", encoding="utf-8-sig", errors="replace") as fh:
        reader = csv.DictReader(fh)
        missing = [c for c in ("ActorID", "Age", "Sex") if c not in (reader.fieldnames or [])]
        if missing:
            raise CorpusError(f"cremad: {path.name} lacks column(s) {missing}; found {reader.fieldnames}")
        for row in reader:
            out[row["ActorID"].strip()] = (normalise_gender(row["Sex"]), row["Age"].strip() or None)
    return out


def read_cremad(root: Path, collector: RowCollector) -> None:
    """Read CREMA-D's clips under ``root`` into ``collector``."""
    audio_dir, video_dir = root / "AudioWAV", root / "VideoFlash"
    if audio_dir.is_dir():
        files = sorted(p for p in audio_dir.iterdir() if p.suffix.lower() == ".wav")
    elif video_dir.is_dir():
        files = sorted(p for p in video_dir.iterdir() if p.suffix.lower() == ".flv")
    else:
        raise CorpusError(f"cremad: neither AudioWAV/ nor VideoFlash/ in {root}")
    demographics = _demographics(root)
    for path in files:
        source = str(path.relative_to(root))
        m = _NAME.match(path.stem)
        if not m:
            collector.reject(None, source, "bad_name",
                             f"file name {path.name!r} is not <actor>_<sentence>_<emotion>_<level>")
            continue
        actor, sentence, emotion, _level = m.groups()
        gender, age = demographics.get(actor, (None, None))
        collector.add(
            source=source, utt_id=path.stem, media=path, label=EMOTIONS.get(emotion), raw_label=emotion,
            speaker=actor, gender=gender, age=age, session=actor, text=SENTENCES.get(sentence),
        )
