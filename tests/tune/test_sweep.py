"""A real 2 x 2 sweep (2 models x 2 STFT windows, 1 epoch) on Ray Tune + Ray Train, then a
resume of the finished experiment, then the report built from what the sweep left in storage.

Features: the trainer's synthetic shards (real int16 waveforms and log-mels in the preprocess
stage's exact layout), so the 25 ms window is recomputed from the stored waveform on the worker.
"""

from __future__ import annotations

import pytest

from lssed.config import FeatureConfig, load_config
from lssed.storage import Storage

pytestmark = [pytest.mark.ray, pytest.mark.slow]

OVERRIDES = [
    "features.n_mels=64",
    "train.epochs=1",
    "train.batch_size=16",
    "train.eval_batch_size=16",
    "train.crop_frames=32",
    "train.lr=0.05",
    "train.cpus_per_worker=1",
    "train.num_workers=1",
    "tune.models=[resnet18,vgg11]",
    "tune.windows=[400,1024]",
    "tune.epochs=1",
    "tune.max_concurrent_trials=2",
]


@pytest.fixture(scope="module")
def sweep_features(tmp_path_factory) -> str:
    from lssed.train.synthetic import write_synthetic_features

    root = Storage(str(tmp_path_factory.mktemp("sweep-features")))
    return write_synthetic_features(root, features=FeatureConfig(n_mels=64), per_class=3)


def test_sweep_2x2_resume_and_report(ray_session, sweep_features, tmp_path):
    from lssed.report.build import build_report
    from lssed.train.results import RunResults
    from lssed.tune import space
    from lssed.tune.sweep import tune

    cfg = load_config(None, OVERRIDES)
    out = Storage(str(tmp_path / "store"))
    result = tune(cfg, sweep_features, out=out)

    assert result.errors == ()
    assert len(result.trials) == 4 and result.max_concurrent_trials == 2 and not result.resumed
    assert {(t.spec.model, t.spec.win_length, t.spec.hop_length, t.spec.n_fft) for t in result.trials} == {
        ("resnet18", 400, 200, 1024), ("resnet18", 1024, 200, 1024),  # one hop for every window
        ("vgg11", 400, 200, 1024), ("vgg11", 1024, 200, 1024)}
    assert all(t.status == "completed" and t.epochs == 1 for t in result.trials)
    # selection on validation UA only: the best trial is the argmax of val_ua
    best = max(result.trials, key=lambda t: t.val_ua)
    assert result.best_run_name == best.run_name and result.best_val_ua == best.val_ua

    for t in result.trials:
        assert t.run_name == space.run_name_for(result.sweep_name, t.spec)
        run = RunResults.from_dict(out.child("runs", t.run_name).read_json("results.json"))
        assert run.model == t.spec.model and run.epochs_completed == 1
        assert (run.feature_config["win_length"], run.feature_config["hop_length"]) == (t.spec.win_length,
                                                                                        t.spec.hop_length)
        assert run.features_recomputed  # stored: the paper's 1024 / 512; every trial: hop 200
        assert run.val.ua == pytest.approx(t.val_ua)
        assert run.tune_trial and run.tune_trial.startswith(result.sweep_name + "/")
        assert out.exists("runs", t.run_name, "predictions.parquet")
    assert out.exists("tune", result.sweep_name, "lssed_sweep.json")

    # the same command again restores the finished experiment instead of retraining
    before = {t.run_name: out.read_bytes("runs", t.run_name, "results.json") for t in result.trials}
    again = tune(cfg, sweep_features, out=out)
    assert again.resumed and again.sweep_name == result.sweep_name
    assert again.best_run_name == result.best_run_name and again.errors == ()
    assert {t.run_name: out.read_bytes("runs", t.run_name, "results.json") for t in again.trials} == before

    # a run stopped early (here: its results.json removed) is evaluated from its last checkpoint
    from lssed.tune.sweep import finalize_stopped_run

    victim = result.trials[0]
    old = RunResults.from_dict(out.child("runs", victim.run_name).read_json("results.json"))
    out.filesystem.delete_file(out.path("runs", victim.run_name, "results.json"))
    new = finalize_stopped_run(cfg, sweep_features, out=out, sweep=result.sweep_name, spec=victim.spec,
                               epochs_done=1)
    assert new is not None and new.epochs_completed == 1 and new.tune_trial == f"{result.sweep_name}/stopped-early"
    assert new.val.confusion == old.val.confusion and new.evaluations["test"].confusion == old.evaluations["test"].confusion

    # the report reads the sweep's runs like any other
    report = build_report(out.uri, tmp_path / "report")
    assert report.runs == 4
    windows = report.table("windows")
    for w in (400, 1024):
        for model in ("resnet18", "vgg11"):
            assert windows.cell({"window": w}, f"{model}_mean") is not None
    assert len([f for f in report.figures if f.kind == "confusion"]) == 4



