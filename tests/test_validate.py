"""lssed.validate: one check of the settings, collecting every problem, before Ray starts.

The hostile settings of issue 16 (n_mels=0, gain=nan or -5, hop_length=0) used to be accepted
(an empty or constant feature set committed) or failed only inside Ray workers.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from lssed.config import Config, ConfigError, config_to_dict, load_config, replace_section
from lssed.validate import STAGES, cluster_warnings, empty_mel_bands, validate_config

REPO = Path(__file__).resolve().parents[1]
DEMO = REPO / "workflows" / "configs" / "demo.yaml"


def problems(*overrides: str, stages: tuple[str, ...] = ("workflow",), models=None) -> str:
    """The ConfigError's text for these overrides of the demo config (fails if none is raised)."""
    with pytest.raises(ConfigError) as exc:
        validate_config(load_config(DEMO, list(overrides)), *stages, models=models)
    return str(exc.value)


def test_every_shipped_config_passes():
    for path in sorted((REPO / "workflows" / "configs").glob("*.yaml")):
        cfg = load_config(path)
        if cfg.corpus.name != "demo":  # real corpora live elsewhere: point at an existing directory
            cfg = replace_section(cfg, "corpus", root=str(REPO))
        if cfg.transfer.corpus is not None:  # the transfer corpus too (transfer_demo: generated first)
            cfg = replace_section(cfg, "transfer", corpus={**config_to_dict(cfg.transfer.corpus), "root": str(REPO)})
        for stage in STAGES:
            validate_config(cfg, stage)
    validate_config(Config(), "preprocess", "train", "tune")


@pytest.mark.parametrize(
    "override, key",
    [
        ("features.n_mels=0", "features.n_mels=0"),
        ("preprocess.gain=.nan", "preprocess.gain=nan"),
        ("preprocess.gain=-5", "preprocess.gain=-5"),
        ("preprocess.gain=0", "preprocess.gain=0"),
        ("preprocess.gain=.inf", "preprocess.gain=inf"),
        ("features.hop_length=0", "features.hop_length=0"),
        ("features.hop_length=2048", "features.hop_length=2048"),  # longer than the window
        ("features.win_length=2048", "features.win_length=2048"),  # longer than n_fft
        ("features.f_max=9000", "features.f_max=9000"),  # above Nyquist at 16 kHz
        ("features.f_min=.nan", "features.f_min=nan"),
        ("features.log_offset=0", "features.log_offset=0"),
        ("features.n_mels=1000", "features.n_mels=1000"),  # more bands than frequency bins
        ("features.sample_rate=8000", "features.sample_rate=8000"),  # audio is decoded at 16 kHz
        ("preprocess.rows_per_shard=0", "preprocess.rows_per_shard=0"),
        ("preprocess.min_duration_s=-1", "preprocess.min_duration_s=-1"),
        ("preprocess.sample_rate=0", "preprocess.sample_rate=0"),
        ("preprocess.max_missing_s=.nan", "preprocess.max_missing_s=nan"),
        ("preprocess.max_segment_s=0", "preprocess.max_segment_s=0"),
        ("preprocess.actor_start_timeout_s=-1", "preprocess.actor_start_timeout_s=-1"),
        ("storage.request_timeout_s=.nan", "storage.request_timeout_s=nan"),
        ("storage.retries=-1", "storage.retries=-1"),
    ],
)
def test_hostile_preprocess_settings_are_named(override, key):
    assert key in problems(override, stages=("preprocess",))


def test_a_nan_is_never_a_valid_number():
    """`x <= 0` is False for NaN: every float key must still reject it."""
    from dataclasses import fields

    for section in ("preprocess", "features", "train", "corpus", "storage"):
        for f in fields(getattr(Config(), section)):
            if isinstance(getattr(getattr(Config(), section), f.name), float):
                text = problems(f"{section}.{f.name}=.nan", stages=("workflow", "preprocess"))
                assert f"{section}.{f.name}=nan" in text, text


def test_empty_mel_bands_are_counted_as_the_transform_builds_them():
    from lssed.config import FeatureConfig

    assert empty_mel_bands(FeatureConfig()) == 0  # the paper's 128 bands at n_fft 1024
    assert empty_mel_bands(FeatureConfig(n_fft=256, win_length=256, hop_length=128)) > 0
    assert "cover no frequency bin" in problems("features.n_fft=256", "features.win_length=256",
                                                "features.hop_length=128", stages=("preprocess",))


