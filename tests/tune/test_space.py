"""The search space as pure functions: grid/random enumeration, n_fft rule, run names,
trial configs and concurrency from resources."""

from __future__ import annotations

import pytest

from lssed.config import ConfigError, load_config
from lssed.tune import space


def cfg_with(*overrides: str):
    return load_config(None, list(overrides))


def test_grid_is_the_full_product_with_one_hop_and_crop_for_every_window():
    """The window study varies the window only: one hop, so the same frame rate and crop frames."""
    cfg = cfg_with("tune.models=[resnet18,vgg11]", "tune.windows=[400,1024]")
    specs = space.trial_specs(cfg)
    # features.hop_length=512 is longer than the 400-sample window: half of it, for both windows
    assert [(s.model, s.win_length, s.hop_length, s.n_fft) for s in specs] == [
        ("resnet18", 400, 200, 1024), ("resnet18", 1024, 200, 1024),
        ("vgg11", 400, 200, 1024), ("vgg11", 1024, 200, 1024)]
    # 5 s at hop 200 / 16 kHz: 401 frames, in every trial
    assert {s.lr for s in specs} == {cfg.train.lr} and {s.crop_frames for s in specs} == {401}
    assert {s.seed for s in specs} == {0}
    hop = cfg_with("tune.windows=[400,1024]", "features.hop_length=160")
    assert {s.hop_length for s in space.trial_specs(hop)} == {160}
    assert {s.crop_frames for s in space.trial_specs(hop)} == {501}


def test_crop_seconds_cover_the_same_audio_when_hops_are_swept():
    cfg = cfg_with("tune.models=[resnet18]", "tune.windows=[1024]", "tune.hops=[256,512]", "train.crop_seconds=2.0")
    assert [(s.hop_length, s.crop_frames) for s in space.trial_specs(cfg)] == [(256, 126), (512, 63)]
    frames = cfg_with("tune.models=[resnet18]", "tune.windows=[1024]", "tune.hops=[256,512]", "train.crop_frames=40")
    assert {s.crop_frames for s in space.trial_specs(frames)} == {40}  # crop_frames wins over crop_seconds
    swept = cfg_with("tune.models=[resnet18]", "tune.windows=[1024]", "tune.crop_seconds=[1.0,3.0]")
    assert [s.crop_frames for s in space.trial_specs(swept)] == [32, 94]


def test_n_fft_rule_zero_pads_short_windows_and_grows_for_long_ones():
    assert space.n_fft_for(400, 1024) == 1024
    assert space.n_fft_for(1024, 1024) == 1024
    assert space.n_fft_for(2048, 1024) == 2048
    specs = space.trial_specs(cfg_with("tune.models=[resnet18]", "tune.windows=[2048]", "tune.hops=[256]"))
    assert [(s.win_length, s.hop_length, s.n_fft) for s in specs] == [(2048, 256, 2048)]


def test_grid_num_samples_repeats_with_new_seeds():
    cfg = cfg_with("tune.models=[resnet18]", "tune.windows=[400]", "tune.lrs=[0.1,0.01]", "tune.num_samples=2",
                   "train.seed=5")
    specs = space.trial_specs(cfg)
    assert [(s.lr, s.seed) for s in specs] == [(0.1, 5), (0.01, 5), (0.1, 6), (0.01, 6)]
    names = [space.run_name_for("sw", s) for s in specs]
    assert len(set(names)) == 4
    assert names[0] == "tune-sw-resnet18-w400-h200-lr0.1-c401-s5"


def test_random_search_draws_distinct_points_reproducibly():
    over = ["tune.search=random", "tune.models=[resnet18,vgg11]", "tune.windows=[400,512,1024]",
            "tune.lrs=[0.1,0.01,0.001]", "tune.num_samples=5"]
    a, b = space.trial_specs(cfg_with(*over)), space.trial_specs(cfg_with(*over))
    assert a == b and len(a) == 5 and len(set(a)) == 5
    other = space.trial_specs(cfg_with(*over, "train.seed=1"))
    assert other != a
    # more samples than points: every point once
    assert len(space.trial_specs(cfg_with(*over[:-1], "tune.num_samples=100"))) == 18


