"""`lssed tune` / `lssed report` command lines and the sweep's checks before Ray starts."""

from __future__ import annotations

import pytest

from lssed.cli import build_parser, main
from lssed.config import FeatureConfig, load_config
from lssed.storage import Storage


@pytest.fixture(scope="module")
def features(tmp_path_factory) -> str:
    from lssed.train.synthetic import write_synthetic_features

    root = Storage(str(tmp_path_factory.mktemp("cli-features")))
    return write_synthetic_features(root, features=FeatureConfig(n_mels=32), speakers=3, per_class=1)


def test_help_describes_the_sweep():
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    assert "ASHA" in sub.choices["tune"].description and "validation UA" in sub.choices["tune"].description
    assert "runs/" in sub.choices["report"].description


def test_bad_inputs_fail_before_ray_with_advice(features, tmp_path, caplog):
    from lssed.config import ConfigError
    from lssed.errors import InputNotFoundError
    from lssed.tune.sweep import tune

    cfg = load_config(None, ["tune.models=[resnet18,nosuchnet]"])
    with pytest.raises(ConfigError, match="unknown model 'nosuchnet'"):
        tune(cfg, features, out=Storage(str(tmp_path)))
    with pytest.raises(InputNotFoundError, match="_SUCCESS.json"):
        tune(load_config(None, []), str(tmp_path / "nofeatures"), out=Storage(str(tmp_path)))
    # through the CLI: a clear error and exit status 2, no traceback
    assert main(["tune", features, "--out", str(tmp_path), "--set", "tune.models=[nosuchnet]"]) == 2
    assert "nosuchnet" in caplog.text
    assert main(["tune", features, "--out", str(tmp_path), "--set", "tune.windows=[400]",
                 "--set", "tune.hops=[800]"]) == 2
    assert "hop 800 > window 400" in caplog.text
    assert not (tmp_path / "tune").exists()


def test_trials_are_retried_train_max_failures_times(tmp_path):
    """Tune's FailureConfig follows train.max_failures (it was a constant 1)."""
    from lssed.tune.sweep import run_config

    for n in (0, 3, -1):
        rc = run_config(load_config(None, [f"train.max_failures={n}"]), "sw", str(tmp_path), None)
        assert rc.failure_config.max_failures == n and rc.name == "sw"


def test_force_clears_the_experiment_and_only_its_trial_runs(features, tmp_path):
    from lssed.tune import space
    from lssed.tune.sweep import clear_sweep

    cfg = load_config(None, ["tune.models=[resnet18]", "tune.windows=[400,1024]"])
    out = Storage(str(tmp_path / "store"))
    sweep = space.sweep_name(cfg, features)
    trial_runs = [space.run_name_for(sweep, s) for s in space.trial_specs(cfg)]
    for name in trial_runs + ["resnet18-other-run", f"tune-{sweep}-elsewhere"]:
        out.write_json({}, "runs", name, "results.json")
    out.write_json({}, "tune", sweep, "tuner.pkl")
    out.write_json({}, "tune", "another-sweep", "tuner.pkl")
    clear_sweep(cfg, features, out=out)
    assert not out.exists("tune", sweep) and out.exists("tune", "another-sweep")
    assert [n for n in trial_runs if out.exists("runs", n)] == []
    assert out.exists("runs", "resnet18-other-run") and out.exists("runs", f"tune-{sweep}-elsewhere")


def test_tune_cli_takes_force_and_defaults_out_to_storage_root(features, tmp_path, caplog):
    """--out is optional (storage.root); a bad space still fails before Ray with exit 2."""
    root = tmp_path / "from-config"
    assert main(["tune", features, "--force", "--set", f"storage.root={root}", "--set", "tune.windows=[0]"]) == 2
    assert "tune.windows=[0]" in caplog.text and not root.exists()
