"""Splits: speaker-independent, stratified, deterministic, non-empty; official splits."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from lssed.corpora.splits import official_split, speaker_split, speakers_overlap


def test_demo_manifest_split_is_speaker_independent(demo_manifest: Path) -> None:
    rows = pq.read_table(demo_manifest).to_pylist()
    assert not speakers_overlap([r["speaker"] for r in rows], [r["split"] for r in rows])
    per_split = {s: {r["speaker"] for r in rows if r["split"] == s} for s in ("train", "val", "test")}
    assert [len(per_split[s]) for s in ("train", "val", "test")] == [4, 1, 1]
    for s in ("train", "val", "test"):  # every benchmark class in every split
        assert {r["label4"] for r in rows if r["split"] == s} >= {0, 1, 2, 3}


def _random_corpus(rng: np.random.Generator, n_speakers: int) -> tuple[list[str], list[str]]:
    groups, labels = [], []
    for s in range(n_speakers):
        n = int(rng.integers(1, 40))
        groups += [f"s{s}"] * n
        labels += list(rng.choice(["angry", "neutral", "happy", "sad", "other"], size=n, p=[0.15, 0.4, 0.2, 0.15, 0.1]))
    return groups, labels


@pytest.mark.parametrize("n_speakers", [3, 4, 5, 7, 12, 40])
def test_speaker_split_disjoint_nonempty_deterministic(n_speakers: int) -> None:
    rng = np.random.default_rng(n_speakers)
    for _ in range(5):
        groups, labels = _random_corpus(rng, n_speakers)
        split = speaker_split(groups, labels, seed=1)
        assert split == speaker_split(groups, labels, seed=1)
        assert not speakers_overlap(groups, split)
        counts = Counter(split)
        assert all(counts[s] > 0 for s in ("train", "val", "test")), counts
        assert counts["train"] >= max(counts["val"], counts["test"]) or n_speakers <= 4


def test_speaker_split_sizes_and_stratification_on_a_large_corpus() -> None:
    rng = np.random.default_rng(0)
    groups, labels = _random_corpus(rng, 200)
    split = speaker_split(groups, labels, seed=0, val_fraction=0.15, test_fraction=0.2)
    n = len(split)
    counts = Counter(split)
    assert abs(counts["test"] / n - 0.2) < 0.02 and abs(counts["val"] / n - 0.15) < 0.02
    overall = Counter(labels)
    for part in ("train", "val", "test"):
        got = Counter(lab for lab, s in zip(labels, split) if s == part)
        for lab, c in overall.items():
            assert abs(got[lab] / counts[part] - c / n) < 0.04, (part, lab)
    assert speaker_split(groups, labels, seed=1) != split  # the seed matters


def test_speaker_split_few_speakers() -> None:
    two = speaker_split(["a"] * 5 + ["b"] * 5, ["sad"] * 10)
    assert set(two) == {"train", "test"} and not speakers_overlap(["a"] * 5 + ["b"] * 5, two)
    with pytest.raises(ValueError, match="at least 2 speakers"):
        speaker_split(["a"] * 3, ["sad"] * 3)
    assert speaker_split(["a"] * 3, ["sad"] * 3, val_fraction=0, test_fraction=0) == ["train"] * 3
    with pytest.raises(ValueError, match="sum below 1"):
        speaker_split(["a", "b"], ["x", "y"], val_fraction=0.5, test_fraction=0.5)


def test_official_split_carves_val_from_train_speakers() -> None:
    groups = [f"s{i % 6}" for i in range(60)]
    labels = ["angry", "sad", "happy"] * 20
    official = ["test" if g == "s5" else "train" for g in groups]
    split = official_split(official, groups, labels, seed=0, val_fraction=0.15)
    assert not speakers_overlap(groups, split)
    assert {g for g, s in zip(groups, split) if s == "test"} == {"s5"}
    assert len({g for g, s in zip(groups, split) if s == "val"}) == 1
    with pytest.raises(ValueError, match="no official split"):
        official_split([None] * 60, groups, labels)


def test_assert_speaker_disjoint_names_the_shared_speakers() -> None:
    from lssed.corpora.splits import assert_speaker_disjoint
    from lssed.errors import UserError

    assert_speaker_disjoint(["a", "a", "b", None], ["train", "train", "test", "val"])  # clean: no error
    with pytest.raises(UserError, match=r"2 speaker\(s\).*s1 \(test/train\), s2 \(train/val\)"):
        assert_speaker_disjoint(["s1", "s1", "s2", "s2", "s3"], ["train", "test", "train", "val", "test"])
