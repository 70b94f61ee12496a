"""Ray Train end to end on tiny synthetic shards: CLI, rerun, resume, 2 workers + a killed worker, S3.

Workers are killed from outside (tests/faults.py), as a failing machine would kill them.
"""

from __future__ import annotations

import contextlib
import io
import json
import uuid

import numpy as np
import pytest
import ray.train
import torch

from faults import checkpoint_written, kill_actor_when
from lssed.storage import Storage
from lssed.train.outputs import BEST_MODEL_FILE, read_predictions, read_results
from lssed.evaluate.scoring import evaluate_on
from lssed.train.stage import train

from .conftest import SMALL_FEATURES, small_config

pytestmark = [pytest.mark.ray, pytest.mark.timeout(900)]

EPOCHS = 6
TWO_WORKER_EPOCHS = 4


def _computed(history):
    """What an epoch computed (its timings aside)."""
    return [(h.epoch, h.lr, h.train_loss, h.samples, h.val) for h in history]


@pytest.fixture(scope="module")
def one_worker_run(ray_session, synthetic_features, tmp_path_factory):
    """The 1-worker reference run, started through the `lssed train` CLI."""
    from lssed.cli import main

    out = tmp_path_factory.mktemp("runs1")
    args = ["train", synthetic_features, "--model", "resnet18", "--out", str(out), "--run-name", "one"]
    for o in small_config_overrides(f"train.epochs={EPOCHS}"):
        args += ["--set", o]
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        rc = main(args)
    assert rc == 0
    _OUTPUT.append(buf.getvalue())
    return Storage(str(out))


_OUTPUT: list[str] = []


@pytest.fixture(scope="module")
def one_worker_run_output(one_worker_run):
    return _OUTPUT


def small_config_overrides(*extra):
    from .conftest import SMALL_OVERRIDES

    return [*SMALL_OVERRIDES, *extra]


def test_run_writes_results_predictions_and_selected_weights(one_worker_run, one_worker_run_output):
    run = one_worker_run.child("runs", "one")
    res = read_results(run)
    assert res is not None and res.model == "resnet18" and res.run_name == "one"
    assert res.epochs_completed == EPOCHS and [h.epoch for h in res.history] == list(range(1, EPOCHS + 1))
    assert res.best_epoch == max(res.history, key=lambda h: (h.val.ua, -h.epoch)).epoch
    assert res.val.ua == pytest.approx(res.history[res.best_epoch - 1].val.ua)
    assert res.train_corpus == "synthetic" and res.num_workers == 1 and not res.features_recomputed
    assert res.feature_config["n_mels"] == 64
    test = res.evaluations["test"]
    assert test.n == 16 and res.val.n == 16
    assert test.ua >= 0.75, f"the separable synthetic classes should be learnt: {test}"
    # the learning-rate schedule is the recipe's: constant until lr_step_epochs
    assert {h.lr for h in res.history} == {0.005}
    # every epoch says how long the worker waited for Ray Data's batches (part of its training time)
    assert all(0.0 < h.data_wait_seconds <= h.train_seconds <= h.seconds for h in res.history)
    preds = read_predictions(run)
    assert preds.num_rows == 32 and set(preds.column("split").to_pylist()) == {"val", "test"}
    assert set(preds.column_names) >= {"utt_id", "split", "label", "predicted", "probabilities"}
    probs = np.array(preds.column("probabilities").to_pylist())
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)
    split = np.array(preds.column("split").to_pylist())
    hit = np.array(preds.column("label").to_pylist()) == np.array(preds.column("predicted").to_pylist())
    assert float(np.mean(hit[split == "test"])) == pytest.approx(test.wa)
    state = torch.load(io.BytesIO(run.read_bytes(BEST_MODEL_FILE)), weights_only=True)
    assert "fc.weight" in state
    # checkpoints are in storage beside the results
    assert any("checkpoint_epoch_" in p for p in run.list())
    # `lssed train` printed the table
    printed = one_worker_run_output[0]
    assert "UA" in printed and f"{test.ua:.4f}" in printed


def test_rerun_returns_finished_run_and_evaluation_is_repeatable(one_worker_run, synthetic_features):
    cfg = small_config(f"train.epochs={EPOCHS}")
    run = one_worker_run.child("runs", "one")
    before = run.read_bytes("results.json")
    again = train(cfg, synthetic_features, out=one_worker_run, model="resnet18", run_name="one")
    assert run.read_bytes("results.json") == before  # not retrained
    assert again == read_results(run)
    m1 = evaluate_on(run.uri, synthetic_features, storage_cfg=cfg.storage).metrics
    m2 = evaluate_on(run.uri, synthetic_features, storage_cfg=cfg.storage).metrics
    assert m1 == m2
    assert (m1.wa, m1.ua, m1.confusion) == (again.evaluations["test"].wa, again.evaluations["test"].ua,
                                           again.evaluations["test"].confusion)


def test_same_seed_repeats_a_run_exactly(one_worker_run, synthetic_features, tmp_path):
    """A second run with the same config and seed (new name, new storage) trains the same model:
    Ray Data's ingest order, the crops and the weights' initialisation all come from the seed."""
    cfg = small_config(f"train.epochs={EPOCHS}")
    res = train(cfg, synthetic_features, out=Storage(str(tmp_path)), model="resnet18", run_name="one-again")
    ref = read_results(one_worker_run.child("runs", "one"))
    assert [h.train_loss for h in res.history] == [h.train_loss for h in ref.history]
    assert [h.val for h in res.history] == [h.val for h in ref.history]
    assert res.evaluations["test"] == ref.evaluations["test"]


