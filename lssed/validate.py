"""One check of the settings, run by every entry point before Ray starts.

``validate_config(cfg, *stages)`` checks what the named stages read and raises one
:class:`~lssed.config.ConfigError` listing every problem, each naming its key (``--set`` form)
and what a valid value is. The workflow, ``lssed preprocess`` and the preprocess stage,
``lssed train``, the train stage and ``make_trainer``, ``lssed tune`` and the sweep all call it,
so a bad value fails in a second with the key named rather than in Ray workers, or worse,
commits an empty or constant feature set.

Every rule says what a valid value is (``math.isfinite(x) and x > 0``): written the other way
round (``x <= 0``) NaN would pass, as every comparison with NaN is false.
"""

from __future__ import annotations

import logging
import math
import re
from dataclasses import fields
from typing import Any, Iterable, Literal, Mapping, Sequence
from urllib.parse import urlparse

from lssed.config import Config, ConfigError, replace_section
from lssed.features_np import empty_mel_bands

log = logging.getLogger(__name__)

# What an entry point runs. "workflow" is every stage cfg.stages enables, plus the stages
# section itself; "import" is `lssed import-features` (features without decoding).
Stage = Literal["workflow", "corpus", "preprocess", "import", "train", "tune", "report", "predict", "transfer"]
STAGES: tuple[str, ...] = ("workflow", "corpus", "preprocess", "import", "train", "tune", "report", "predict",
                           "transfer")


def validate_config(cfg: Config, *stages: Stage, models: Sequence[str] | None = None) -> Config:
    """Check the settings ``stages`` read (default: the whole workflow); return ``cfg`` normalised.

    ``models``: the models a train stage will build when they do not come from
    ``train.models`` (``lssed train --model``, one Tune trial). Normalised: a local
    ``storage.root`` becomes absolute, as Ray workers and job drivers do not share the
    caller's working directory. Raises :class:`ConfigError` listing every problem.
    """
    wanted = _expand(stages or ("workflow",), cfg)
    check = _Checker(cfg)
    check_storage(check)
    check_ray(check)
    if "workflow" in wanted:
        check_stages(check)
    if "corpus" in wanted:
        check_corpus(check)
    if "workflow" in wanted:
        check_corpora(check)
    if "import" in wanted and "corpus" not in wanted:
        check_corpus_split(check)  # import-features carves val / splits by speaker with these keys
    if wanted & {"preprocess", "import", "train", "tune"}:
        # imported spectrograms were computed elsewhere: their filterbank is not ours to check
        check_features(check, filterbank=bool(wanted & {"preprocess", "train", "tune"}))
    if "preprocess" in wanted:
        check_preprocess(check)
    if wanted & {"train", "tune"}:
        check_train(check)  # a Tune trial is a training run too
    if "train" in wanted:
        if models is not None:
            check_models(check, "train.model", tuple(models))
        elif "workflow" in wanted:
            check_workflow_runs(check)
        else:
            check_models(check, "train.model", (cfg.train.model,))
    if "tune" in wanted:
        check_tune(check)
    if "report" in wanted:
        check_report(check)
    if "predict" in wanted:
        check_predict(check)
    if "transfer" in wanted:
        check_transfer(check)
    if check.problems:
        raise ConfigError("invalid config (fix with --set KEY=VALUE or in the YAML):\n  - "
                          + "\n  - ".join(check.problems))
    return _normalised(cfg)


def _expand(stages: Iterable[str], cfg: Config) -> set[str]:
    wanted = set(stages)
    unknown = wanted - set(STAGES)
    if unknown:  # a programming error in an entry point, not a user's
        raise ValueError(f"validate_config: unknown stage(s) {sorted(unknown)}; use {list(STAGES)}")
    if "workflow" in wanted:
        s = cfg.stages
        wanted |= {"corpus"}
        wanted |= {name for name, on in (("preprocess", s.preprocess), ("train", s.train), ("tune", s.tune),
                                         ("report", s.report)) if on}
        if cfg.transfer.corpus is not None:  # the workflow's transfer stage (after training)
            wanted.add("transfer")
    return wanted


