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
    from lssed.tune.sweep import tune

    cfg = load_config(None, ["tune.models=[resnet18,nosuchnet]"])
    with pytest.raises(ValueError, match="unknown model.*nosuchnet"):
        tune(cfg, features, out=Storage(str(tmp_path)))
    with pytest.raises(FileNotFoundError, match="_SUCCESS.json"):
        tune(load_config(None, []), str(tmp_path / "nofeatures"), out=Storage(str(tmp_path)))
    # through the CLI: a clear error and exit status 2, no traceback
    assert main(["tune", features, "--out", str(tmp_path), "--set", "tune.models=[nosuchnet]"]) == 2
    assert "nosuchnet" in caplog.text
    assert main(["tune", features, "--out", str(tmp_path), "--set", "tune.windows=[400]",
                 "--set", "tune.hops=[800]"]) == 2
    assert "hop 800 > window 400" in caplog.text
    assert not (tmp_path / "tune").exists()
