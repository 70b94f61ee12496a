"""Label sets: LSSED's 11 emotions and the 4-class benchmark (docs/paper.md, "Labels").

Benchmark indices follow the authors' released models: Angry=0, Neutral=1, Happy=2, Sad=3.
Corpus adapters map their own labels onto ``LSSED_LABELS`` names first; ``label4_index``
then gives the benchmark index or ``None`` for labels outside the four classes.

The 4-class map is a per-corpus convention (docs/corpora.md has the table): LSSED and
generic corpora keep only angry/neutral/happy/sad (LSSED's ``excited`` is a frequent label of
its own, so merging it would change the paper's Table 5); IEMOCAP's community convention
merges ``excited`` into happy (``merge_excited=True``). A multi-label utterance
(``"angry;excited"``) gets a benchmark class only when its labels name exactly one.
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

# Separates the labels of a multi-label utterance in the ``label`` column ("angry;excited").
MULTI_LABEL_SEPARATOR = ";"


def split_labels(label: str | None) -> list[str]:
    """The labels of a (possibly multi-label) ``label`` value: ``"a;b"`` -> ``["a", "b"]``."""
    if not label:
        return []
    return [part.strip() for part in str(label).split(MULTI_LABEL_SEPARATOR) if part.strip()]


def label4_index(label: str | None, *, merge_excited: bool = False) -> int | None:
    """The benchmark index of a full-set label, or None if it is outside the four classes.

    ``merge_excited``: count ``excited`` as happy (IEMOCAP's convention; off for LSSED and
    generic corpora). A multi-label value ``"a;b"`` gets an index only when its labels map
    to exactly one benchmark class (``"angry;bored"`` -> angry; ``"angry;sad"`` -> None; with
    the merge, ``"happy;excited"`` -> happy, as both name the same class).
    """
    found = set()
    for name in split_labels(label):
        if merge_excited and name == "excited":
            name = "happy"
        if name in BENCHMARK_CLASSES:
            found.add(BENCHMARK_CLASSES.index(name))
    return found.pop() if len(found) == 1 else None
