"""A generic/demo corpus whose CSV and media sit in a bucket (moto S3 server): the same manifest,
rejects and shards as the same corpus on local disk, and one listing per prefix."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from lssed.corpora import CorpusError, prepare, write_manifest
from lssed.corpora.base import MediaIndex, RowCollector, media_problem_in_listing, storage_lister
from lssed.corpora.generic import read_generic
from lssed.storage import Storage

BUCKET = "lssed-test"


def _upload(endpoint: str, folder: Path, prefix: str) -> str:
    """Every file under ``folder`` to ``s3://BUCKET/prefix/``; returns the CSV's URI."""
    import boto3

    s3 = boto3.client("s3", endpoint_url=endpoint)
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        s3.upload_file(str(path), BUCKET, f"{prefix}/{path.relative_to(folder).as_posix()}")
    return f"s3://{BUCKET}/{prefix}/corpus.csv"


def _by_id(table: pa.Table) -> dict[str, dict]:
    return {r["utt_id"]: r for r in table.to_pylist()}


def _same_rows(local: pa.Table, remote: pa.Table, local_root: Path, remote_root: str) -> None:
    assert local.num_rows == remote.num_rows > 0
    a, b = _by_id(local), _by_id(remote)
    assert a.keys() == b.keys()
    for utt, row in a.items():
        other = dict(b[utt])
        rel = Path(row["media_uri"]).relative_to(local_root.resolve()).as_posix()
        assert other.pop("media_uri") == f"{remote_root}/{rel}"  # only the location differs
        assert {k: v for k, v in row.items() if k != "media_uri"} == other


def test_media_problem_in_listing_codes() -> None:
    listing = {"s3://b/c/a.wav": 10, "s3://b/c/empty.wav": 0}
    assert media_problem_in_listing("s3://b/c/a.wav", listing) is None
    assert media_problem_in_listing("s3://b/c/empty.wav", listing)[0] == "empty_media"
    assert media_problem_in_listing("s3://b/c/gone.wav", listing)[0] == "missing_media"


def test_media_index_lists_each_prefix_once() -> None:
    calls: list[tuple[str, bool]] = []

    def lister(prefix: str, recursive: bool) -> dict[str, int]:
        calls.append((prefix, recursive))
        return {f"{prefix}/x/{i}.wav": 1 for i in range(3)} if recursive else {f"{prefix}/y.wav": 1}

    index = MediaIndex(lister)
    index.add_root("s3://b/corpus/")
    assert [index.problem(f"s3://b/corpus/x/{i}.wav") for i in range(3)] == [None] * 3
    assert index.problem("s3://b/corpus/x/9.wav")[0] == "missing_media"
    assert index.problem("s3://other/y.wav") is None and index.problem("s3://other/z.wav") is not None
    assert calls == [("s3://b/corpus", True), ("s3://other", False)]


def test_s3_corpus_gives_the_local_manifest(s3_endpoint, demo_corpus_csv: Path) -> None:
    remote = _upload(s3_endpoint, demo_corpus_csv.parent, "corpora/demo-same")
    local = prepare("demo", demo_corpus_csv)
    from_s3 = prepare("demo", remote, storage=Storage(remote, s3_endpoint))
    assert from_s3.input_rows == local.input_rows and from_s3.rejects.num_rows == local.rejects.num_rows == 0
    _same_rows(local.manifest, from_s3.manifest, demo_corpus_csv.parent, f"s3://{BUCKET}/corpora/demo-same")
    # the corpus's folder works as the root too (its corpus.csv is read), as locally
    assert prepare("demo", remote.rsplit("/", 1)[0]).manifest.num_rows == local.manifest.num_rows