def _normalised(cfg: Config) -> Config:
    from lssed.storage import storage_from_config

    store = storage_from_config(cfg.storage)
    return cfg if store.is_s3 else replace_section(cfg, "storage", root=store.root)


# --------------------------------------------------------------------------- rules


class _Checker:
    """Collects problems; each rule reads a key like ``features.hop_length`` from the config."""

    def __init__(self, cfg: Config) -> None:
        self.cfg = cfg
        self.problems: list[str] = []
        self._bad: set[str] = set()

    def value(self, key: str) -> Any:
        section, name = key.split(".")
        return getattr(getattr(self.cfg, section), name)

    def fail(self, key: str, rule: str, *, show: bool = True) -> None:
        if key in self._bad:  # one message per key: the first rule it broke
            return
        self._bad.add(key)
        shown = f"{key}={_text(self.value(key))}" if show else key
        self.problems.append(f"{shown}: {rule}")

    def ok(self, key: str) -> bool:
        return key not in self._bad

    def integer(self, key: str, minimum: int, *, optional: bool = False, why: str = "") -> None:
        v = self.value(key)
        if v is None and optional:
            return
        if not (isinstance(v, int) and v >= minimum):
            self.fail(key, f"must be an integer >= {minimum}" + (" (or null)" if optional else "") + why)

    def number(self, key: str, *, gt: float | None = None, ge: float | None = None, lt: float | None = None,
               le: float | None = None, optional: bool = False, why: str = "") -> None:
        v = self.value(key)
        if v is None and optional:
            return
        if not _in_range(v, gt=gt, ge=ge, lt=lt, le=le):
            self.fail(key, f"must be a finite number {_range_text(gt, ge, lt, le)}".rstrip() + why)

    def finite_floats(self, section: str) -> None:
        """No float key of ``section`` may be NaN or infinite (also keys added later)."""
        for f in fields(getattr(self.cfg, section)):
            v = getattr(getattr(self.cfg, section), f.name)
            if isinstance(v, float) and not math.isfinite(v):
                self.fail(f"{section}.{f.name}", "must be a finite number")


def _in_range(v: Any, *, gt: float | None = None, ge: float | None = None, lt: float | None = None,
              le: float | None = None) -> bool:
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
        return False
    return ((gt is None or v > gt) and (ge is None or v >= ge) and (lt is None or v < lt)
            and (le is None or v <= le))


def _range_text(gt: float | None, ge: float | None, lt: float | None, le: float | None) -> str:
    parts = [f"{op} {b:g}" for op, b in ((">", gt), (">=", ge), ("<", lt), ("<=", le)) if b is not None]
    return " and ".join(parts)


def _text(v: Any) -> str:
    if isinstance(v, tuple):
        return "[" + ",".join(_text(x) for x in v) + "]"
    return "null" if v is None else str(v)


# --------------------------------------------------------------------------- sections


def check_storage(check: _Checker) -> None:
    from lssed.storage import StorageError, storage_from_config

    try:
        storage_from_config(check.cfg.storage).root  # parses the scheme, bucket and path
    except StorageError as exc:
        check.fail("storage.root", str(exc))
    endpoint = check.cfg.storage.endpoint_url
    if endpoint is not None and urlparse(endpoint).scheme not in ("http", "https"):
        check.fail("storage.endpoint_url", "must be an http:// or https:// URL (e.g. http://127.0.0.1:9000)")
    check.integer("storage.retries", 0)
    check.number("storage.connect_timeout_s", gt=0)
    check.number("storage.request_timeout_s", gt=0)
    check.finite_floats("storage")  # keys without a rule of their own


def check_ray(check: _Checker) -> None:
    check.integer("ray.num_cpus", 1, optional=True)
    check.integer("ray.object_store_memory_mb", 1, optional=True)


def check_stages(check: _Checker) -> None:
    check.integer("stages.parallel_runs", 1, why=" (training runs in flight at once)")


