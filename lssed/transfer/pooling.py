"""Utterance embeddings -> one feature vector per participant.

DAIC-WOZ labels participants, not utterances, so the classifiers see one row per participant:
the mean and the standard deviation of its utterance embeddings, plus its number of
utterances (how much a participant said is itself informative, and it tells the classifier
how reliable the mean is). The participant is the ``speaker`` column of the embedding table.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from lssed.errors import UserError


class PoolingError(UserError, ValueError):
    """The embedding table cannot be pooled per participant; the message says why."""


@dataclass(frozen=True)
class Participants:
    """One row per participant, sorted by id."""

    ids: tuple[str, ...]
    features: np.ndarray  # (participants, 2 * dim + 1): mean, std, number of utterances
    labels: np.ndarray  # int8: 1 positive (depressed), 0 negative, -1 no label
    scores: np.ndarray  # float64 PHQ-8 score, NaN where absent
    splits: tuple[str, ...]
    n_utterances: np.ndarray  # int64
    dim: int  # the utterance embedding's dimension

    def __len__(self) -> int:
        return len(self.ids)

    def subset(self, mask: np.ndarray) -> "Participants":
        keep = np.flatnonzero(mask)
        return Participants(tuple(self.ids[i] for i in keep), self.features[keep], self.labels[keep],
                            self.scores[keep], tuple(self.splits[i] for i in keep), self.n_utterances[keep],
                            self.dim)


def embedding_matrix(table: pa.Table) -> np.ndarray:
    """The ``embedding`` column as a (rows, dim) float32 array; every row must have the same dim."""
    column = table.column("embedding").combine_chunks()
    if column.null_count:
        raise PoolingError(f"{column.null_count} rows have no embedding; recompute the embedding table")
    lengths = pc.list_value_length(column).to_numpy(zero_copy_only=False)
    if len(lengths) == 0:
        return np.zeros((0, 0), dtype=np.float32)
    if lengths.min() != lengths.max():
        raise PoolingError(f"embeddings have different lengths ({lengths.min()}..{lengths.max()}); "
                           "one table must come from one model and layer")
    flat = pc.list_flatten(column).to_numpy(zero_copy_only=False).astype(np.float32, copy=False)
    return flat.reshape(len(lengths), int(lengths[0]))


def _one(values: list, pid: str, what: str) -> object:
    distinct = {v for v in values if v is not None and not (isinstance(v, float) and np.isnan(v))}
    if len(distinct) > 1:
        raise PoolingError(f"participant {pid} has several {what} values {sorted(map(str, distinct))}; "
                           f"a participant's {what} must be one (check the corpus lists)")
    return next(iter(distinct)) if distinct else None


def pool_participants(table: pa.Table, *, positive_label: str = "depressed") -> Participants:
    """Mean and std pooling of ``table``'s embeddings per ``speaker`` (+ the utterance count).

    A participant's label is 1 when its ``label`` is ``positive_label``, 0 for any other label,
    -1 without one; its score is the ``score`` column (NaN when absent or null). Label, score
    and split must each be one value per participant.
    """
    if table.num_rows == 0:
        raise PoolingError("the embedding table has no rows: nothing to pool")
    speakers = table.column("speaker").to_pylist()
    if any(s is None or s == "" for s in speakers):
        raise PoolingError("some utterances have no speaker: participant-level pooling needs the participant "
                           "id in the `speaker` column")
    emb = embedding_matrix(table).astype(np.float64)
    labels = table.column("label").to_pylist()
    splits = table.column("split").to_pylist()
    scores = table.column("score").to_pylist() if "score" in table.column_names else [None] * table.num_rows
    ids, inverse = np.unique(np.asarray(speakers, dtype=object).astype(str), return_inverse=True)
    order = np.argsort(inverse, kind="stable")
    bounds = np.flatnonzero(np.diff(inverse[order])) + 1
    feats, labs, scs, sps, counts = [], [], [], [], []
    for pid, rows in zip(ids, np.split(order, bounds)):
        x = emb[rows]
        feats.append(np.concatenate([x.mean(axis=0), x.std(axis=0), [float(len(rows))]]))
        label = _one([labels[i] for i in rows], pid, "label")
        labs.append(-1 if label is None else int(label == positive_label))
        score = _one([scores[i] for i in rows], pid, "score")
        scs.append(np.nan if score is None else float(score))
        split = _one([splits[i] for i in rows], pid, "split")
        sps.append(str(split) if split is not None else "")
        counts.append(len(rows))
    return Participants(tuple(str(i) for i in ids), np.asarray(feats, dtype=np.float64),
                        np.asarray(labs, dtype=np.int8), np.asarray(scs, dtype=np.float64), tuple(sps),
                        np.asarray(counts, dtype=np.int64), int(emb.shape[1]))


def train_dev(participants: Participants, dev_split: str) -> tuple[Participants, Participants]:
    """(training participants, dev participants): dev is ``dev_split``; training is every other
    split except ``test`` when dev is ``val`` (then test is held out for a later, final score)."""
    splits = np.asarray(participants.splits, dtype=object)
    dev = splits == dev_split
    held_out = {"test"} if dev_split == "val" else set()
    train = ~dev & ~np.isin(splits, list(held_out))
    return participants.subset(train), participants.subset(dev)