def test_the_quick_mel_band_check_never_passes_a_config_torchaudio_finds_empty_bands():
    """validate answers from numpy when every band clearly holds a bin; torchaudio must agree."""
    import torchaudio.functional as AF

    from lssed.config import FeatureConfig
    from lssed.features_np import every_mel_band_has_a_bin

    quick = 0
    for sr in (8000, 16000, 22050):
        for n_fft in (256, 512, 1024, 2048):
            for n_mels in (40, 64, 80, 128, 256):
                for f_min, f_max in ((0.0, None), (20.0, None), (50.0, 4000.0)):
                    if n_mels > n_fft // 2 + 1 or (f_max is not None and f_max > sr / 2):
                        continue
                    f = FeatureConfig(sample_rate=sr, n_fft=n_fft, win_length=n_fft, n_mels=n_mels, f_min=f_min, f_max=f_max)
                    if every_mel_band_has_a_bin(f):
                        quick += 1
                        fb = AF.melscale_fbanks(n_fft // 2 + 1, f_min, f_max or sr / 2, n_mels, sr,
                                                norm="slaney", mel_scale="slaney")
                        assert int((fb.max(dim=0).values <= 0).sum()) == 0, (sr, n_fft, n_mels, f_min, f_max)
    assert quick > 20  # the quick path answers the usual configs


def test_imported_spectrograms_skip_the_filterbank_check():
    cfg = load_config(DEMO, ["features.n_fft=256", "features.win_length=256", "features.hop_length=128"])
    validate_config(cfg, "import")
    with pytest.raises(ConfigError):
        validate_config(cfg, "preprocess")


def test_corpus_rules():
    assert "corpus.encoding" in problems("corpus.name=generic", f"corpus.root={DEMO}", "corpus.encoding=klingon")
    assert "corpus.allow_outside_root" in problems("corpus.name=ravdess", f"corpus.root={REPO}",
                                                   "corpus.allow_outside_root=true")
    assert "corpus.root" in problems("corpus.name=iemocap")
    assert "does not exist" in problems("corpus.name=generic", "corpus.root=/no/such/corpus.csv")
    assert "corpus.test_fraction" in problems("corpus.val_fraction=0.5", "corpus.test_fraction=0.5")
    assert "corpus.speakers=1" in problems("corpus.speakers=1")


def test_train_rules_one_for_every_entry_point():
    # the trainer needs Ray Train workers: 0 is refused by the workflow as by make_trainer
    assert "train.num_workers=0" in problems("train.num_workers=0")
    assert "train.num_workers=0" in problems("train.num_workers=0", stages=("train",), models=["resnet18"])
    assert "train.batch_size=3" in problems("train.batch_size=3", "train.num_workers=2", stages=("train",))
    for bad in ("train.lr=0", "train.lr=.nan", "train.epochs=0", "train.crop_frames=0", "train.momentum=1",
                "train.lr_gamma=0", "train.num_classes=5", "train.eval_batch_size=0", "train.prefetch_batches=-1",
                "train.checkpoints_to_keep=0", "train.local_shuffle_buffer_size=-1"):
        assert bad.split("=")[0] in problems(bad, stages=("train",)), bad


def test_model_names_come_from_the_one_registry():
    from lssed.models import create_model

    text = problems("train.models=[resnet18,nosuchnet]")
    assert "train.models: unknown model 'nosuchnet'" in text and "resnet18" in text  # the zoo is listed
    assert "train.model: unknown model 'other'" in problems(stages=("train",), models=["other"])
    assert "tune.models: unknown model 'x'" in problems("tune.models=[x]", stages=("tune",))
    with pytest.raises(ValueError) as exc:  # the library API keeps its own error, same words
        create_model("nosuchnet")
    assert str(exc.value).startswith("unknown model 'nosuchnet'; available (`lssed models`): ")


def test_only_the_stages_asked_for_are_checked():
    cfg = load_config(DEMO, ["train.models=[nosuchnet]", "tune.windows=[0]", "preprocess.gain=-1"])
    with pytest.raises(ConfigError):
        validate_config(cfg, "preprocess")
    validate_config(replace_section(cfg, "preprocess", gain=2.0), "preprocess")  # train/tune not read
    off = replace_section(replace_section(cfg, "preprocess", gain=2.0), "stages", train=False, tune=False)
    validate_config(off, "workflow")  # the workflow checks only the stages it runs
    with pytest.raises(ValueError, match="unknown stage"):
        validate_config(cfg, "nosuchstage")  # type: ignore[arg-type]