def check_corpus(check: _Checker) -> None:
    from pathlib import Path

    c = check.cfg.corpus
    if c.name == "demo":
        check.integer("corpus.speakers", 2, why=" (the demo's splits are speaker-independent)")
        check.integer("corpus.per_class", 1)
        check.integer("corpus.voice_offset", 0, why=" (the demo's first voice in its roster)")
        if not (len(c.snr_db) == 2 and all(math.isfinite(v) for v in c.snr_db) and c.snr_db[0] <= c.snr_db[1]):
            check.fail("corpus.snr_db", "must be [low, high] finite dB with low <= high, e.g. [0, 10]")
    elif not c.root:
        check.fail("corpus.root", f"corpus {c.name!r} needs corpus.root (its directory, or the CSV for 'generic')")
    elif "://" not in c.root and not Path(c.root).expanduser().exists():
        check.fail("corpus.root", "does not exist on this machine")
    if c.encoding != "auto":
        import codecs

        try:
            codecs.lookup(c.encoding)
        except LookupError:
            check.fail("corpus.encoding", "is not a known encoding: use auto, utf-8, cp1252, latin-1, ...")
    if c.name not in ("generic", "demo") and (c.encoding != "auto" or c.allow_outside_root):
        check.fail("corpus.encoding" if c.encoding != "auto" else "corpus.allow_outside_root",
                   f"applies to the generic/demo CSV only; {c.name} finds its media under corpus.root itself")
    if c.split == "official" and c.name in ("demo", "ravdess", "cremad"):
        check.fail("corpus.split", f"corpus {c.name!r} has no official split; use speaker or folds")
    if c.max_segment_s is not None:
        if c.name != "daicwoz":
            check.fail("corpus.max_segment_s", f"cuts DAIC-WOZ's long participant turns; {c.name} has no such turns "
                                               "(leave it null)")
        check.number("corpus.max_segment_s", ge=0.5, le=600, why=" seconds (or null: whole turns)")
    check_corpus_split(check)
    check.finite_floats("corpus")  # keys without a rule of their own


def check_corpus_split(check: _Checker) -> None:
    """The split and label keys (also read by `lssed import-features`)."""
    c = check.cfg.corpus
    if c.id is not None and not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}", str(c.id)):
        check.fail("corpus.id", "must be 1-64 letters, digits, '_', '.' or '-' (it names files and table rows)")
    if c.split == "folds":
        check.integer("corpus.folds", 3, why=" (each fold is a run's test set, the next its validation set)")
    check.number("corpus.val_fraction", ge=0, lt=1)
    check.number("corpus.test_fraction", gt=0, lt=1)
    if check.ok("corpus.val_fraction") and check.ok("corpus.test_fraction") and c.val_fraction + c.test_fraction >= 1:
        check.fail("corpus.test_fraction", f"corpus.val_fraction + corpus.test_fraction must be < 1 "
                                           f"(got {c.val_fraction:g} + {c.test_fraction:g}: nothing left to train on)")


def check_corpora(check: _Checker) -> None:
    """The workflow's ``corpora:`` list (each entry a corpus section) and ``crosscorpus``."""
    import dataclasses

    cfg = check.cfg
    for i, c in enumerate(cfg.corpora):
        sub = _Checker(dataclasses.replace(cfg, corpus=c))
        check_corpus(sub)
        check.problems += [f"corpora[{i}].{p.removeprefix('corpus.')}" for p in sub.problems]
    sections = cfg.corpora or (cfg.corpus,)
    labels = [c.id or c.name for c in sections]
    repeated = sorted({x for x in labels if labels.count(x) > 1})
    if repeated:
        check.problems.append(f"corpora: {repeated} name more than one corpus; give each a distinct corpus id "
                              "(e.g. id: demo-b) so runs, evaluations and Table 4 can tell them apart")
    if cfg.crosscorpus and len(sections) < 2:
        check.problems.append("crosscorpus=true: list at least two corpora under `corpora:` (each a corpus "
                              "section) to evaluate every run on the others")