def test_one_trial_sweep_on_s3_resumes(ray_session, s3_endpoint, sweep_features):
    """Runs, checkpoints and the Tune experiment all in S3 (moto over HTTP); the rerun restores it."""
    from lssed.train.results import RunResults
    from lssed.tune.sweep import tune

    cfg = load_config(None, [*OVERRIDES, "tune.models=[resnet18]", "tune.windows=[1024]",
                             f"storage.endpoint_url={s3_endpoint}"])
    out = Storage("s3://lssed-test/sweep", endpoint_url=s3_endpoint)
    result = tune(cfg, sweep_features, out=out)
    assert result.errors == () and len(result.trials) == 1 and result.trials[0].status == "completed"
    assert result.experiment_uri.startswith("s3://lssed-test/sweep/tune/")
    run = RunResults.from_dict(out.child("runs", result.best_run_name).read_json("results.json"))
    assert run.val.ua == pytest.approx(result.best_val_ua)
    assert out.exists("tune", result.sweep_name, "lssed_sweep.json")
    again = tune(cfg, sweep_features, out=out)
    assert again.resumed and again.best_run_name == result.best_run_name


def test_asha_stops_a_clearly_worse_trial(ray_session, sweep_features, tmp_path):
    """Two trials, one at a learning rate that cannot learn in 4 epochs. With one trial at a time, the
    good one fills ASHA's rung at epoch 3; the bad one is stopped there, is evaluated from its last
    checkpoint, and the report lists it as stopped early with the epochs it trained."""
    from lssed.report.build import build_report
    from lssed.tune.sweep import tune

    cfg = load_config(None, [*OVERRIDES, "train.batch_size=8", "tune.models=[resnet18]", "tune.windows=[1024]",
                             "tune.lrs=[0.01,0.000001]", "tune.epochs=6", "tune.asha=true",
                             "tune.grace_period=3", "tune.reduction_factor=2", "tune.max_concurrent_trials=1"])
    out = Storage(str(tmp_path / "store"))
    result = tune(cfg, sweep_features, out=out)
    assert result.errors == ()
    by_lr = {t.spec.lr: t for t in result.trials}
    good, bad = by_lr[0.01], by_lr[0.000001]
    assert good.status == "completed" and good.epochs == 6
    # ASHA decides at the rung (epoch 3); the stop reaches the trial's TorchTrainer asynchronously, so
    # its workers may finish one more epoch before they are stopped
    assert bad.status == "stopped early, evaluated" and 3 <= bad.epochs < 6, (bad.status, bad.epochs)
    assert result.best_run_name == good.run_name
    report = build_report(out.uri, tmp_path / "report")
    runs = report.table("runs")
    assert runs.cell({"run": bad.run_name}, "status") == "stopped early"
    assert runs.cell({"run": bad.run_name}, "epochs") == bad.epochs
    assert runs.cell({"run": good.run_name}, "status") == "complete"