def test_bad_spaces_raise_with_advice():
    """The one settings check (lssed.validate) rejects them before trial_specs runs."""
    from lssed.validate import validate_config

    with pytest.raises(ConfigError, match="hop 512 > window 400"):
        validate_config(cfg_with("tune.windows=[400]", "tune.hops=[512]"), "tune")
    with pytest.raises(ConfigError, match=r"tune.windows=\[0\]"):
        validate_config(cfg_with("tune.windows=[0]"), "tune")
    with pytest.raises(ConfigError, match="tune.num_samples=0"):
        validate_config(cfg_with("tune.num_samples=0"), "tune")
    with pytest.raises(ConfigError, match="tune.lrs"):
        validate_config(cfg_with("tune.lrs=[-0.1]"), "tune")


def test_trial_config_changes_only_the_trial_keys():
    cfg = cfg_with("tune.epochs=3", "train.epochs=60", "features.n_mels=64")
    spec = space.TrialSpec("vgg11", 400, 160, 1024, 0.05, 32, 7)
    tc = space.trial_config(cfg, spec, "run-x")
    assert (tc.features.win_length, tc.features.hop_length, tc.features.n_fft, tc.features.n_mels) == (400, 160, 1024, 64)
    assert (tc.train.model, tc.train.lr, tc.train.crop_frames, tc.train.seed, tc.train.epochs, tc.train.run_name) == (
        "vgg11", 0.05, 32, 7, 3, "run-x")
    assert tc.train.batch_size == cfg.train.batch_size and tc.preprocess == cfg.preprocess
    assert space.TrialSpec.from_dict(spec.to_dict()) == spec


def test_sweep_name_is_stable_and_config_sensitive():
    a = space.sweep_name(cfg_with("tune.windows=[400,1024]"), "/x/features/abc")
    assert a == space.sweep_name(cfg_with("tune.windows=[400,1024]"), "/x/features/abc/")
    assert a == space.sweep_name(cfg_with("tune.windows=[400,1024]", "tune.max_concurrent_trials=3"), "/x/features/abc")
    assert a != space.sweep_name(cfg_with("tune.windows=[400]"), "/x/features/abc")
    assert a != space.sweep_name(cfg_with("tune.windows=[400,1024]"), "/x/features/def")
    assert space.sweep_name(cfg_with("tune.name=mine"), "/x") == "mine"


def test_concurrency_from_resources():
    cfg = cfg_with("train.num_workers=1", "train.cpus_per_worker=1")
    assert space.trial_resources(cfg) == (2.5, 0.0)
    assert space.max_concurrent(cfg, 8, 0, 10) == 3
    assert space.max_concurrent(cfg, 8, 0, 2) == 2  # never more than the trials
    assert space.max_concurrent(cfg, 1, 0, 4) == 1  # at least one
    gpu = cfg_with("train.use_gpu=true", "train.num_workers=2")
    assert space.max_concurrent(gpu, 64, 4, 10) == 2
    with pytest.raises(ConfigError, match="needs 2 GPU"):
        space.max_concurrent(gpu, 64, 1, 10)
    assert space.max_concurrent(cfg_with("tune.max_concurrent_trials=4"), 1, 0, 10) == 4


def test_the_report_states_what_the_window_study_held_equal():
    """lssed/report/tables.py's window table: settings equal in every trial, and any confound."""
    from lssed.report.tables import window_table
    from tests.report.conftest import make_run

    fair = [make_run(f"w{w}", "resnet18", seed=0, test_ua=0.5, val_ua=0.5, window=w, hop=200) for w in (400, 1024)]
    notes = window_table(fair).notes
    assert notes[0].startswith("Held equal in every trial shown: hop 200, ")
    assert "crop (frames) 32" in notes[0] and "lr 0.01" in notes[0] and len(notes) == 1
    confounded = [make_run(f"w{w}", "resnet18", seed=0, test_ua=0.5, val_ua=0.5, window=w, hop=w // 2)
                  for w in (400, 1024)]
    assert any(n.startswith("Also varied besides the window") and "hop {200, 512}" in n
               for n in window_table(confounded).notes)