def check_features(check: _Checker, *, filterbank: bool = True) -> None:
    """``filterbank``: also check that every mel band of lssed's own log-mel is non-empty."""
    f = check.cfg.features
    check.integer("features.sample_rate", 1)
    check.integer("features.n_fft", 1)
    check.integer("features.win_length", 1)
    check.integer("features.hop_length", 1, why=" (samples between STFT frames)")
    if all(check.ok(k) for k in ("features.n_fft", "features.win_length", "features.hop_length")):
        if f.win_length > f.n_fft:
            check.fail("features.win_length", f"must be <= features.n_fft ({f.n_fft})")
        elif f.hop_length > f.win_length:
            check.fail("features.hop_length", f"must be <= features.win_length ({f.win_length}): a longer hop skips samples")
    check.integer("features.n_mels", 1, why=" (mel bands)")
    check.number("features.f_min", ge=0)
    if check.ok("features.sample_rate"):
        nyquist = f.sample_rate / 2
        check.number("features.f_max", gt=0, le=nyquist, optional=True, why=f" (the Nyquist frequency of "
                     f"features.sample_rate={f.sample_rate}), or null for {nyquist:g}")
        top = f.f_max if f.f_max is not None else nyquist
        if check.ok("features.f_min") and check.ok("features.f_max") and not f.f_min < top:
            check.fail("features.f_min", f"must be below features.f_max ({top:g} Hz)")
    if f.log == "log":
        check.number("features.log_offset", gt=0, why=" (log(mel + offset) of silence must be finite)")
    if check.ok("features.n_mels") and check.ok("features.n_fft") and f.n_mels > f.n_fft // 2 + 1:
        check.fail("features.n_mels", f"must be <= the {f.n_fft // 2 + 1} frequency bins of features.n_fft={f.n_fft}")
    if filterbank and all(check.ok(f"features.{k}") for k in ("sample_rate", "n_fft", "n_mels", "f_min", "f_max")):
        empty = empty_mel_bands(f)
        if empty:
            check.fail("features.n_mels", f"{empty} of the {f.n_mels} mel bands cover no frequency bin of "
                                          f"features.n_fft={f.n_fft} (their log-mel would be constant): use fewer "
                                          "bands or a larger n_fft")
    check.finite_floats("features")  # keys without a rule of their own


def check_preprocess(check: _Checker) -> None:
    p, f = check.cfg.preprocess, check.cfg.features
    check.integer("preprocess.sample_rate", 1)
    if check.ok("preprocess.sample_rate") and check.ok("features.sample_rate") and p.sample_rate != f.sample_rate:
        check.fail("features.sample_rate", f"must equal preprocess.sample_rate ({p.sample_rate}): the log-mel is "
                                           "computed from audio decoded at that rate")
    check.number("preprocess.gain", gt=0, why=" (a volume factor; the paper uses 2)")
    check.integer("preprocess.batch_size", 1)
    check.integer("preprocess.num_actors", 1, optional=True, why=" (null: from the cluster's CPUs)")
    check.number("preprocess.cpus_per_actor", gt=0)
    check.number("preprocess.gpus_per_actor", ge=0, why=" (0: CPU actors; GPUs only speed up denoise: torchgate)")
    check.integer("preprocess.rows_per_shard", 1)
    check.integer("preprocess.min_shards", 1)
    check.number("preprocess.min_duration_s", ge=0)
    check.number("preprocess.max_shard_audio_s", gt=0)
    check.number("preprocess.max_missing_s", ge=0)
    check.number("preprocess.max_segment_s", gt=0, why=" (longer segments are quarantined before decoding)")
    check.number("preprocess.actor_start_timeout_s", gt=0)
    check.finite_floats("preprocess")  # keys without a rule of their own


