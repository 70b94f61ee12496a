"""lssed.storage on local disk and on a real S3-protocol server (moto), through pyarrow and s3fs."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from lssed.storage import SUCCESS_MARKER, Storage, StorageError, stage_output


def _exercise(st: Storage) -> None:
    """The same round trip on any backend."""
    assert not st.exists("a", "b.txt")
    st.write_bytes(b"hello", "a", "b.txt")
    assert st.exists("a", "b.txt") and st.read_bytes("a", "b.txt") == b"hello"
    st.write_bytes(b"again", "a", "b.txt")  # overwrite
    assert st.read_bytes("a/b.txt") == b"again"
    st.write_json({"x": [1, 2], "y": None}, "a", "c.json")
    assert st.read_json("a", "c.json") == {"x": [1, 2], "y": None}
    names = [p.rsplit("/", 1)[1] for p in st.list("a")]
    assert names == ["b.txt", "c.json"]  # no temporary files left behind
    assert st.list("nothing-here") == []
    assert st.child("a").read_bytes("b.txt") == b"again"
    out = stage_output(st, "features", "abc123")
    assert not out.is_committed()
    with pytest.raises(StorageError, match="did not finish"):
        out.marker()
    out.storage.write_bytes(b"partial", "shards", "part-0.parquet")
    out.commit({"counts": {"rows": 3}})
    assert out.is_committed() and out.marker() == {"counts": {"rows": 3}}
    assert out.uri == st.join_uri("features", "abc123")
    out.clear()
    assert not out.is_committed() and not out.storage.exists("shards", "part-0.parquet")
    st.delete_dir("a")
    assert not st.exists("a", "b.txt")


def test_local_path_and_file_uri_are_the_same_place(tmp_path):
    plain, uri = Storage(str(tmp_path / "root")), Storage(f"file://{tmp_path}/root")
    assert plain.root == uri.root == str(tmp_path / "root") and not plain.is_s3
    _exercise(plain)
    plain.write_bytes(b"1", "k.txt")
    assert uri.read_bytes("k.txt") == b"1"
    assert plain.join_uri("x", "y") == str(tmp_path / "root" / "x" / "y")


def test_relative_path_becomes_absolute(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert Storage("runs/demo").root == str(tmp_path / "runs" / "demo")


def test_bad_uris_say_what_to_write():
    with pytest.raises(StorageError, match="s3://BUCKET/PREFIX"):
        _ = Storage("gs://bucket/x").scheme
    with pytest.raises(StorageError, match="names no bucket"):
        _ = Storage("s3:///prefix").root


def test_s3_through_pyarrow(s3_endpoint):
    st = Storage("s3://lssed-test/storage-test/pa", s3_endpoint)
    assert st.is_s3 and st.root == "lssed-test/storage-test/pa"
    assert st.join_uri("x") == "s3://lssed-test/storage-test/pa/x"
    _exercise(st)


def test_s3_endpoint_from_the_environment(s3_endpoint):
    # the fixture exports AWS_ENDPOINT_URL, as a user's shell or a cluster's env would
    st = Storage("s3://lssed-test/storage-test/env")
    st.write_bytes(b"via env", "e.txt")
    assert Storage("s3://lssed-test/storage-test/env", s3_endpoint).read_bytes("e.txt") == b"via env"


def test_s3fs_and_pyarrow_see_the_same_objects(s3_endpoint):
    st = Storage("s3://lssed-test/storage-test/cross", s3_endpoint)
    sfs = st.fsspec()
    # pyarrow writes, s3fs reads (bytes and Parquet)
    st.write_bytes(b"from pyarrow", "p.txt")
    assert sfs.cat(f"{st.root}/p.txt") == b"from pyarrow"
    table = pa.table({"utt_id": ["a", "b"], "logmel": [[0.5, 1.0], [2.0]]})
    pq.write_table(table, f"{st.root}/t.parquet", filesystem=st.filesystem, compression="zstd")
    with sfs.open(f"{st.root}/t.parquet", "rb") as f:
        assert pq.read_table(io.BytesIO(f.read())).equals(table)
    assert pq.read_table(f"{st.root}/t.parquet", filesystem=sfs).equals(table)
    # s3fs writes, pyarrow reads
    with sfs.open(f"{st.root}/s.json", "wb") as f:
        f.write(json.dumps({"k": 1}).encode())
    assert st.read_json("s.json") == {"k": 1}
    assert sorted(Path(p).name for p in st.list()) == ["p.txt", "s.json", "t.parquet"]
    # (pyarrow also leaves empty "dir/" marker objects, which s3fs lists as directories)
    found = [p for p in sfs.find(st.root) if p.rstrip("/") != st.root]
    assert sorted(Path(p).name for p in found) == ["p.txt", "s.json", "t.parquet"]


def test_commit_marker_name_is_the_documented_one():
    assert SUCCESS_MARKER == "_SUCCESS.json"