def test_s3_media_checked_with_one_listing(s3_endpoint, demo_corpus_csv: Path) -> None:
    """108 rows over 18 media files: one recursive listing of the CSV's prefix, no request per row."""
    remote = _upload(s3_endpoint, demo_corpus_csv.parent, "corpora/demo-count")
    store = Storage(remote, s3_endpoint)
    real = storage_lister(store)
    calls: list[tuple[str, bool]] = []

    def counting(prefix: str, recursive: bool) -> dict[str, int]:
        calls.append((prefix, recursive))
        return dict(real(prefix, recursive))

    collector = RowCollector(corpus="demo", media_index=MediaIndex(counting))
    read_generic(remote, collector, storage=store)
    assert len(collector.rows) == collector.input_rows > 100
    assert calls == [(f"s3://{BUCKET}/corpora/demo-count", True)]


def test_broken_media_rejected_alike(s3_endpoint, demo_corpus_csv: Path, tmp_path: Path) -> None:
    folder = tmp_path / "broken"
    shutil.copytree(demo_corpus_csv.parent, folder)
    media = sorted((folder / "media").iterdir())
    media[0].write_bytes(b"")  # zero bytes
    media[1].unlink()  # gone
    remote = _upload(s3_endpoint, folder, "corpora/demo-broken")
    local = prepare("demo", folder / "corpus.csv")
    from_s3 = prepare("demo", remote, storage=Storage(remote, s3_endpoint))

    def codes(t: pa.Table) -> dict[str, str]:
        return {r["utt_id"]: r["reason"].split(":", 1)[0] for r in t.to_pylist()}

    assert codes(local.rejects) == codes(from_s3.rejects)
    assert set(codes(local.rejects).values()) == {"empty_media", "missing_media"}
    assert [r["row"] for r in local.rejects.to_pylist()] == [r["row"] for r in from_s3.rejects.to_pylist()]
    _same_rows(local.manifest, from_s3.manifest, folder, f"s3://{BUCKET}/corpora/demo-broken")


def test_s3_paths_outside_the_prefix(s3_endpoint, demo_corpus_csv: Path, tmp_path: Path) -> None:
    """``..`` out of the CSV's prefix, or an absolute URI elsewhere, is outside the root unless allowed."""
    import boto3

    inner = _upload(s3_endpoint, demo_corpus_csv.parent, "corpora/demo-outside/inner").rsplit("/", 1)[0]
    header, line = demo_corpus_csv.read_text().splitlines()[:2]
    media, rest = line.split(",", 1)
    rows = [f"../inner/{media}", f"{inner}/media/nothing.wav", "media/../../../escape.wav"]
    (tmp_path / "corpus.csv").write_text("\n".join([header] + [f"{r},{rest}" for r in rows]) + "\n")
    boto3.client("s3", endpoint_url=s3_endpoint).upload_file(str(tmp_path / "corpus.csv"), BUCKET,
                                                             "corpora/demo-outside/csv/corpus.csv")
    uri = f"s3://{BUCKET}/corpora/demo-outside/csv/corpus.csv"
    outcomes = []
    for allow in (False, True):  # the default endpoint: AWS_ENDPOINT_URL, set by the moto fixture
        collector = RowCollector(corpus="generic", media_index=MediaIndex(storage_lister(None)))
        read_generic(uri, collector, allow_outside_root=allow)
        outcomes.append(([r["media_uri"] for r in collector.rows],
                         [r["reason"].split(":")[0] for r in collector.rejects]))
    assert outcomes[0] == ([], ["outside_root"] * 3)
    assert outcomes[1] == ([f"{inner}/{media}"], ["missing_media"] * 2)


def test_s3_root_for_directory_adapters_is_an_error() -> None:
    with pytest.raises(CorpusError, match="only generic/demo"):
        prepare("ravdess", "s3://lssed-test/ravdess")


def test_corpus_stage_reads_an_s3_root(s3_endpoint, demo_corpus_csv: Path, tmp_path: Path) -> None:
    from lssed.config import load_config
    from lssed.corpora import read_manifest
    from lssed.corpora.stage import corpus_stage

    remote = _upload(s3_endpoint, demo_corpus_csv.parent, "corpora/demo-stage")
    cfg = load_config(None, ["corpus.name=generic", f"corpus.root={remote}", f"storage.endpoint_url={s3_endpoint}"])
    result = corpus_stage(cfg, out=Storage(str(tmp_path / "out"), s3_endpoint))
    manifest = read_manifest(result.manifest_uri)
    assert result.rows == manifest.num_rows == prepare("generic", demo_corpus_csv).manifest.num_rows
    uris = manifest.column("media_uri").to_pylist()
    assert all(u.startswith(f"s3://{BUCKET}/corpora/demo-stage/media/") for u in uris)