def check_workflow_runs(check: _Checker) -> None:
    """The workflow trains every model of ``train.models`` for every seed of ``train.seeds``."""
    t = check.cfg.train
    if not t.models:
        check.fail("train.models", "is empty: list the models to train, e.g. --set 'train.models=[resnet18]'")
    else:
        check_models(check, "train.models", t.models)
    if not t.seeds:
        check.fail("train.seeds", "is empty: give at least one seed, e.g. --set 'train.seeds=[0]'")


def check_train(check: _Checker) -> None:
    """The recipe of one training run (the model is checked by the caller: it varies)."""
    t = check.cfg.train
    check.integer("train.epochs", 1)
    # Ray Train runs the loop in its workers: there is no driver-only mode to fall back to.
    check.integer("train.num_workers", 1, why=" (Ray Train workers per run)")
    check.integer("train.batch_size", 1)
    if check.ok("train.batch_size") and check.ok("train.num_workers") and t.batch_size < 2 * t.num_workers:
        check.fail("train.batch_size", f"must be >= 2 x train.num_workers = {2 * t.num_workers} (each worker needs "
                                       "at least 2 samples per step for batch norm)")
    check.integer("train.eval_batch_size", 1)
    check.number("train.crop_seconds", gt=0, why=" (seconds of audio per training crop)")
    check.integer("train.crop_frames", 1, optional=True, why=" (frames per training crop; null: from "
                  "train.crop_seconds)")
    check.number("train.lr", gt=0)
    check.number("train.momentum", ge=0, lt=1)
    check.number("train.weight_decay", ge=0)
    check.integer("train.lr_step_epochs", 1, optional=True, why=" (null: a third of train.epochs)")
    if t.model_kwargs is not None and not (isinstance(t.model_kwargs, dict)
                                           and all(isinstance(k, str) for k in t.model_kwargs)):
        check.fail("train.model_kwargs", "must be a mapping of create_model keywords, e.g. "
                                         "--set 'train.model_kwargs={impl: fast}' (or null)")
    if isinstance(t.model_kwargs, dict) and "input_norm" in t.model_kwargs:
        check.fail("train.model_kwargs", "holds input_norm: set train.input_norm instead (one place for it)")
    if t.init_from is not None and not (isinstance(t.init_from, str) and t.init_from.strip()):
        check.fail("train.init_from", "must be a checkpoint file from `lssed models import` or a finished run's "
                                      "URI (or null for random init)")
    elif t.init_from and "://" not in t.init_from:
        from pathlib import Path

        if not Path(t.init_from).expanduser().exists():
            check.fail("train.init_from", "does not exist on this machine: give a checkpoint file from `lssed "
                                          "models import`, or a finished run directory (local path or s3://)")
    if t.freeze != "none" and not t.init_from:
        check.fail("train.freeze", "freezes pretrained weights: set train.init_from too (a frozen random "
                                   "backbone learns nothing)")
    if t.cuda_graph and not t.use_gpu:
        check.fail("train.cuda_graph", "needs train.use_gpu=true (CUDA graphs exist on GPUs only); on CPU use "
                                       "train.compile=true alone, or set train.cuda_graph=false")
    check.number("train.lr_gamma", gt=0, le=1)
    check.number("train.cpus_per_worker", gt=0)
    check.integer("train.max_failures", -1, why=" (-1: retry forever)")
    if t.materialize_mb != "auto":
        check.integer("train.materialize_mb", 0, why=' (MB of shards; or "auto": from the object store)')
    check.integer("train.local_shuffle_buffer_size", 0, optional=True, why=" (0: no local shuffle)")
    check.integer("train.prefetch_batches", 0)
    check.integer("train.checkpoints_to_keep", 1, why=" (resuming needs the latest checkpoint)")
    check.integer("train.fold", 0, optional=True, why=" (the k-fold protocol's test fold; null: the stored split)")
    from lssed.labels import BENCHMARK_CLASSES

    if not (isinstance(t.num_classes, int) and 2 <= t.num_classes <= len(BENCHMARK_CLASSES)):
        check.fail("train.num_classes", f"must be between 2 and {len(BENCHMARK_CLASSES)} "
                                        f"(the first N of {list(BENCHMARK_CLASSES)})")
    if t.spec_augment:
        check.integer("train.spec_augment_masks", 1)
        check.integer("train.spec_augment_freq_bands", 0)
        check.integer("train.spec_augment_time_frames", 0)
    check.finite_floats("train")  # keys without a rule of their own


