"""lssed.config: typed loading, unknown keys, wrong types, YAML overrides, every shipped YAML."""

from __future__ import annotations

from pathlib import Path

import pytest

from lssed.config import (
    Config,
    ConfigError,
    apply_overrides,
    config_from_dict,
    config_to_dict,
    digest,
    dump_yaml,
    load_config,
    parse_override,
    replace_section,
)

REPO = Path(__file__).resolve().parents[1]
SHIPPED = sorted((REPO / "workflows" / "configs").glob("*.yaml"))


def test_defaults_are_the_paper_recipe():
    cfg = Config()
    f, t = cfg.features, cfg.train
    assert (f.n_fft, f.win_length, f.hop_length, f.n_mels, f.sample_rate) == (1024, 1024, 512, 128, 16000)
    assert (t.epochs, t.batch_size, t.lr, t.weight_decay, t.lr_step_epochs, t.lr_gamma) == (60, 256, 0.01, 1e-3, None, 0.1)
    from lssed.train.loop import lr_step_epochs  # null: every third of training, the paper's 20 of 60

    assert lr_step_epochs({"epochs": t.epochs, "lr_step_epochs": None}) == 20
    assert (t.crop_seconds, t.crop_frames, t.crop_frames_at(16000, 512)) == (5.0, None, 157)
    assert cfg.preprocess.gain == 2.0


def test_unknown_keys_are_rejected_with_the_valid_ones():
    with pytest.raises(ConfigError) as exc:
        config_from_dict({"train": {"learning_rate": 0.1}})
    assert "train.learning_rate" in str(exc.value) and "train.lr" in str(exc.value)
    with pytest.raises(ConfigError, match="unknown config key"):
        config_from_dict({"trian": {}})


@pytest.mark.parametrize(
    "data, where",
    [
        ({"train": {"epochs": "ten"}}, "train.epochs"),
        ({"train": {"epochs": 2.5}}, "train.epochs"),
        ({"train": {"use_gpu": "yes"}}, "train.use_gpu"),
        ({"train": {"epochs": True}}, "train.epochs"),
        ({"features": {"log": "ln"}}, "features.log"),
        ({"storage": {"root": 3}}, "storage.root"),
        ({"train": []}, "train"),
        ({"tune": {"windows": ["wide"]}}, "tune.windows[0]"),
    ],
)
def test_wrong_types_name_the_key(data, where):
    with pytest.raises(ConfigError) as exc:
        config_from_dict(data)
    assert where in str(exc.value)


def test_values_are_coerced_to_the_declared_types():
    cfg = config_from_dict({"train": {"lr": 1, "models": ["vgg11", "resnet18"]}, "tune": {"models": "vgg11"}})
    assert cfg.train.lr == 1.0 and isinstance(cfg.train.lr, float)
    assert cfg.train.models == ("vgg11", "resnet18")
    assert cfg.tune.models == ("vgg11",)  # a scalar where a list is expected
    assert config_from_dict({"storage": {"endpoint_url": None}}).storage.endpoint_url is None


def test_overrides_are_parsed_as_yaml():
    assert parse_override("train.lr=0.02") == (["train", "lr"], 0.02)
    assert parse_override("tune.models=[resnet18,vgg11]") == (["tune", "models"], ["resnet18", "vgg11"])
    assert parse_override("train.use_gpu=true") == (["train", "use_gpu"], True)
    assert parse_override("storage.root=s3://b/p") == (["storage", "root"], "s3://b/p")
    assert parse_override("storage.endpoint_url=") == (["storage", "endpoint_url"], None)
    for bad in ("train.lr", "=3", "train.lr=[1,"):
        with pytest.raises(ConfigError):
            parse_override(bad)


def test_load_config_layers_file_then_overrides(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("train:\n  lr: 0.5\n  epochs: 3\n")
    cfg = load_config(p, ["train.epochs=7", "tune.models=[vgg11]"])
    assert (cfg.train.lr, cfg.train.epochs, cfg.tune.models) == (0.5, 7, ("vgg11",))
    with pytest.raises(ConfigError, match="train.epochs"):
        load_config(p, ["train.epochs=seven"])
    with pytest.raises(ConfigError, match="not a section"):
        load_config(p, ["train.lr.x=1"])
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "missing.yaml")
    (tmp_path / "list.yaml").write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError, match="mapping"):
        load_config(tmp_path / "list.yaml")


