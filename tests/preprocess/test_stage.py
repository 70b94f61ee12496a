"""The preprocess stage on Ray Data: local disk and S3 (moto), skip on rerun, resume after a kill."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.dataset as pads
import pyarrow.parquet as pq
import pytest

from lssed.config import load_config
from lssed.preprocess.stage import ManifestError, plan_chunks, preprocess, read_manifest
from lssed.schema import QUARANTINE_SCHEMA, SHARD_SCHEMA
from lssed.storage import Storage

import media

# Small and quick: one actor, the cheaper denoiser, 3 rows per chunk.
FAST = ["preprocess.num_actors=1", "preprocess.denoise=noisereduce-stationary", "preprocess.rows_per_shard=3"]


def _reasons(quarantine: pa.Table) -> dict[str, str]:
    return {u: f"{s}/{e.split(':')[0]}" for u, s, e in zip(*(quarantine.column(c).to_pylist()
                                                            for c in ("utt_id", "stage", "error")))}


# First in the file: the moto server must set AWS credentials before Ray starts its workers.
@pytest.mark.ray
def test_s3_media_manifest_and_output(s3_endpoint, ray_session, media_set, tmp_path):
    """Media, manifest and features all on the S3-protocol server; read back with pyarrow and s3fs."""
    import boto3
    import ray
    import s3fs

    @ray.remote
    def worker_has_credentials() -> bool:
        return bool(os.environ.get("AWS_ACCESS_KEY_ID"))

    if not ray.get(worker_has_credentials.remote()):
        pytest.fail("Ray was started before the moto fixture set AWS credentials: make the ray_session fixture "
                    "depend on s3_endpoint in tests/conftest.py")
    s3 = boto3.client("s3", endpoint_url=s3_endpoint)
    rows, expected = media.manifest_rows(media_set)
    keep = {"mp4_aac_video", "mkv_opus", "zero_bytes", "video_only"}
    rows = [r for r in rows if r["utt_id"].split("_", 1)[1] in keep]
    for r in rows:
        key = f"media/{Path(r['media_uri']).name}"
        s3.upload_file(r["media_uri"], "lssed-test", key)
        r["media_uri"] = Path(r["media_uri"]).name  # relative to the manifest's folder
    local_manifest = media.write_manifest(tmp_path / "manifest.parquet", rows)
    s3.upload_file(str(local_manifest), "lssed-test", "media/manifest.parquet")
    cfg = load_config(None, FAST + [f"storage.endpoint_url={s3_endpoint}"])
    out = Storage("s3://lssed-test/runs/s3test", s3_endpoint)
    fs = preprocess(cfg, "s3://lssed-test/media/manifest.parquet", out=out)
    assert fs.uri.startswith("s3://lssed-test/runs/s3test/features/")
    want = {r["utt_id"]: expected[r["utt_id"]] for r in rows if r["utt_id"] in expected}
    assert (fs.rows_in, fs.rows_quarantined) == (len(rows), len(want))
    # pyarrow's S3 filesystem
    shards = pads.dataset(fs.shards_uri[len("s3://"):], filesystem=out.filesystem, format="parquet").to_table()
    assert shards.num_rows == fs.rows_out == len(rows) - len(want)
    # s3fs
    sfs = s3fs.S3FileSystem(client_kwargs={"endpoint_url": s3_endpoint})
    quarantine = pq.read_table(fs.quarantine_uri[len("s3://"):], filesystem=sfs)
    assert _reasons(quarantine) == want
    assert sfs.exists(f"{fs.uri[len('s3://'):]}/_SUCCESS.json")
    assert preprocess(cfg, "s3://lssed-test/media/manifest.parquet", out=out).skipped


@pytest.fixture(scope="module")
def local_run(ray_session, mixed_manifest, tmp_path_factory):
    path, expected, n = mixed_manifest
    out = Storage(str(tmp_path_factory.mktemp("out")))
    cfg = load_config(None, FAST)
    return cfg, out, preprocess(cfg, str(path), out=out)


@pytest.mark.ray
def test_local_run_writes_shards_quarantine_and_stats(local_run, mixed_manifest):
    cfg, out, fs = local_run
    path, expected, n = mixed_manifest
    assert not fs.skipped
    assert (fs.rows_in, fs.rows_out, fs.rows_quarantined) == (n, n - len(expected), len(expected))
    root = Path(fs.uri)
    assert root.parent.name == "features" and root.name == fs.digest
    # plain pyarrow reads the shard folder as one dataset (hidden/underscore files are skipped)
    shards = pq.read_table(fs.shards_uri)
    quarantine = pq.read_table(fs.quarantine_uri)
    assert shards.schema.remove_metadata() == SHARD_SCHEMA
    assert quarantine.schema.remove_metadata() == QUARANTINE_SCHEMA
    assert shards.num_rows == fs.rows_out and quarantine.num_rows == fs.rows_quarantined
    ids = shards.column("utt_id").to_pylist() + quarantine.column("utt_id").to_pylist()
    assert sorted(ids) == sorted(read_manifest(str(path)).column("utt_id").to_pylist())
    assert _reasons(quarantine) == expected
    files = sorted(p.name for p in (root / "shards").iterdir())
    assert files == [f"part-{i:05d}.parquet" for i in range(len(files))] and len(files) > 1
    assert pq.ParquetFile(root / "shards" / files[0]).metadata.row_group(0).column(0).compression == "ZSTD"
    marker = json.loads((root / "_SUCCESS.json").read_text())
    assert marker["config"]["features"]["n_mels"] == 128 and marker["config"]["preprocess"]["gain"] == 2.0
    assert marker["counts"] == {"rows_in": n, "rows_out": fs.rows_out, "rows_quarantined": fs.rows_quarantined}
    s = marker["stats"]
    assert sum(s["rows_by_label"].values()) == sum(s["rows_by_split"].values()) == fs.rows_out
    assert sum(s["quarantined_by_reason"].values()) == sum(s["quarantined_by_stage"].values()) == len(expected)
    assert s["decoded_audio_h"] > s["output_audio_h"] > 0 and s["audio_s_per_cpu_s"] > 0
    assert 0 <= s["clip_rate"] < 1 and s["chunks"] == len(files) and s["wall_s"] > 0
    assert abs(s["output_audio_s"] - sum(len(w) for w in shards.column("waveform").to_pylist()) / 16000) < 1e-6


@pytest.mark.ray
def test_rerun_skips_and_cli_reports(local_run, mixed_manifest, capsys):
    from lssed.cli import main

    cfg, out, fs = local_run
    path = mixed_manifest[0]
    marker = Path(fs.uri) / "_SUCCESS.json"
    before = marker.stat().st_mtime_ns
    again = preprocess(cfg, str(path), out=out)
    assert again.skipped and again.digest == fs.digest and again.rows_out == fs.rows_out
    assert marker.stat().st_mtime_ns == before
    # throughput knobs are not part of the digest; the CLI finds the same committed set
    rc = main(["preprocess", str(path), "--out", out.uri, "--set", "preprocess.num_actors=1",
               "--set", "preprocess.denoise=noisereduce-stationary", "--set", "preprocess.rows_per_shard=3",
               "--set", "preprocess.actor_start_timeout_s=30"])
    text = capsys.readouterr().out
    assert rc == 0 and fs.uri in text and "skipped" in text and f"{fs.rows_quarantined} quarantined" in text
    # a config change that alters the output gets a new digest
    other = load_config(None, FAST + ["preprocess.gain=1"])
    from lssed.preprocess.stage import features_digest, manifest_hash

    assert features_digest(other, manifest_hash(read_manifest(str(path)))) != fs.digest


@pytest.mark.ray
def test_resume_redoes_only_missing_chunks(local_run, mixed_manifest):
    cfg, out, fs = local_run
    root = Path(fs.uri)
    before = pq.read_table(fs.shards_uri).sort_by("utt_id")
    n_chunks = len(list((root / "_chunks").iterdir()))
    # simulate a run killed half way: no commit, two chunks unfinished, a half-written temp file
    (root / "_SUCCESS.json").unlink()
    for name in ("part-00001", "part-00004"):
        (root / "_chunks" / f"{name}.json").unlink()
    (root / "shards" / "part-00004.parquet").unlink()
    (root / "shards" / ".tmp-deadbeef-part-00001.parquet").write_bytes(b"PAR1 half written")
    again = preprocess(cfg, mixed_manifest[0], out=out)
    assert not again.skipped and again.stats["chunks_resumed"] == n_chunks - 2
    assert again.stats["this_run"]["chunks"] == 2
    after = pq.read_table(again.shards_uri).sort_by("utt_id")
    assert after.equals(before)  # same rows, no duplicates, nothing missing
    assert not any(p.name.startswith(".tmp-") for p in (root / "shards").iterdir())


@pytest.mark.ray
@pytest.mark.slow
def test_killed_run_resumes_without_duplicates(ray_session, media_set, tmp_path):
    """Kill a real `lssed preprocess` driver mid-run, then finish the job: exact rows, once each."""
    rows, _ = media.manifest_rows(media_set)
    good = [r for r in rows if r["utt_id"].split("_", 1)[1] in ("wav16k", "flac22k", "wav44k_stereo")][:4]
    many = [dict(r, utt_id=f"{r['utt_id']}_{k}") for k in range(6) for r in good]  # 24 one-row chunks
    manifest = media.write_manifest(tmp_path / "m.parquet", many)
    out = tmp_path / "out"
    sets = ["preprocess.num_actors=1", "preprocess.rows_per_shard=1", "preprocess.denoise=noisereduce"]
    address = ray_session.get_runtime_context().gcs_address
    env = dict(os.environ, RAY_ADDRESS=address, RAY_DATA_DISABLE_PROGRESS_BARS="1")
    cmd = [sys.executable, "-m", "lssed.cli", "preprocess", str(manifest), "--out", str(out)]
    for s in sets:
        cmd += ["--set", s]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 300
    chunks_dir = None
    try:
        while time.monotonic() < deadline and proc.poll() is None:
            found = list(out.glob("features/*/_chunks/*.json"))
            if len(found) >= 3:
                chunks_dir = found[0].parent
                break
            time.sleep(0.2)
        assert proc.poll() is None, f"the driver ended before it could be killed: {proc.stderr.read().decode()[-2000:]}"
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert chunks_dir is not None and not (chunks_dir.parent / "_SUCCESS.json").exists()
    done_before = len(list(chunks_dir.iterdir()))
    assert done_before < len(many)
    cfg = load_config(None, sets)
    fs = preprocess(cfg, str(manifest), out=Storage(str(out)))
    ids = pq.read_table(fs.shards_uri, columns=["utt_id"]).column("utt_id").to_pylist()
    assert sorted(ids) == sorted(r["utt_id"] for r in many) and fs.rows_quarantined == 0
    assert fs.stats["chunks_resumed"] >= 3


@pytest.mark.ray
def test_demo_corpus_with_the_paper_chain(demo_manifest, ray_session, tmp_path):
    """The embedded demo corpus (mp4/mkv/wav/webm/flac sessions) through the default chain."""
    cfg = load_config(None, ["preprocess.num_actors=2"])  # noisereduce, gain x2, 128 log-mel
    fs = preprocess(cfg, demo_manifest, out=Storage(str(tmp_path)))
    manifest = read_manifest(demo_manifest)
    assert fs.rows_in == manifest.num_rows and fs.rows_out + fs.rows_quarantined == fs.rows_in
    assert fs.rows_out == fs.rows_in, fs.stats["quarantined_by_reason"]  # the demo's media are all good
    shards = pq.read_table(fs.shards_uri, columns=["utt_id", "label4", "split", "n_mels", "n_frames", "start_s", "end_s"])
    by_id = {r["utt_id"]: r for r in manifest.to_pylist()}
    for r in shards.to_pylist():
        m = by_id[r["utt_id"]]
        assert (r["label4"], r["split"]) == (m["label4"], m["split"])
        assert r["n_mels"] == 128 and abs(r["n_frames"] - (m["end_s"] - m["start_s"]) * 16000 / 512) <= 2
    assert fs.stats["files_opened"] >= len(set(manifest.column("media_uri").to_pylist()))


@pytest.mark.ray
def test_actor_start_timeout_is_set_on_the_preprocessing_dataset_only(ray_session, tmp_path):
    """The pool-start wait is the preprocessing dataset's own setting, not the process's."""
    from ray.data import DataContext

    from lssed.preprocess.pipeline import CHUNK_COLUMN, chunk_dataset

    before = DataContext.get_current().wait_for_min_actors_s
    cfg = load_config(None, ["preprocess.actor_start_timeout_s=123"])
    ds = chunk_dataset([pa.table({CHUNK_COLUMN: [0]})], cfg, out=Storage(str(tmp_path)), media_storage=None, actors=1)
    assert ds.context.wait_for_min_actors_s == 123
    assert DataContext.get_current().wait_for_min_actors_s == before != 123


def test_manifest_errors_say_what_to_fix(tmp_path):
    with pytest.raises(ManifestError, match="lssed prepare"):
        read_manifest(str(tmp_path / "missing.parquet"))
    pq.write_table(pa.table({"utt_id": ["a"], "path": ["x.wav"]}), tmp_path / "bad.parquet")
    with pytest.raises(ManifestError, match="media_uri"):
        read_manifest(str(tmp_path / "bad.parquet"))
    pq.write_table(pa.table({"utt_id": ["a", "a"], "media_uri": ["x.wav", "y.wav"]}), tmp_path / "dup.parquet")
    with pytest.raises(ManifestError, match="duplicated utt_id"):
        read_manifest(str(tmp_path / "dup.parquet"))


def test_chunks_are_deterministic_grouped_by_file_and_bounded(mixed_manifest):
    cfg = load_config(None, ["preprocess.rows_per_shard=4", "preprocess.max_shard_audio_s=3.5"])
    manifest = read_manifest(str(mixed_manifest[0]))
    a = plan_chunks(manifest, cfg.preprocess)
    b = plan_chunks(manifest.take(list(reversed(range(manifest.num_rows)))), cfg.preprocess)
    assert [t.to_pylist() for t in a] == [t.to_pylist() for t in b]  # row order in the file does not matter
    assert sum(t.num_rows for t in a) == manifest.num_rows
    for t in a:
        assert t.num_rows <= 4
        media_col = t.column("media_uri").to_pylist()
        assert media_col == sorted(media_col)  # a chunk's rows are grouped by file
        spans = [(e - (s or 0)) if e is not None else 30.0 for s, e in zip(t.column("start_s").to_pylist(),
                                                                           t.column("end_s").to_pylist())]
        assert t.num_rows == 1 or sum(spans) <= 3.5
    small = plan_chunks(manifest, load_config(None, ["preprocess.min_shards=8"]).preprocess)
    assert len(small) >= 7  # a small manifest still gives every actor work
