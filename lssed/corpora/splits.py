"""Speaker-independent, label-stratified train/val/test splits, k-fold splits, official splits.

LSSED itself splits 80/20 with each emotion's share equal in both parts; we add that no
speaker may be in two parts (the usual SER protocol) and carve validation from training
speakers. Speakers are assigned whole: many seeded random orders of the speakers are tried,
each filled greedily up to the target fractions of utterances, and the order whose parts
best match the overall label distribution and the target sizes wins. The result depends
only on the rows and the seed.
"""

from __future__ import annotations

import logging
from typing import Sequence

import numpy as np

from lssed.errors import UserError

log = logging.getLogger(__name__)

_TRIES = 256


def _group_label_counts(groups: Sequence[str], labels: Sequence[str | None], index: dict[str, int]) -> np.ndarray:
    """(groups, labels) row counts: how many rows of each label each group (speaker) has."""
    label_names = sorted({str(lab) for lab in labels})
    lab_index = {lab: i for i, lab in enumerate(label_names)}
    counts = np.zeros((len(index), len(label_names)), dtype=np.float64)
    for g, lab in zip(groups, labels):
        counts[index[g], lab_index[str(lab)]] += 1
    return counts


def fold_split(
    groups: Sequence[str],
    labels: Sequence[str | None],
    *,
    folds: int,
    seed: int = 0,
    fixed: bool = False,
) -> list[int]:
    """A fold 0..k-1 per row: whole groups (speakers) per fold, label-stratified, sizes ~N/k.

    ``fixed``: each group is one fold, in sorted group order (IEMOCAP's sessions: leave one
    session out); ``folds`` must then equal the number of groups. Otherwise many seeded random
    group orders are tried, each group going to the fold with the fewest rows so far, and the
    assignment whose folds best match the overall label distribution and equal sizes wins.
    Deterministic for the rows and the seed. A run with ``train.fold = f`` tests on fold f,
    validates on fold (f+1) mod k and trains on the rest.
    """
    names = sorted(set(groups))
    if folds < 3:
        raise ValueError(f"k-fold splits need folds >= 3 (a test, a validation and a training fold), got {folds}")
    if len(names) < folds:
        raise ValueError(f"{folds} folds need at least {folds} speakers (groups), this corpus has {len(names)}; "
                         f"set corpus.folds <= {len(names)}")
    index = {g: i for i, g in enumerate(names)}
    if fixed:
        if len(names) != folds:
            raise ValueError(f"this corpus's folds are its {len(names)} groups ({', '.join(names)}); "
                             f"set corpus.folds={len(names)}")
        return [index[g] for g in groups]
    n_rows = len(groups)
    counts = _group_label_counts(groups, labels, index)
    sizes = counts.sum(axis=1)
    overall = counts.sum(axis=0) / max(n_rows, 1)
    rng = np.random.default_rng(seed)
    best, best_cost = None, np.inf
    for _ in range(_TRIES):
        order = rng.permutation(len(names))
        # the largest groups first (random among equals) fill the folds most evenly
        order = order[np.argsort(-sizes[order], kind="stable")] if rng.random() < 0.5 else order
        fold_of = np.zeros(len(names), dtype=np.int64)
        fold_rows = np.zeros(folds)
        fold_groups = np.zeros(folds, dtype=np.int64)
        for g in order:
            empty = np.flatnonzero(fold_groups == 0)
            f = int(empty[0]) if empty.size >= len(names) - int(fold_groups.sum()) else int(np.argmin(fold_rows))
            fold_of[g] = f
            fold_rows[f] += sizes[g]
            fold_groups[f] += 1
        cost = 0.0
        for f in range(folds):
            mask = fold_of == f
            n_f = sizes[mask].sum()
            dist = counts[mask].sum(axis=0) / n_f
            cost += abs(n_f / n_rows - 1 / folds) * 2 + np.abs(dist - overall).sum()
        if cost < best_cost - 1e-12:
            best, best_cost = fold_of, cost
    assert best is not None
    return [int(best[index[g]]) for g in groups]


def split_of_fold(fold: int, test_fold: int, folds: int) -> str:
    """The part of a row in fold ``fold`` when ``test_fold`` is tested: test f, val (f+1) mod k, else train."""
    if fold == test_fold:
        return "test"
    return "val" if fold == (test_fold + 1) % folds else "train"


def _assign(order: np.ndarray, sizes: np.ndarray, targets: Sequence[float], total: int, minimum: Sequence[int]) -> np.ndarray:
    """Fill parts 1.. (test, val) greedily along ``order``; the rest is part 0 (train)."""
    part = np.zeros(order.size, dtype=np.int64)
    pos = 0
    n = order.size
    for k, target in enumerate(targets, start=1):
        reserve = minimum[0] + sum(minimum[k + 1 :])  # speakers that train and later parts still need
        count, taken = 0.0, 0
        while pos < n - reserve and (count < target * total or taken < minimum[k]):
            if taken >= minimum[k] and count + sizes[order[pos]] / 2 > target * total:
                break  # this speaker would overshoot the target by more than it helps
            part[order[pos]] = k
            count += sizes[order[pos]]
            taken += 1
            pos += 1
    return part


