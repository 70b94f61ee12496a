"""Label sets: LSSED's 11 emotions and the 4-class benchmark (docs/paper.md, "Labels").

Benchmark indices follow the authors' released models: Angry=0, Neutral=1, Happy=2, Sad=3.
Corpus adapters map their own labels onto ``LSSED_LABELS`` names first; ``label4_index``
then gives the benchmark index or ``None`` for labels outside the four classes.
"""

from __future__ import annotations

LSSED_LABELS: tuple[str, ...] = (
    "angry",
    "neutral",
    "happy",
    "sad",
    "disappointed",
    "bored",
    "disgusted",
    "excited",
    "fear",
    "surprised",
    "other",
)

BENCHMARK_CLASSES: tuple[str, ...] = ("angry", "neutral", "happy", "sad")

# Merges into the 4-class benchmark beyond the identity (IEMOCAP convention: excited -> happy).
_LABEL4_MERGES = {"excited": "happy"}


def label4_index(label: str | None) -> int | None:
    """The benchmark index of a full-set label, or None if it is outside the four classes."""
    if label is None:
        return None
    name = _LABEL4_MERGES.get(label, label)
    try:
        return BENCHMARK_CLASSES.index(name)
    except ValueError:
        return None
