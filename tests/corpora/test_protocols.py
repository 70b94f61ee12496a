"""Issue 12: per-corpus 4-class maps, multi-label rows, and the split protocols
(speaker | utterance | official | folds) on generated trees, through prepare and the CLI."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from lssed.cli import main
from lssed.corpora import CorpusError, prepare
from lssed.corpora.media import DEMO_SPECS, write_media
from lssed.corpora.splits import speakers_overlap
from tests.corpora.test_adapters import _iemocap

LABELS4 = ("angry", "neutral", "happy", "sad")


def _csv(root: Path, rows: list[tuple], header: str = "path,start,end,label,speaker,split") -> Path:
    """A generic corpus: every row a 0.5 s segment of one real wav; rows are (label, speaker[, split])."""
    spec = next(s for s in DEMO_SPECS if s.suffix == ".wav")
    seconds = 0.5 * len(rows) + 1
    t = np.arange(int(seconds * spec.sample_rate)) / spec.sample_rate
    write_media(root / "a.wav", (0.2 * np.sin(2 * np.pi * 220 * t))[None].astype(np.float32), spec)
    lines = [header]
    for i, row in enumerate(rows):
        fields = [str(f) for f in row] + [""] * (3 - len(row))
        lines.append(f"a.wav,{i * 0.5},{i * 0.5 + 0.4}," + ",".join(fields[: header.count(",") - 2]))
    path = root / "corpus.csv"
    path.write_text("\n".join(lines) + "\n")
    return path


def _speakers_corpus(root: Path, n_speakers: int, per_label: int = 2, split=None) -> Path:
    rows = [(lab, f"spk{s}", split(s) if split else "") for s in range(n_speakers) for lab in LABELS4
            for _ in range(per_label)]
    return _csv(root, rows)


def _rows(prepared) -> list[dict]:
    return prepared.manifest.to_pylist()


# ------------------------------------------------------------------------------------ labels

def test_generic_labels_keep_excited_out_and_map_multi_labels_only_to_one_class(tmp_path: Path) -> None:
    labels = ["angry", "excited", "happiness", "Anger; Excited", "angry;sad", "bored;sad", "exc", "happy;excited"]
    csv_path = _csv(tmp_path, [(lab, f"s{i % 3}") for i, lab in enumerate(labels)])
    got = [(r["label"], r["label4"]) for r in _rows(prepare("generic", csv_path, split="utterance"))]
    assert got == [("angry", 0), ("excited", None), ("happy", 2), ("angry;excited", 0), ("angry;sad", None),
                   ("bored;sad", 3), ("excited", None), ("happy;excited", 2)]
    merged = [r["label4"] for r in _rows(prepare("generic", csv_path, split="utterance", merge_excited=True))]
    assert merged == [0, 2, 2, None, None, 3, 2, 2]  # angry;excited now names two classes


def test_a_multi_label_row_with_an_unknown_part_is_rejected(tmp_path: Path) -> None:
    csv_path = _csv(tmp_path, [("angry;sarcastic", "s1"), ("sad", "s1"), ("sad", "s2"), ("sad", "s3")])
    prepared = prepare("generic", csv_path, split="utterance")
    assert prepared.manifest.num_rows == 3
    assert prepared.rejects.column("reason").to_pylist() == ["unknown_label: unknown label 'angry;sarcastic'"]


def test_iemocap_merges_excited_by_default_only(tmp_path: Path, make_media) -> None:
    root = _iemocap(tmp_path / "IEMOCAP", make_media)
    exc = [r for r in _rows(prepare("iemocap", root)) if r["label"] == "excited"]
    assert exc and {r["label4"] for r in exc} == {2}
    kept = [r for r in _rows(prepare("iemocap", root, merge_excited=False)) if r["label"] == "excited"]
    assert {r["label4"] for r in kept} == {None}


# ------------------------------------------------------------------------------------ splits

def test_rows_without_a_speaker_are_rejected_unless_the_split_is_per_utterance(tmp_path: Path, caplog) -> None:
    rows = [(lab, f"s{i % 4}" if i % 5 else "") for i, lab in enumerate(LABELS4 * 5)]
    csv_path = _csv(tmp_path, rows)
    prepared = prepare("generic", csv_path)
    assert prepared.rejects.num_rows == 4 and prepared.manifest.num_rows == 16
    assert all(r.startswith("no_speaker: ") for r in prepared.rejects.column("reason").to_pylist())
    leaky = prepare("generic", csv_path, split="utterance")
    assert leaky.manifest.num_rows == 20 and leaky.rejects.num_rows == 0
    assert set(leaky.split_counts()) == {"train", "val", "test"}
    assert "not speaker-independent" in caplog.text


def test_folds_are_whole_speakers_stratified_and_split_is_fold_zero(tmp_path: Path) -> None:
    csv_path = _speakers_corpus(tmp_path, 9)
    prepared = prepare("generic", csv_path, split="folds", folds=3, seed=1)
    rows = _rows(prepared)
    assert not speakers_overlap([r["speaker"] for r in rows], [str(r["fold"]) for r in rows])
    assert Counter(r["fold"] for r in rows) == {0: 24, 1: 24, 2: 24}  # 3 speakers of 8 rows each
    for f in range(3):  # every class in every fold
        assert {r["label4"] for r in rows if r["fold"] == f} == {0, 1, 2, 3}
    assert all(r["split"] == {0: "test", 1: "val", 2: "train"}[r["fold"]] for r in rows)
    again = _rows(prepare("generic", csv_path, split="folds", folds=3, seed=1))
    assert [r["fold"] for r in again] == [r["fold"] for r in rows]
    assert all(r["fold"] is None for r in _rows(prepare("generic", csv_path)))  # other protocols: null
    with pytest.raises(CorpusError, match="at least 10 speakers"):
        prepare("generic", csv_path, split="folds", folds=10)


def test_iemocap_keeps_sessions_whole_and_folds_are_sessions(tmp_path: Path, make_media, caplog) -> None:
    root = _iemocap(tmp_path / "IEMOCAP", make_media)  # sessions 1, 2 and 5
    rows = _rows(prepare("iemocap", root))
    by_session = {}
    for r in rows:
        by_session.setdefault(r["session"], set()).add(r["split"])
    assert all(len(parts) == 1 for parts in by_session.values())  # both dialogue partners on one side
    folds = _rows(prepare("iemocap", root, split="folds"))  # corpus.folds=5, but only 3 sessions here
    assert {(r["session"], r["fold"]) for r in folds} == {("Ses01", 0), ("Ses02", 1), ("Ses05", 2)}
    assert "folds are its 3 sessions" in caplog.text


def test_official_train_test_split_gets_val_carved_from_training_speakers(tmp_path: Path) -> None:
    csv_path = _speakers_corpus(tmp_path, 8, split=lambda s: "test" if s >= 6 else "train")
    rows = _rows(prepare("generic", csv_path, split="official", val_fraction=0.15))
    parts = {p: {r["speaker"] for r in rows if r["split"] == p} for p in ("train", "val", "test")}
    assert parts["test"] == {"spk6", "spk7"}  # never carved from test
    assert parts["val"] and not parts["val"] & parts["train"] and parts["val"] <= {f"spk{i}" for i in range(6)}


def test_an_official_split_sharing_speakers_is_an_error_naming_them(tmp_path: Path) -> None:
    csv_path = _csv(tmp_path, [("sad", "p1", "train"), ("sad", "p1", "test"), ("sad", "p2", "val"),
                               ("angry", "p3", "train")])
    with pytest.raises(CorpusError, match=r"1 speaker\(s\) are in more than one split part: p1 \(test/train\)"):
        prepare("generic", csv_path, split="official")


# ------------------------------------------------------------------------------------ the command

def test_prepare_cli_takes_config_set_name_and_split(tmp_path: Path, capsys) -> None:
    csv_path = _speakers_corpus(tmp_path, 6)
    config = tmp_path / "c.yaml"
    config.write_text(f"corpus:\n  name: generic\n  root: {csv_path}\n  split: folds\n")
    out = tmp_path / "m.parquet"
    assert main(["prepare", "--config", str(config), "--set", "corpus.folds=3", "--name", "mine",
                 "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "corpus mine" in text and "splits (folds)" in text and "folds: 0: 16 utts, 1: 16 utts, 2: 16 utts" in text
    table = pq.read_table(out)
    assert set(table.column("corpus").to_pylist()) == {"mine"}
    assert set(table.column("fold").to_pylist()) == {0, 1, 2}
    # an option overrides the config; a bad setting is named before anything is read
    assert main(["prepare", "--config", str(config), "--split", "speaker", "--out", str(out)]) == 0
    assert set(pq.read_table(out).column("fold").to_pylist()) == {None}
    assert main(["prepare", "--config", str(config), "--set", "corpus.folds=2", "--out", str(out)]) == 2
    assert main(["prepare", "generic", str(csv_path), "--name", "bad/name", "--out", str(out)]) == 2
    assert main(["prepare", "demo", str(csv_path), "--split", "official", "--out", str(out)]) == 2  # it has none
