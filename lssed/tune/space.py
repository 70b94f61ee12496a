"""The sweep's search space from ``cfg.tune`` as pure functions (no Ray).

Dimensions: model (any registered name), STFT window (paper: 25 ms = 400 and 64 ms = 1024
samples at 16 kHz), hop, lr (empty: ``train.lr``), crop length (``tune.crop_seconds`` or
``tune.crop_frames``; empty: the train section's crop).

The window study compares windows, nothing else: with ``tune.hops`` empty every trial uses ONE
hop (:func:`fixed_hop`: ``features.hop_length``, or half the shortest window when that is
longer than it, as a hop longer than a window skips samples), and a crop in seconds becomes
the same number of frames in every trial. Only a user who lists hops sweeps the frame rate. ``search: grid`` runs the full product, ``num_samples`` times
with seeds ``train.seed, train.seed+1, ...``; ``search: random`` draws ``num_samples``
distinct settings from the product (seeded by ``train.seed``). The trials are enumerated
here, not sampled by Tune, so their run names are deterministic and a resumed sweep maps
every trial to the same run directory.

n_fft must be at least the window: a window shorter than ``features.n_fft`` keeps n_fft
(1024) and is zero-padded to it (torch.stft semantics); a longer one raises n_fft to the
window length.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
import random
from dataclasses import dataclass
from typing import Any

from lssed.config import Config, ConfigError, config_to_dict, digest, replace_section

# A trial's driver (the Tune function that runs TorchTrainer.fit) and the Ray Data tasks that
# feed its workers each need CPU beside the workers themselves; on a 2-core laptop starving
# Ray Data hangs training (docs/install.md, gotcha 2), so concurrency leaves this much per trial.
DRIVER_CPUS = 0.5
DATA_CPUS = 1.0


@dataclass(frozen=True)
class TrialSpec:
    """One point of the search space: everything a trial changes in the config."""

    model: str
    win_length: int
    hop_length: int
    n_fft: int
    lr: float
    crop_frames: int
    seed: int

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "TrialSpec":
        return cls(str(d["model"]), int(d["win_length"]), int(d["hop_length"]), int(d["n_fft"]),
                   float(d["lr"]), int(d["crop_frames"]), int(d["seed"]))


def n_fft_for(window: int, n_fft: int) -> int:
    """Keep n_fft for windows up to it (zero-padded window); raise it to longer windows."""
    return n_fft if window <= n_fft else window


def fixed_hop(cfg: Config) -> int:
    """The one hop of a sweep without ``tune.hops``: ``features.hop_length``, or half the
    shortest window when the hop is longer than it."""
    shortest = min(cfg.tune.windows) if cfg.tune.windows else cfg.features.win_length
    hop = cfg.features.hop_length
    return hop if hop <= shortest else max(1, shortest // 2)


def crop_options(cfg: Config) -> list[tuple[str, float]]:
    """The sweep's crops: ``("frames", n)`` (fixed frames) or ``("seconds", s)`` (frames per hop)."""
    t, tc = cfg.tune, cfg.train
    if t.crop_frames:
        return [("frames", c) for c in t.crop_frames]
    if t.crop_seconds:
        return [("seconds", s) for s in t.crop_seconds]
    return [("frames", tc.crop_frames)] if tc.crop_frames is not None else [("seconds", tc.crop_seconds)]


