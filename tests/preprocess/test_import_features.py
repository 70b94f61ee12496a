"""`lssed import-features`: per-utterance .npy spectrograms + a label CSV -> the same shards."""

from __future__ import annotations

import numpy as np
import pyarrow.parquet as pq
import pytest

from lssed.cli import main
from lssed.config import load_config
from lssed.preprocess.import_features import import_features, read_labels
from lssed.schema import SHARD_SCHEMA
from lssed.storage import Storage


def _write_set(root, transposed: bool):
    rng = np.random.default_rng(0)
    arrays = {}
    for k, frames in enumerate([40, 7, 123]):
        a = rng.standard_normal((128, frames)).astype(np.float32)
        arrays[f"u{k}"] = a
        np.save(root / f"u{k}.npy", a.T if transposed else a)
    np.save(root / "flat.npy", np.zeros(50, np.float32))  # 1-D: wrong shape
    np.save(root / "narrow.npy", np.zeros((64, 10) if not transposed else (10, 64), np.float32))
    (root / "junk.npy").write_bytes(b"not numpy")
    csv = root / "labels.csv"
    csv.write_text("utt_id,label,speaker,gender,split\n"
                   "u0,Angry,s1,F,train\nu1,excited,s2,m,test\nu2,bored,s1,F,train\n"
                   "flat,sad,s3,M,train\nnarrow,sad,s3,M,train\njunk,happy,s5,M,val\nmissing,neutral,s4,F,test\n")
    return arrays, csv


@pytest.mark.parametrize("transposed", [False, True])
def test_import_makes_shards_and_quarantines_bad_arrays(tmp_path, capsys, transposed):
    arrays, csv = _write_set(tmp_path, transposed)
    out = tmp_path / "out"
    args = ["import-features", str(tmp_path), str(csv), "--out", str(out)] + (["--transposed"] if transposed else [])
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "7 in, 3 in shards, 4 quarantined" in printed
    uri = printed.splitlines()[0]
    shards = pq.read_table(f"{uri}/shards")
    assert shards.schema.remove_metadata() == SHARD_SCHEMA
    rows = {r["utt_id"]: r for r in shards.to_pylist()}
    assert set(rows) == {"u0", "u1", "u2"}
    for utt, a in arrays.items():
        r = rows[utt]
        assert (r["n_mels"], r["n_frames"]) == a.shape
        np.testing.assert_array_equal(np.asarray(r["logmel"], np.float32).reshape(a.shape), a)
        assert r["waveform"] is None
    # LSSED's convention: excited is a label of its own (no benchmark class), as is bored
    assert [rows[u]["label4"] for u in ("u0", "u1", "u2")] == [0, None, None]
    assert [rows[u]["split"] for u in ("u0", "u1", "u2")] == ["train", "test", "train"]
    assert rows["u1"]["gender"] == "M" and rows["u0"]["label"] == "angry"
    quarantine = pq.read_table(f"{uri}/quarantine")
    reasons = dict(zip(quarantine.column("utt_id").to_pylist(),
                       [e.split(":")[0] for e in quarantine.column("error").to_pylist()]))
    assert reasons == {"flat": "bad_shape", "narrow": "n_mels_mismatch", "junk": "unreadable", "missing": "missing_file"}
    # rerun: committed, skipped
    assert main(args) == 0 and "skipped" in capsys.readouterr().out


def test_label_csv_must_name_its_columns(tmp_path):
    bad = tmp_path / "l.csv"
    bad.write_text("id,emotion\na,angry\n")
    with pytest.raises(ValueError, match="utt_id,label"):
        read_labels(bad)


def test_wrong_orientation_says_to_transpose(tmp_path):
    np.save(tmp_path / "a.npy", np.zeros((30, 128), np.float32))  # (frames, n_mels) without the flag
    (tmp_path / "l.csv").write_text("utt_id,label\na,sad\n")
    with pytest.raises(ValueError, match="--transposed"):
        import_features(load_config(), tmp_path, tmp_path / "l.csv", out=Storage(str(tmp_path / "o")))


