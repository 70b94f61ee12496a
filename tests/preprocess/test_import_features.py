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
                   "flat,sad,s3,M,train\nnarrow,sad,s3,M,train\njunk,happy,s3,M,val\nmissing,neutral,s4,F,test\n")
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
    assert [rows[u]["label4"] for u in ("u0", "u1", "u2")] == [0, 2, None]  # excited -> happy; bored: none
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
