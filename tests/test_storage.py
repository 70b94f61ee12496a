"""lssed.storage on local disk and on a real S3-protocol server (moto), through pyarrow and s3fs."""

from __future__ import annotations

import io
import json
import pickle
from pathlib import Path

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq
import pytest

from lssed.config import StorageConfig, load_config
from lssed.storage import SUCCESS_MARKER, Storage, StorageError, stage_output, storage_from_config

from s3server import silent_server


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


# --------------------------------------------------------------------------- retries, timeouts, reuse


def test_settings_default_to_the_config_and_travel_with_the_storage():
    cfg = load_config(None, ["storage.root=s3://b/p", "storage.retries=3", "storage.connect_timeout_s=2",
                             "storage.request_timeout_s=7.5", "storage.endpoint_url=http://127.0.0.1:9"])
    st = storage_from_config(cfg.storage)
    assert (st.uri, st.endpoint_url, st.retries, st.connect_timeout_s, st.request_timeout_s) == \
        ("s3://b/p", "http://127.0.0.1:9", 3, 2.0, 7.5)
    # children, other URIs and pickled copies (what Ray workers get) keep every setting
    for other in (st.child("x"), st.at("s3://c/q"), storage_from_config(st, "s3://c/q"), pickle.loads(pickle.dumps(st))):
        assert (other.endpoint_url, other.retries, other.connect_timeout_s, other.request_timeout_s) == \
            ("http://127.0.0.1:9", 3, 2.0, 7.5)
    plain = Storage("s3://b/p")
    defaults = StorageConfig()
    assert (plain.retries, plain.connect_timeout_s, plain.request_timeout_s) == \
        (defaults.retries, defaults.connect_timeout_s, defaults.request_timeout_s)
    assert storage_from_config(None, "/tmp/x").retries == defaults.retries


def test_bad_settings_say_what_to_set():
    with pytest.raises(StorageError, match="storage.retries must be an integer >= 0"):
        Storage("s3://b/p", retries=-1)
    with pytest.raises(StorageError, match="storage.request_timeout_s must be a number of seconds > 0"):
        Storage("s3://b/p", request_timeout_s=0)
    with pytest.raises(StorageError, match="storage.connect_timeout_s"):
        Storage("s3://b/p", connect_timeout_s=-1.0)


def test_one_filesystem_per_process_and_settings(s3_endpoint):
    st = Storage("s3://lssed-test/storage-test/cache", s3_endpoint, retries=4, connect_timeout_s=3.0,
                 request_timeout_s=9.0)
    assert st.filesystem is st.filesystem is st.child("a", "b").filesystem
    assert st.filesystem is pickle.loads(pickle.dumps(st)).filesystem
    assert st.fsspec() is st.child("a").fsspec()
    changed = Storage(st.uri, s3_endpoint, retries=4, connect_timeout_s=3.0, request_timeout_s=8.0)
    assert changed.filesystem is not st.filesystem and changed.fsspec() is not st.fsspec()
    # the settings reached both clients (pyarrow's own description of its filesystem; botocore's config)
    pa_options = pafs.S3FileSystem.__reduce__(st.filesystem)[1][0]
    assert (pa_options["connect_timeout"], pa_options["request_timeout"]) == (3.0, 9.0)
    config = st.fsspec().s3.meta.config
    assert (config.connect_timeout, config.read_timeout) == (3.0, 9.0)
    assert config.retries == {"total_max_attempts": 5, "mode": "standard"}
    # and the shared filesystem works
    st.write_bytes(b"cached", "c.txt")
    assert st.fsspec().cat(f"{st.root}/c.txt") == b"cached"


def test_hung_endpoint_fails_after_the_configured_attempts_instead_of_hanging():
    """A server that accepts connections and never answers: every attempt times out, the request is
    tried exactly retries + 1 times (one connection each), then the error reaches the caller."""
    with silent_server() as server:
        st = Storage("s3://bucket/prefix", server.url, retries=2, connect_timeout_s=1.0, request_timeout_s=1.0)
        with pytest.raises(OSError, match="(?i)timeout"):
            st.read_bytes("x.txt")
        assert server.connections == 3
    with silent_server() as server:
        st = Storage("s3://bucket/prefix", server.url, retries=1, connect_timeout_s=1.0, request_timeout_s=1.0)
        with pytest.raises(OSError, match="(?i)timeout"):
            st.fsspec().info(f"{st.root}/x.txt")
        assert server.connections == 2


def test_a_pickled_filesystem_keeps_its_retries():
    """Ray pickles the filesystem it hands to Train's controller and workers; pyarrow's own pickling
    drops ``retry_strategy`` (back to 3 attempts). The copy must still try retries + 1 times."""
    with silent_server() as server:
        st = Storage("s3://bucket/prefix", server.url, retries=4, connect_timeout_s=1.0, request_timeout_s=0.5)
        copy = pickle.loads(pickle.dumps(st.filesystem))
        with pytest.raises(OSError, match="(?i)timeout"):
            copy.get_file_info("bucket/prefix/x.txt")
        assert server.connections == 5