def _write_arrays(root, ids, frames: int = 20):
    for k, utt in enumerate(ids):
        np.save(root / f"{utt}.npy", np.full((128, frames + k), float(k), np.float32))


def _shard_rows(fs):
    return {r["utt_id"]: r for r in pq.read_table(f"{fs.uri}/shards").to_pylist()}


def test_train_test_only_split_gets_val_carved_from_training_speakers(tmp_path):
    # LSSED's own partition is 80/20 train/test: without a val part nothing could be selected
    lines = ["utt_id,label,speaker,split"]
    for spk in range(8):
        part = "test" if spk >= 6 else "train"
        lines += [f"s{spk}_{i},{['angry', 'neutral', 'happy', 'sad'][i % 4]},spk{spk},{part}" for i in range(6)]
    (tmp_path / "labels.csv").write_text("\n".join(lines) + "\n")
    _write_arrays(tmp_path, [line.split(",")[0] for line in lines[1:]])
    fs = import_features(load_config(), tmp_path, tmp_path / "labels.csv", out=Storage(str(tmp_path / "o")))
    rows = _shard_rows(fs)
    by_split = {s: {r["speaker"] for r in rows.values() if r["split"] == s} for s in ("train", "val", "test")}
    assert by_split["test"] == {"spk6", "spk7"}  # test untouched
    assert by_split["val"] and by_split["val"] <= {f"spk{i}" for i in range(6)}  # carved from train speakers
    assert not (by_split["val"] & by_split["train"])  # whole speakers
    assert all(r["fold"] is None for r in rows.values())


def test_import_without_split_column_splits_by_speaker(tmp_path):
    lines = ["utt_id,label,speaker"] + [f"u{s}_{i},sad,p{s}" for s in range(6) for i in range(3)]
    (tmp_path / "labels.csv").write_text("\n".join(lines) + "\n")
    _write_arrays(tmp_path, [line.split(",")[0] for line in lines[1:]])
    rows = _shard_rows(import_features(load_config(), tmp_path, tmp_path / "labels.csv",
                                       out=Storage(str(tmp_path / "o"))))
    parts = {r["speaker"]: set() for r in rows.values()}
    for r in rows.values():
        parts[r["speaker"]].add(r["split"])
    assert all(len(p) == 1 for p in parts.values())  # speaker-independent
    assert {p for ps in parts.values() for p in ps} == {"train", "val", "test"}


def test_multi_label_rows_keep_both_labels_and_map_only_when_one_class(tmp_path):
    lines = ["utt_id,label,speaker,split", "a,angry;bored,p1,train", "b,Anger; Excited,p1,train",
             "c,angry;sad,p2,val", "d,happy;excited,p3,test"]
    (tmp_path / "labels.csv").write_text("\n".join(lines) + "\n")
    _write_arrays(tmp_path, "abcd")
    rows = _shard_rows(import_features(load_config(), tmp_path, tmp_path / "labels.csv",
                                       out=Storage(str(tmp_path / "o"))))
    got = {u: (r["label"], r["label4"]) for u, r in rows.items()}
    assert got == {"a": ("angry;bored", 0), "b": ("angry;excited", 0), "c": ("angry;sad", None),
                   "d": ("happy;excited", 2)}
    merged = _shard_rows(import_features(load_config(None, ["corpus.merge_excited=true"]), tmp_path,
                                         tmp_path / "labels.csv", out=Storage(str(tmp_path / "o2"))))
    assert merged["b"]["label4"] is None and merged["d"]["label4"] == 2  # angry + happy: two classes


def test_a_split_sharing_speakers_is_refused_naming_them(tmp_path):
    from lssed.errors import UserError

    (tmp_path / "labels.csv").write_text("utt_id,label,speaker,split\na,sad,p1,train\nb,sad,p1,test\nc,sad,p2,val\n")
    _write_arrays(tmp_path, "abc")
    with pytest.raises(UserError, match=r"p1 \(test/train\)"):
        import_features(load_config(), tmp_path, tmp_path / "labels.csv", out=Storage(str(tmp_path / "o")))