@pytest.mark.ray
@pytest.mark.slow
def test_s3_corpus_preprocesses_to_the_local_shards(s3_endpoint, ray_session, tmp_path: Path) -> None:
    import pyarrow.parquet as pq

    from lssed.config import load_config
    from lssed.corpora.demo import make_demo_corpus
    from lssed.preprocess.stage import preprocess

    csv = make_demo_corpus(tmp_path / "corpus", speakers=3, per_class=1, seed=1)
    remote = _upload(s3_endpoint, csv.parent, "corpora/demo-shards")
    cfg = load_config(None, ["preprocess.num_actors=1", "preprocess.denoise=noisereduce-stationary",
                             "preprocess.rows_per_shard=4", f"storage.endpoint_url={s3_endpoint}"])
    tables = []
    for name, root in (("local", csv), ("s3", remote)):
        manifest, _ = write_manifest(prepare("demo", root), tmp_path / name / "manifest.parquet")
        fs = preprocess(cfg, manifest, out=Storage(str(tmp_path / name / "out"), s3_endpoint))
        assert fs.rows_quarantined == 0
        tables.append(pq.read_table(fs.shards_uri).sort_by("utt_id"))
    local, from_s3 = tables
    assert local.num_rows == from_s3.num_rows > 0
    for column in local.column_names:
        a, b = local.column(column).to_pylist(), from_s3.column(column).to_pylist()
        if column == "logmel":
            for x, y in zip(a, b):
                np.testing.assert_allclose(np.asarray(y), np.asarray(x), rtol=1e-5, atol=1e-5)
        else:
            assert a == b, column


def test_prepare_cli_reads_an_s3_csv(s3_endpoint, demo_corpus_csv: Path, tmp_path: Path, monkeypatch) -> None:
    """`lssed prepare generic s3://...` reaches the bucket through storage.endpoint_url, not only the environment."""
    import pyarrow.parquet as pq

    from lssed.cli import main

    remote = _upload(s3_endpoint, demo_corpus_csv.parent, "corpora/demo-cli")
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)  # only the --set key names the server
    out = tmp_path / "m.parquet"
    assert main(["prepare", "generic", remote, "--out", str(out), "--set", f"storage.endpoint_url={s3_endpoint}"]) == 0
    manifest = pq.read_table(out)
    assert manifest.num_rows == prepare("generic", demo_corpus_csv).manifest.num_rows
    assert manifest.column("media_uri").to_pylist()[0].startswith(f"s3://{BUCKET}/corpora/demo-cli/media/")


def test_s3_prepare_sends_one_list_request(demo_corpus_csv: Path, caplog) -> None:
    """Counted at the server (its own request log): one ListObjectsV2 for the 18 media files of
    108 rows, and no request that names a media object."""
    import logging

    import boto3
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=True)  # logs each request (werkzeug)
    server.start()
    try:
        host, port = server.get_host_and_port()
        endpoint = f"http://{host}:{port}"
        boto3.client("s3", endpoint_url=endpoint).create_bucket(Bucket=BUCKET)
        remote = _upload(endpoint, demo_corpus_csv.parent, "corpora/demo-requests")
        caplog.clear()
        with caplog.at_level(logging.INFO, logger="werkzeug"):
            prepared = prepare("demo", remote, storage=Storage(remote, endpoint))
        requests = [r.getMessage() for r in caplog.records if r.name == "werkzeug"]
    finally:
        server.stop()
    assert prepared.manifest.num_rows == prepared.input_rows > 100
    lists = [r for r in requests if "list-type=2" in r]
    assert len(lists) == 1 and "prefix=corpora/demo-requests/" in lists[0], requests
    assert not [r for r in requests if "/media/" in r], requests