@pytest.fixture(scope="module")
def two_worker_run(ray_session, synthetic_features, tmp_path_factory):
    """An uninterrupted 2-worker run (gloo DDP): the reference for the killed one."""
    cfg = small_config(f"train.epochs={TWO_WORKER_EPOCHS}", "train.num_workers=2")
    return train(cfg, synthetic_features, out=Storage(str(tmp_path_factory.mktemp("runs2"))), model="resnet18",
                 run_name="two")


def test_two_workers_learn(two_worker_run):
    res = two_worker_run
    assert res.num_workers == 2 and res.restarts == 0
    assert [h.epoch for h in res.history] == list(range(1, TWO_WORKER_EPOCHS + 1))
    # both workers' samples count: each epoch trains the whole split once
    assert {h.samples for h in res.history} == {64}
    assert res.evaluations["test"].ua >= 0.75, f"the separable synthetic classes should be learnt: {res}"


def test_a_killed_worker_changes_nothing(two_worker_run, synthetic_features, tmp_path):
    """A 2-worker run whose worker is SIGKILLed after epoch 2's checkpoint restarts from a
    checkpoint and ends exactly where the uninterrupted run (same seed) ends.

    Exact, not approximate: with ``preserve_order`` Ray Data's ``streaming_split`` hands the
    ordered blocks of the (materialized) train split to the worker with the fewest rows so
    far (OutputSplitter ignores locality then), so every execution, a restarted one too, gives
    each rank the same rows; the local shuffle is seeded per epoch, crops are a hash of (seed,
    epoch, utt_id), the loop reseeds torch per (epoch, rank), and gloo's all-reduce of two
    ranks sums in a fixed order. Only timings may differ.
    """
    cfg = small_config(f"train.epochs={TWO_WORKER_EPOCHS}", "train.num_workers=2", "train.max_failures=2")
    out = Storage(str(tmp_path))
    with kill_actor_when(checkpoint_written(tmp_path / "runs", epoch=2)) as killed:
        res = train(cfg, synthetic_features, out=out, model="resnet18", run_name="two")
    assert killed, "no training worker was killed"
    assert res.restarts == 1 and res.num_workers == 2
    ref = two_worker_run
    assert _computed(res.history) == _computed(ref.history)
    assert (res.best_epoch, res.val, res.evaluations) == (ref.best_epoch, ref.val, ref.evaluations)


def test_rerun_after_a_failed_run_resumes_from_its_checkpoint(one_worker_run, synthetic_features, tmp_path):
    """No retries: a killed worker fails the run with Ray's WorkerGroupError; rerunning the
    same run name resumes from the checkpoint and computes what an uninterrupted run does."""
    cfg = small_config("train.epochs=3", "train.max_failures=0")
    out = Storage(str(tmp_path))
    with kill_actor_when(checkpoint_written(tmp_path / "runs", epoch=1)) as killed:
        with pytest.raises(ray.train.WorkerGroupError):
            train(cfg, synthetic_features, out=out, model="resnet18", run_name="resume")
    assert killed, "no training worker was killed"
    assert read_results(out.child("runs", "resume")) is None
    res = train(cfg, synthetic_features, out=out, model="resnet18", run_name="resume")
    assert res.restarts == 1  # the failed run's checkpoint was resumed
    # the 6-epoch reference's first 3 epochs: the same seed and settings (epochs only ends a run)
    ref = read_results(one_worker_run.child("runs", "one"))
    assert _computed(res.history) == _computed(ref.history[:3])


def test_s3_storage_and_train_time_features(ray_session, s3_endpoint, tmp_path):
    """Shards, checkpoints and results on a real S3-protocol server; a 25 ms window computed on the worker."""
    from lssed.train.synthetic import write_synthetic_features

    prefix = f"s3://lssed-test/train-{uuid.uuid4().hex[:8]}"
    root = Storage(prefix, endpoint_url=s3_endpoint)
    features_uri = write_synthetic_features(root, features=SMALL_FEATURES, per_class=2)
    cfg = small_config("train.epochs=2", "features.win_length=400", "features.hop_length=200",
                       "train.crop_frames=48", f"storage.endpoint_url={s3_endpoint}")
    res = train(cfg, features_uri, out=root, model="resnet18", run_name="s3run")
    assert res.features_recomputed and res.feature_config["win_length"] == 400
    run = root.child("runs", "s3run")
    assert json.loads(run.read_bytes("results.json"))["run_name"] == "s3run"
    assert read_predictions(run).num_rows == res.val.n + res.evaluations["test"].n == 16
    assert any("checkpoint_epoch_" in p for p in run.list())
    # evaluation outside Ray uses the run's own (recomputed) feature settings, not the stored 1024/512
    evaluation = evaluate_on(run.uri, features_uri, storage_cfg=cfg.storage)
    assert evaluation.features_recomputed and evaluation.feature_config["win_length"] == 400
    assert evaluation.metrics.confusion == res.evaluations["test"].confusion