def check_tune(check: _Checker) -> None:
    t = check.cfg.tune
    if not t.models:
        check.fail("tune.models", "is empty: list the models to sweep (or set stages.tune=false)")
    elif len(set(t.models)) != len(t.models):
        check.fail("tune.models", "must not repeat a model")
    else:
        check_models(check, "tune.models", t.models)
    if not t.windows:
        check.fail("tune.windows", "is empty: list STFT window lengths in samples, e.g. [400,1024]")
    elif not all(isinstance(w, int) and w >= 1 for w in t.windows):
        check.fail("tune.windows", "must be window lengths in samples (integers >= 1)")
    elif len(set(t.windows)) != len(t.windows):
        check.fail("tune.windows", "must not repeat a window")
    # windows longer than features.n_fft are fine: the sweep raises n_fft to the window
    if not all(isinstance(h, int) and h >= 1 for h in t.hops):
        check.fail("tune.hops", "must be hop lengths in samples (integers >= 1), or empty for one hop in every "
                                "trial (features.hop_length, or half the shortest window when longer)")
    elif t.hops and check.ok("tune.windows") and t.windows and max(t.hops) > min(t.windows):
        check.fail("tune.hops", f"hop {max(t.hops)} > window {min(t.windows)} would skip samples; use hops no "
                                "longer than the shortest window")
    if not all(_in_range(lr, gt=0) for lr in t.lrs):
        check.fail("tune.lrs", "must be finite learning rates > 0, or empty for train.lr")
    if not all(_in_range(c, gt=0) for c in t.crop_seconds):
        check.fail("tune.crop_seconds", "must be crop lengths in seconds (> 0), or empty for train.crop_seconds")
    if not all(isinstance(c, int) and c >= 1 for c in t.crop_frames):
        check.fail("tune.crop_frames", "must be crop lengths in frames (integers >= 1), or empty for train.crop_frames")
    check.integer("tune.num_samples", 1)
    check.integer("tune.max_concurrent_trials", 1, optional=True, why=" (null: as many as the cluster fits)")
    check.integer("tune.grace_period", 1)
    check.integer("tune.reduction_factor", 2)
    check.integer("tune.epochs", 1, optional=True, why=" (null: train.epochs)")


def check_report(check: _Checker) -> None:
    from lssed.storage import StorageError, storage_from_config

    out_dir = check.cfg.report.out_dir
    if out_dir:
        try:
            storage_from_config(check.cfg.storage, out_dir).root
        except StorageError as exc:
            check.fail("report.out_dir", str(exc))


def check_predict(check: _Checker) -> None:
    """`lssed predict`: VAD, windows and pools (lssed/predict)."""
    p = check.cfg.predict
    check.number("predict.max_segment_s", gt=0, why=" (the longest window the model sees, seconds)")
    if check.ok("predict.max_segment_s"):
        check.number("predict.overlap_s", ge=0, lt=p.max_segment_s,
                     why=" (predict.max_segment_s): windows must advance")
    check.number("predict.min_segment_s", ge=0, why=" (shorter regions are kept and flagged short)")
    check.number("predict.window_s", gt=0, optional=True, why=" (fixed windows of vad=none), or null for "
                 "predict.max_segment_s")
    if p.vad == "none" and check.ok("predict.window_s") and check.ok("predict.max_segment_s"):
        window = p.window_s if p.window_s is not None else p.max_segment_s
        if check.ok("predict.overlap_s") and not p.overlap_s < window:
            check.fail("predict.overlap_s", f"must be < the fixed window ({window:g} s, predict.window_s): "
                                            "windows must advance")
    check.number("predict.vad_threshold", gt=0, lt=1, why=" (silero speech probability)")
    check.number("predict.vad_min_speech_s", ge=0)
    check.number("predict.vad_min_silence_s", ge=0)
    check.number("predict.vad_pad_s", ge=0)
    check.number("predict.energy_range_db", gt=0, why=" (dB below the file's loud frames)")
    check.number("predict.energy_min_snr_db", gt=0, why=" (dB above the file's quiet frames)")
    check.number("predict.energy_hysteresis_db", ge=0)
    check.integer("predict.batch_size", 1)
    check.integer("predict.decode_actors", 1, optional=True, why=" (null: as many as the cluster's CPUs allow)")
    check.integer("predict.model_actors", 1)
    if not p.extensions or not all(isinstance(e, str) and re.fullmatch(r"\.[A-Za-z0-9]+", e) for e in p.extensions):
        check.fail("predict.extensions", "must list media file suffixes with their dot, e.g. [.wav,.mp4]")
    check.finite_floats("predict")  # keys without a rule of their own