def test_every_problem_is_listed_at_once():
    text = problems("features.n_mels=0", "preprocess.gain=.nan", "features.hop_length=0", "train.epochs=0",
                    "tune.hops=[9999]", "stages.parallel_runs=0", "storage.root=gs://b/x")
    for key in ("features.n_mels", "preprocess.gain", "features.hop_length", "train.epochs", "tune.hops",
                "stages.parallel_runs", "storage.root"):
        assert key in text, key
    assert text.count("\n  - ") == 7


def test_tune_space_rules():
    assert "hop 512 > window 400" in problems("tune.windows=[400]", "tune.hops=[512]", stages=("tune",))
    assert "tune.windows" in problems("tune.windows=[0]", stages=("tune",))
    assert "tune.windows" in problems("tune.windows=[400,400]", stages=("tune",))
    assert "tune.lrs" in problems("tune.lrs=[.nan]", stages=("tune",))
    assert "tune.num_samples" in problems("tune.num_samples=0", stages=("tune",))
    assert "tune.reduction_factor" in problems("tune.reduction_factor=1", stages=("tune",))
    assert "tune.max_concurrent_trials" in problems("tune.max_concurrent_trials=0", stages=("tune",))
    # windows longer than features.n_fft are fine: the sweep raises n_fft to the window
    validate_config(load_config(DEMO, ["tune.windows=[4096]"]), "tune")


def test_local_storage_root_becomes_absolute(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    cfg = validate_config(load_config(DEMO, ["storage.root=rel/out"]), "preprocess")
    assert cfg.storage.root == str(tmp_path / "rel" / "out")  # Ray workers do not share our cwd
    assert validate_config(load_config(DEMO, ["storage.root=s3://b/p"]), "train").storage.root == "s3://b/p"
    assert "storage.endpoint_url" in problems("storage.endpoint_url=localhost:9000", stages=("train",))


def test_cluster_warnings_are_about_what_the_cluster_lacks():
    gpu = load_config(DEMO, ["train.use_gpu=true"])
    assert cluster_warnings(gpu, {"CPU": 8.0}) and "GPU" in cluster_warnings(gpu, {"CPU": 8.0})[0]
    assert cluster_warnings(gpu, {"CPU": 8.0, "GPU": 1.0}) == []
    assert cluster_warnings(load_config(DEMO), {"CPU": 8.0}) == []


# --------------------------------------------------------------------------- through the CLI


def _cli(*argv: str, cwd: Path) -> tuple[int, str, bool]:
    """(exit status, stderr, was Ray initialised) of `lssed ARGV` in a fresh interpreter."""
    script = ("import sys, ray; from lssed.cli import main; rc = main(sys.argv[1:]); "
              "print('RAY', ray.is_initialized()); sys.exit(rc)")
    proc = subprocess.run([sys.executable, "-c", script, *argv], capture_output=True, text=True, timeout=300,
                          cwd=cwd)
    return proc.returncode, proc.stderr, "RAY True" in proc.stdout


@pytest.mark.parametrize("override", ["features.n_mels=0", "preprocess.gain=.nan", "preprocess.gain=-5",
                                      "features.hop_length=0"])
def test_hostile_settings_fail_in_lssed_preprocess_before_ray(override, tmp_path):
    """Exit 2, the key named in one line, nothing written, and Ray never started."""
    manifest = tmp_path / "manifest.parquet"  # never read: the settings are checked first
    rc, err, ray_started = _cli("preprocess", str(manifest), "--out", str(tmp_path / "store"), "--set", override,
                                cwd=tmp_path)
    assert rc == 2, err
    assert override.split("=")[0] in err and "Traceback" not in err
    assert not ray_started
    assert not (tmp_path / "store").exists()


def test_hostile_settings_fail_in_the_other_entry_points_before_ray(tmp_path):
    features = tmp_path / "features"  # never read either
    for argv in (["train", str(features), "--set", "train.num_workers=0"],
                 ["tune", str(features), "--set", "tune.windows=[0]"],
                 ["run", "--set", "features.hop_length=0"]):
        rc, err, ray_started = _cli(*argv, "--out", str(tmp_path / "store"), cwd=tmp_path)
        assert rc == 2 and argv[-1].split("=")[0] in err and not ray_started, (argv, err)
