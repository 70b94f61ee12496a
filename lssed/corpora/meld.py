"""MELD (Multimodal EmotionLines Dataset).

About
-----
Source: https://affective-meld.github.io/ (clips from the TV series *Friends*; released under
GPL-3.0 for research). ~13.7k utterances in ~1.4k dialogues, 7 emotions and 3 sentiments.

Layout read: ``{train,dev,test}_sent_emo.csv`` in ROOT (columns ``Sr No., Utterance, Speaker,
Emotion, Sentiment, Dialogue_ID, Utterance_ID, Season, Episode, StartTime, EndTime``) and
clips ``dia{D}_utt{U}.mp4`` in the split's clip directory (``train_splits/``,
``dev_splits_complete/``, ``output_repeated_splits_test/`` as released, or ``train/``,
``dev/``, ``test/``, or ROOT itself). Each clip is one utterance (start/end null: the CSV's
StartTime/EndTime locate it in the episode, not in the clip). A few clips of the release are
missing: those rows are rejected.

Labels: neutral, joy -> happy, sadness -> sad, anger -> angry, surprise -> surprised,
fear, disgust -> disgusted. Speaker: the character's name (gender unknown). Session:
``<split>_dia<D>``. Ids: ``<split>_dia<D>_utt<U>`` (dialogue ids repeat across splits).

Official split: the release's train/dev/test files (dev -> val). It is split by dialogue, not
by speaker: the main characters speak in all three parts, so this protocol is *not*
speaker-independent (``split="speaker"`` is).

Citation: S. Poria et al., "MELD: A Multimodal Multi-Party Dataset for Emotion Recognition
in Conversations", ACL 2019.
"""

from __future__ import annotations

import csv
import logging
from pathlib import Path

from lssed.corpora.base import CorpusError, RowCollector, normalise_label

log = logging.getLogger(__name__)

# The official (dialogue) split shares speakers between its parts: prepare warns, not fails.
OFFICIAL_SPEAKER_DISJOINT = False

LABELS = {"neutral": "neutral", "joy": "happy", "sadness": "sad", "anger": "angry", "surprise": "surprised",
          "fear": "fear", "disgust": "disgusted"}
FILES = {"train": "train_sent_emo.csv", "dev": "dev_sent_emo.csv", "test": "test_sent_emo.csv"}
CLIP_DIRS = {
    "train": ("train_splits", "train"),
    "dev": ("dev_splits_complete", "dev_splits", "dev"),
    "test": ("output_repeated_splits_test", "test_splits", "test"),
}
REQUIRED = ("Utterance", "Speaker", "Emotion", "Dialogue_ID", "Utterance_ID")
OFFICIAL = {"train": "train", "dev": "val", "test": "test"}


def read_meld(root: Path, collector: RowCollector) -> None:
    """Read the three MELD CSVs (whichever exist) and their clips into ``collector``."""
    present = {part: root / name for part, name in FILES.items() if (root / name).is_file()}
    if not present:
        raise CorpusError(f"meld: none of {list(FILES.values())} found in {root}")
    for part, csv_path in present.items():
        clip_dirs = [root / d for d in CLIP_DIRS[part] if (root / d).is_dir()] + [root]
        with csv_path.open(newline="", encoding="utf-8", errors="replace") as fh:
            reader = csv.reader(fh)
            header = [h.strip() for h in next(reader, [])]
            missing = [c for c in REQUIRED if c not in header]
            if missing:
                raise CorpusError(f"meld: {csv_path.name} lacks column(s) {missing}; found {header}")
            for line_no, values in enumerate(reader, start=2):
                if not values or all(not v.strip() for v in values):
                    continue
                source = f"{csv_path.name}:{line_no}"
                if len(values) != len(header):
                    collector.reject(None, source, "field_count", f"{len(values)} fields, the header has {len(header)}")
                    continue
                row = dict(zip(header, (v.strip() for v in values)))
                try:
                    dia, utt = int(row["Dialogue_ID"]), int(row["Utterance_ID"])
                except ValueError:
                    collector.reject(None, source, "unparsable_line",
                                     f"Dialogue_ID/Utterance_ID {row['Dialogue_ID']!r}/{row['Utterance_ID']!r} "
                                     "are not integers")
                    continue
                name = f"dia{dia}_utt{utt}.mp4"
                media = next((d / name for d in clip_dirs if (d / name).is_file()), clip_dirs[0] / name)
                collector.add(
                    source=source, utt_id=f"{part}_dia{dia}_utt{utt}", media=media,
                    label=normalise_label(row["Emotion"], LABELS), raw_label=row["Emotion"],
                    speaker=row["Speaker"] or None, session=f"{part}_dia{dia}", text=row["Utterance"] or None,
                    official_split=OFFICIAL[part],
                )