def check_transfer(check: _Checker) -> None:
    """`lssed transfer` and the workflow's transfer stage (lssed/transfer)."""
    import dataclasses
    from pathlib import Path

    from lssed.transfer.baselines import BASELINES
    from lssed.transfer.classifiers import CLASSIFIERS

    t = check.cfg.transfer
    if len(set(t.baselines)) != len(t.baselines) or not set(t.baselines) <= set(BASELINES):
        check.fail("transfer.baselines", f"must list distinct baselines out of {list(BASELINES)} (or [])")
    if not t.classifiers or len(set(t.classifiers)) != len(t.classifiers) or not set(t.classifiers) <= set(CLASSIFIERS):
        check.fail("transfer.classifiers", f"must list one or more distinct classifiers out of {list(CLASSIFIERS)}")
    check.integer("transfer.cv_folds", 2, why=" (participant-grouped folds on the training participants)")
    check.integer("transfer.bootstrap", 0, why=" (dev resamples for the 95% intervals; 0: none)")
    check.integer("transfer.seed", 0)
    check.integer("transfer.wav2vec2_layer", 1, optional=True, why=" (1-based transformer layer; null: the last)")
    if not t.positive_label.strip():
        check.fail("transfer.positive_label", "must name the positive class's label (DAIC-WOZ: depressed)")
    if t.name is not None and not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.+-]{0,119}", t.name):
        check.fail("transfer.name", "must be 1-120 letters, digits, '_', '.', '+' or '-' (it names a folder)")
    if "wav2vec2" in t.baselines and t.wav2vec2_weights and not Path(t.wav2vec2_weights).expanduser().is_file():
        check.fail("transfer.wav2vec2_weights", "is not a file on this machine (the wav2vec2 bundle's state dict; "
                                                "null: the torch hub cache)")
    if t.corpus is not None:
        sub = _Checker(dataclasses.replace(check.cfg, corpus=t.corpus))
        check_corpus(sub)
        check.problems += [f"transfer.corpus.{p.removeprefix('corpus.')}" for p in sub.problems]


def check_models(check: _Checker, key: str, names: tuple[str, ...]) -> None:
    """Model names from the one registry (lssed.models); its message lists the zoo."""
    from lssed.models import unknown_model_message, unknown_models

    unknown = unknown_models(names)
    if unknown:
        check.fail(key, unknown_model_message(unknown), show=False)


# --------------------------------------------------------------------------- the cluster


def cluster_warnings(cfg: Config, resources: Mapping[str, float]) -> list[str]:
    """What the attached cluster (``ray.cluster_resources()``) cannot run now; advisory only,
    as an autoscaling cluster may still add what is missing."""
    out = []
    if cfg.train.use_gpu and float(resources.get("GPU", 0.0)) <= 0:
        out.append("train.use_gpu=true but the cluster has no GPU now; training waits for the autoscaler to add "
                   "GPU nodes (on a fixed cluster it never starts)")
    return out
