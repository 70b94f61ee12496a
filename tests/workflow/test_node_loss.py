"""A node that leaves: the second node of a real two-node Ray (``ray start`` here) is SIGKILLed, process
group and all, during preprocessing and during a 2-worker training run. A replacement node joins
afterwards, as an autoscaler would bring one. The job finishes, or fails with a message that says
how to resume and a rerun finishes; either way every row is there exactly once and every epoch
was trained exactly once.

Its own cluster (not the session Ray of the other tests); minutes on 2 cores: marked slow.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from lssed.storage import Storage

from .localcluster import cluster_env, start_two_node_cluster

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1800)]

NODE2 = "lssed_node2"


@pytest.fixture(scope="module")
def cluster():
    # 3 logical CPUs per node: one 2-CPU training worker fits on each, with a CPU left for Ray Data
    # (after a node loss Ray Data re-reads the lost blocks; with less it waits for CPUs forever).
    c = start_two_node_cluster(head_cpus=3, node_cpus=3, node_resource=NODE2)
    try:
        yield c
    finally:
        c.stop()


def _lssed(cluster, *args: str) -> subprocess.Popen:
    env = dict(cluster_env(), RAY_ADDRESS=cluster.address)
    return subprocess.Popen([sys.executable, "-m", "lssed.cli", *args], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)


def _wait_for(cond, proc: subprocess.Popen, what: str, timeout: float = 600) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return
        if proc.poll() is not None:
            raise AssertionError(f"the driver ended ({proc.returncode}) before {what}:\n{proc.stdout.read()[-4000:]}")
        time.sleep(0.3)
    raise AssertionError(f"timed out waiting for {what}")


def _replace_node2(cluster) -> None:
    """Kill the second node's process group, then let a new node join in its place (the node added
    last is the live second node: an earlier test may already have replaced the first one)."""
    cluster.kill_node(len(cluster.procs) - 1)
    time.sleep(3)
    cluster.add_node(num_cpus=3, resources={NODE2: 3})


def _train_worker_nodes(cluster) -> set[str]:
    """Which nodes ("head" or the second node's resource name) hold live Ray Train workers."""
    from ray.util.state import list_actors

    names = {n["node_id"]: (NODE2 if NODE2 in (n.get("resources_total") or {}) else "head")
             for n in cluster.alive_nodes()}
    actors = list_actors(address=cluster.dashboard, filters=[("class_name", "=", "RayTrainWorker"),
                                                             ("state", "=", "ALIVE")],
                         raise_on_missing_output=False)
    return {names.get(a.node_id, "?") for a in actors}


def _finish(proc: subprocess.Popen, rerun, what: str) -> tuple[str, str]:
    """(first driver's output, rerun's output or ''): a failed driver must say how to resume."""
    out, _ = proc.communicate(timeout=1200)
    if proc.returncode == 0:
        return out, ""
    assert "rerun" in out.lower() or "resume" in out.lower(), f"{what} failed without saying how to resume:\n{out[-4000:]}"
    again = rerun()
    out2, _ = again.communicate(timeout=1200)
    assert again.returncode == 0, f"the rerun of {what} failed:\n{out2[-4000:]}"
    return out, out2


def test_node_lost_during_preprocessing(cluster, demo_manifest, tmp_path):
    out = tmp_path / "out"
    sets = ["preprocess.num_actors=4", "preprocess.rows_per_shard=2", "preprocess.min_shards=24",
            "preprocess.denoise=noisereduce-stationary"]
    args = ["preprocess", str(demo_manifest), "--out", str(out), *[a for s in sets for a in ("--set", s)]]
    proc = _lssed(cluster, *args)
    _wait_for(lambda: len(list(out.glob("features/*/_chunks/*.json"))) >= 3, proc, "the first chunks")
    _replace_node2(cluster)
    _finish(proc, lambda: _lssed(cluster, *args), "preprocessing")
    [success] = list(out.glob("features/*/_SUCCESS.json"))
    counts = json.loads(success.read_text())["counts"]
    manifest_ids = pq.read_table(demo_manifest, columns=["utt_id"]).column("utt_id").to_pylist()
    shard_ids = pq.read_table(success.parent / "shards", columns=["utt_id"]).column("utt_id").to_pylist()
    quarantined = pq.read_table(success.parent / "quarantine", columns=["utt_id"]).column("utt_id").to_pylist()
    assert sorted(shard_ids + quarantined) == sorted(manifest_ids), "rows lost or duplicated"
    assert counts["rows_out"] == len(shard_ids) and counts["rows_in"] == len(manifest_ids)


def test_node_lost_during_two_worker_training(cluster, tmp_path):
    from lssed.config import FeatureConfig
    from lssed.train.outputs import read_results
    from lssed.train.synthetic import write_synthetic_features

    features = write_synthetic_features(Storage(str(tmp_path / "feats")), features=FeatureConfig(n_mels=64))
    out = tmp_path / "runs"
    epochs = 6
    sets = ["features.n_mels=64", f"train.epochs={epochs}", "train.batch_size=8", "train.eval_batch_size=16",
            "train.lr=0.005", "train.crop_frames=32", "train.num_workers=2", "train.cpus_per_worker=2",
            "train.max_failures=3"]
    args = ["train", features, "--model", "resnet18", "--out", str(out), "--run-name", "nodeloss",
            *[a for s in sets for a in ("--set", s)]]
    proc = _lssed(cluster, *args)
    run_dir = out / "runs" / "nodeloss"
    _wait_for(lambda: (run_dir / "checkpoint_epoch_0002").exists(), proc, "the epoch-2 checkpoint")
    assert _train_worker_nodes(cluster) == {"head", NODE2}, "the two workers do not sit one per node"
    _replace_node2(cluster)
    first, rerun = _finish(proc, lambda: _lssed(cluster, *args), "training")
    res = read_results(Storage(str(out)).child("runs", "nodeloss"))
    assert res is not None and res.num_workers == 2
    assert [h.epoch for h in res.history] == list(range(1, epochs + 1)), "an epoch was lost or trained twice"
    assert res.restarts >= 1, f"the run never restarted: the node loss did not hit it\n{first[-3000:]}\n{rerun[-3000:]}"