def speaker_split(
    groups: Sequence[str],
    labels: Sequence[str | None],
    *,
    seed: int = 0,
    val_fraction: float = 0.15,
    test_fraction: float = 0.2,
) -> list[str]:
    """``train``/``val``/``test`` per row; no group (speaker) in two parts.

    With >= 3 speakers every part with a non-zero fraction gets at least one speaker;
    with 2, val is left empty (logged); with 1, this raises.
    """
    if not 0 <= val_fraction < 1 or not 0 <= test_fraction < 1 or val_fraction + test_fraction >= 1:
        raise ValueError(
            f"split fractions must be in [0, 1) and sum below 1 (val_fraction={val_fraction}, "
            f"test_fraction={test_fraction})"
        )
    n_rows = len(groups)
    if n_rows == 0:
        return []
    names = sorted(set(groups))
    index = {g: i for i, g in enumerate(names)}
    counts = _group_label_counts(groups, labels, index)
    sizes = counts.sum(axis=1)
    overall = counts.sum(axis=0) / n_rows

    n_groups = len(names)
    want_test, want_val = test_fraction > 0, val_fraction > 0
    if n_groups < 2 and (want_test or want_val):
        raise ValueError(
            f"a speaker-independent split needs at least 2 speakers, this corpus has {n_groups} "
            f"({names[0]}); add a speaker column, or set test_fraction=0 and val_fraction=0"
        )
    min_test = 1 if want_test else 0
    min_val = 1 if want_val and n_groups >= 2 + min_test else 0
    if want_val and not min_val:
        log.warning("only %d speakers: the validation split is empty (train and test only)", n_groups)
        want_val = False
    targets = (test_fraction, val_fraction if want_val else 0.0)
    minimum = (1, min_test, min_val)  # train, test, val

    rng = np.random.default_rng(seed)
    best, best_cost = None, np.inf
    for _ in range(_TRIES):
        order = rng.permutation(n_groups)
        part = _assign(order, sizes, targets, n_rows, minimum)
        cost = 0.0
        for k, target in enumerate((1 - sum(targets), *targets)):
            mask = part == k
            n_k = sizes[mask].sum()
            if n_k == 0:
                cost += 0 if target == 0 else 10.0
                continue
            dist = counts[mask].sum(axis=0) / n_k
            cost += abs(n_k / n_rows - target) * 2 + np.abs(dist - overall).sum() * (0.5 if k == 0 else 1.0)
        if cost < best_cost - 1e-12:
            best, best_cost = part, cost
    assert best is not None
    part_names = ("train", "test", "val")
    return [part_names[best[index[g]]] for g in groups]


def official_split(
    official: Sequence[str | None],
    groups: Sequence[str],
    labels: Sequence[str | None],
    *,
    seed: int = 0,
    val_fraction: float = 0.15,
) -> list[str]:
    """Apply a corpus's own split; when it has no validation part, carve one from the
    training speakers (``val_fraction`` of all rows)."""
    missing = sum(1 for o in official if o not in ("train", "val", "test"))
    if missing:
        raise ValueError(f"{missing} rows have no official split; use split='speaker' for this corpus")
    out = list(official)
    if "val" not in out and val_fraction > 0:
        train_idx = [i for i, o in enumerate(out) if o == "train"]
        if len({groups[i] for i in train_idx}) < 2:
            log.warning("fewer than 2 training speakers: no validation split carved")
        else:
            share = min(0.9, val_fraction * len(out) / len(train_idx))
            sub = speaker_split([groups[i] for i in train_idx], [labels[i] for i in train_idx], seed=seed,
                                val_fraction=0.0, test_fraction=share)
            for i, s in zip(train_idx, sub):
                out[i] = "val" if s == "test" else "train"
    return [str(o) for o in out]


def speakers_overlap(groups: Sequence[str | None], splits: Sequence[str | None]) -> dict[str, set[str]]:
    """Groups (speakers) found in more than one split part: empty for a clean protocol.

    Rows without a speaker or without a split part are not counted (they belong to no part
    or to no one)."""
    seen: dict[str, set[str]] = {}
    for g, s in zip(groups, splits):
        if g is None or s is None:
            continue
        seen.setdefault(str(g), set()).add(str(s))
    return {g: parts for g, parts in seen.items() if len(parts) > 1}


class SpeakerOverlapError(UserError):
    """Speakers found in more than one of train/val/test: the results would not be speaker-independent."""


def assert_speaker_disjoint(speakers: Sequence[str | None], splits: Sequence[str | None], *, what: str = "") -> None:
    """Raise :class:`SpeakerOverlapError` (a UserError) naming the speakers in several split parts.

    ``speakers`` and ``splits`` are parallel per-row sequences (e.g. a manifest's or the shards'
    ``speaker`` and ``split`` columns); ``what`` names the data in the message.
    """
    if len(speakers) != len(splits):
        raise ValueError(f"assert_speaker_disjoint: {len(speakers)} speakers but {len(splits)} splits")
    overlap = speakers_overlap(speakers, splits)
    if overlap:
        names = sorted(overlap)
        shown = ", ".join(f"{g} ({'/'.join(sorted(overlap[g]))})" for g in names[:10])
        more = f" and {len(names) - 10} more" if len(names) > 10 else ""
        raise SpeakerOverlapError(
            f"{what + ': ' if what else ''}{len(names)} speaker(s) are in more than one split part: {shown}{more}; "
            "the split is not speaker-independent: prepare the corpus again with corpus.split=speaker, "
            "official or folds (utterance splits leak speakers by design)"
        )