def test_apply_overrides_does_not_mutate_its_input():
    data = {"train": {"lr": 0.1}}
    out = apply_overrides(data, ["train.lr=0.2"])
    assert data == {"train": {"lr": 0.1}} and out == {"train": {"lr": 0.2}}


def test_round_trip_digest_and_replace_section():
    cfg = load_config(None, ["train.models=[vgg11]"])
    assert config_from_dict(config_to_dict(cfg)) == cfg
    import yaml

    assert config_from_dict(yaml.safe_load(dump_yaml(cfg))) == cfg
    assert digest(cfg) == digest(config_from_dict(config_to_dict(cfg)))
    other = replace_section(cfg, "train", lr=0.5)
    assert other.train.lr == 0.5 and cfg.train.lr == 0.01 and digest(other) != digest(cfg)
    with pytest.raises(ConfigError):
        replace_section(cfg, "train", nope=1)
    import dataclasses

    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.train.lr = 3  # frozen


def test_config_errors_are_user_errors():
    """The command line shows them as one line with exit status 2 (lssed.errors)."""
    from lssed.errors import UserError, is_user_error

    with pytest.raises(ConfigError) as exc:
        load_config(None, ["train.epochs=ten"])
    assert isinstance(exc.value, UserError) and isinstance(exc.value, ValueError) and is_user_error(exc.value)
    assert not is_user_error(ValueError("a bug"))


def test_stages_defaults_run_everything_one_run_at_a_time():
    s = Config().stages
    assert (s.preprocess, s.train, s.tune, s.report, s.force, s.parallel_runs) == (True, True, True, True, False, 1)


def test_shipped_configs_exist():
    names = {p.name for p in SHIPPED}
    assert {"demo.yaml", "lssed.yaml"} <= names


@pytest.mark.parametrize("path", SHIPPED, ids=[p.name for p in SHIPPED])
def test_every_shipped_yaml_loads_and_names_real_models(path):
    from lssed.models import list_models

    cfg = load_config(path)
    zoo = set(list_models())
    assert set(cfg.train.models) <= zoo, set(cfg.train.models) - zoo
    assert set(cfg.tune.models) <= zoo, set(cfg.tune.models) - zoo
    # every key written in the file is understood (load_config would have raised otherwise)
    assert cfg == load_config(path, [])


def test_paper_config_is_paper_scale():
    from lssed.models import list_models

    cfg = load_config(REPO / "workflows" / "configs" / "lssed.yaml")
    assert set(cfg.train.models) == set(list_models()), "lssed.yaml trains the whole zoo"
    assert (cfg.train.epochs, cfg.train.batch_size, cfg.train.use_gpu) == (60, 256, True)
    assert cfg.storage.root.startswith("s3://")
    assert (cfg.features.n_fft, cfg.features.hop_length, cfg.features.n_mels) == (1024, 512, 128)


def test_shipped_configs_are_package_data_and_load_by_name(tmp_path, monkeypatch):
    """`--config lssed` works from any directory of an installed lssed; workflows/configs/ links to them."""
    import argparse
    import importlib.resources

    from lssed.config import packaged_configs
    from lssed.workflow_cli import config_from_cli

    assert {"demo", "lssed", "quality"} <= set(packaged_configs())
    for name in packaged_configs():
        assert importlib.resources.files("lssed").joinpath(f"configs/{name}.yaml").is_file()
        linked = REPO / "workflows" / "configs" / f"{name}.yaml"
        assert linked.resolve() == (REPO / "lssed" / "configs" / f"{name}.yaml").resolve()
    monkeypatch.chdir(tmp_path)  # no workflows/ here
    assert load_config("lssed") == load_config("lssed.yaml") == load_config(REPO / "lssed" / "configs" / "lssed.yaml")
    demo = config_from_cli(argparse.Namespace(config=None, overrides=[], out=None, force=False))
    assert demo == load_config(REPO / "lssed" / "configs" / "demo.yaml")
    assert demo.train.epochs != load_config(None).train.epochs  # the demo, not the paper-scale defaults


def test_a_missing_config_is_an_error_that_names_it(tmp_path):
    with pytest.raises(ConfigError, match=r"nope\.yaml does not exist.*demo"):
        load_config(tmp_path / "nope.yaml")
    with pytest.raises(ConfigError, match="no-such-config"):
        load_config("no-such-config")