def trial_specs(cfg: Config) -> list[TrialSpec]:
    """Every trial of the sweep, in a stable order (``cfg`` checked by ``validate_config(cfg, "tune")``)."""
    t = cfg.tune
    models, windows = t.models, t.windows
    lrs = t.lrs or (cfg.train.lr,)
    hops = t.hops or (fixed_hop(cfg),)
    sample_rate = cfg.features.sample_rate

    points = []
    for model, window, lr, (unit, crop) in itertools.product(models, windows, lrs, crop_options(cfg)):
        for hop in hops:
            frames = int(crop) if unit == "frames" else replace_section(
                cfg, "train", crop_seconds=float(crop), crop_frames=None).train.crop_frames_at(sample_rate, hop)
            points.append((model, window, hop, lr, frames))
    base_seed = cfg.train.seed
    if t.search == "grid":
        chosen = [(p, base_seed + i) for i in range(t.num_samples) for p in points]
    else:
        k = min(t.num_samples, len(points))
        picked = sorted(random.Random(base_seed).sample(range(len(points)), k))
        chosen = [(points[i], base_seed) for i in picked]
    return [TrialSpec(m, w, h, n_fft_for(w, cfg.features.n_fft), float(lr), c, s)
            for (m, w, h, lr, c), s in chosen]


def sweep_name(cfg: Config, features_uri: str) -> str:
    """``tune.name`` or a digest of everything that defines the sweep (stable across restarts)."""
    if cfg.tune.name:
        return cfg.tune.name
    tune_part = {k: v for k, v in config_to_dict(cfg.tune).items() if k not in ("max_concurrent_trials", "name")}
    train_part = {k: v for k, v in config_to_dict(cfg.train).items() if k not in ("run_name", "model", "models")}
    return digest(tune_part, train_part, cfg.features, features_uri.rstrip("/"), length=8)


def _lr_text(lr: float) -> str:
    return f"{lr:g}"


def run_name_for(sweep: str, spec: TrialSpec) -> str:
    """``tune-<sweep>-<model>-w<win>-h<hop>-lr<lr>-c<crop>-s<seed>``: deterministic and path-safe."""
    return (f"tune-{sweep}-{spec.model}-w{spec.win_length}-h{spec.hop_length}-lr{_lr_text(spec.lr)}"
            f"-c{spec.crop_frames}-s{spec.seed}")


def trial_config(cfg: Config, spec: TrialSpec, run_name: str) -> Config:
    """The whole config of one trial: features window/hop/n_fft and train model/lr/crop/seed/epochs.

    The crop is set in frames (the spec's, already converted from seconds at the trial's hop).
    """
    out = replace_section(cfg, "features", win_length=spec.win_length, hop_length=spec.hop_length,
                          n_fft=spec.n_fft)
    return replace_section(out, "train", model=spec.model, lr=spec.lr, crop_frames=spec.crop_frames,
                           seed=spec.seed, epochs=epochs_of(cfg), run_name=run_name)


def epochs_of(cfg: Config) -> int:
    return cfg.tune.epochs if cfg.tune.epochs is not None else cfg.train.epochs


def trial_resources(cfg: Config) -> tuple[float, float]:
    """(CPUs, GPUs) one trial holds: its workers, its driver, and room for its data tasks."""
    tc = cfg.train
    cpus = tc.num_workers * tc.cpus_per_worker + DRIVER_CPUS + DATA_CPUS
    gpus = float(tc.num_workers) if tc.use_gpu else 0.0
    return cpus, gpus


def max_concurrent(cfg: Config, cluster_cpus: float, cluster_gpus: float, n_trials: int) -> int:
    """``tune.max_concurrent_trials`` or as many trials as the cluster's CPUs (and GPUs) fit."""
    if cfg.tune.max_concurrent_trials is not None:
        return min(cfg.tune.max_concurrent_trials, max(1, n_trials))
    cpus, gpus = trial_resources(cfg)
    fit = math.floor(cluster_cpus / cpus) if cpus > 0 else n_trials
    if gpus > 0:
        if cluster_gpus < gpus:
            raise ConfigError(f"train.use_gpu with train.num_workers={cfg.train.num_workers} needs {gpus:g} GPU(s) "
                              f"per trial but the cluster has {cluster_gpus:g}; lower train.num_workers or set "
                              "train.use_gpu=false")
        fit = min(fit, math.floor(cluster_gpus / gpus))
    return max(1, min(fit, n_trials))
