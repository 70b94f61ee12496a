"""Typed, frozen configuration for every stage.

YAML is only the serialisation: ``load_config(path, overrides)`` builds a :class:`Config`,
rejecting unknown keys and wrong types with a message that names the valid keys.
Overrides look like ``train.lr=0.02`` and their values are parsed as YAML, so
``tune.models=[resnet18,vgg11]`` is a list.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import types
import typing
from dataclasses import dataclass, field, fields, is_dataclass
from pathlib import Path
from typing import Any, Literal, Mapping, Sequence, TypeVar

import yaml

from lssed.errors import UserError


class ConfigError(UserError, ValueError):
    """A configuration value or key is invalid; the message says how to fix it."""


# --------------------------------------------------------------------------- sections


@dataclass(frozen=True)
class StorageConfig:
    """Where every stage writes: a local path, ``file://...`` or ``s3://bucket/prefix``."""

    root: str = "runs/demo"
    # Any S3-compatible endpoint (MinIO, moto, R2...). Credentials always come from the
    # standard AWS chain (env, ~/.aws, instance role) and are never stored here.
    endpoint_url: str | None = None
    region: str | None = None
    # S3 only, pyarrow and s3fs alike (docs/cluster.md, "Storage"): a failed request is
    # retried this many times with backoff (so at most retries + 1 attempts), a connection
    # must open within connect_timeout_s, and a request fails when no byte arrives for
    # request_timeout_s (a stall, not a cap on a whole transfer).
    retries: int = 10
    connect_timeout_s: float = 5.0
    request_timeout_s: float = 30.0


@dataclass(frozen=True)
class CorpusConfig:
    """Which corpus the workflow reads. ``demo`` synthesises one into storage."""

    name: Literal["demo", "generic", "iemocap", "meld", "ravdess", "cremad", "daicwoz"] = "demo"
    root: str | None = None  # corpus root (or the CSV for ``generic``); unused for ``demo``
    strict: bool = False  # fail on the first unusable row instead of rejecting it
    # generic CSV: its encoding ("auto": UTF-8, else Windows-1252/Latin-1 with a warning), and
    # whether media paths may leave the CSV's folder (".." or absolute paths elsewhere)
    encoding: str = "auto"
    allow_outside_root: bool = False
    # demo corpus size
    speakers: int = 6
    per_class: int = 6
    seed: int = 0
    # demo only: speakers take the voice roster from this index on (another offset: other
    # voices and speaker ids), and each session's noise SNR is drawn from snr_db [low, high]
    voice_offset: int = 0
    snr_db: tuple[float, ...] = (5.0, 25.0)
    # the manifest's and shards' `corpus` value (default: the adapter name); tells two generic
    # or demo corpora apart in cross-corpus tables
    id: str | None = None
    # split protocol (docs/corpora.md "Splits"): "speaker" (speaker-group, label-stratified),
    # "utterance" (rows alone: leaks speakers, accepts rows without one), "official" (the
    # corpus's own: MELD files, IEMOCAP session 5, DAIC-WOZ lists, a CSV's split column; val
    # carved from train by speaker when it has none) or "folds" (`folds` speaker-group folds
    # in the `fold` column; IEMOCAP: its sessions); None: the corpus's own default
    # ("official" for DAIC-WOZ, whose AVEC 2017 partition is the protocol results are compared on;
    # "speaker" for every other corpus)
    split: Literal["speaker", "utterance", "official", "folds"] | None = None
    val_fraction: float = 0.15
    test_fraction: float = 0.2
    folds: int = 5
    # count `excited` as happy in the 4 classes; None: the corpus's convention (IEMOCAP only)
    merge_excited: bool | None = None
    # DAIC-WOZ: participant turns longer than this many seconds are cut into equal windows of at
    # most this length (utt_ids <pid>_<start>_w<k>); None keeps whole turns
    max_segment_s: float | None = None


@dataclass(frozen=True)
class PreprocessConfig:
    """Decode -> denoise -> gain (docs/paper.md); the features section sets the log-mel."""

    sample_rate: int = 16000
    # torchgate: noisereduce's torch gate, batched per chunk, on the GPU of a GPU actor; its
    # output departs from noisereduce's (docs/performance.md), so it is not the default.
    denoise: Literal["noisereduce", "noisereduce-stationary", "torchgate", "none"] = "noisereduce"
    gain: float = 2.0
    batch_size: int = 16  # rows per Parquet row group in a shard (a shard = one map_batches batch)
    num_actors: int | None = None  # None: as many as the cluster's CPUs allow
    cpus_per_actor: float = 1.0
    # GPUs per preprocessing actor (fractions share one); > 0 only pays with denoise: torchgate.
    gpus_per_actor: float = 0.0
    # How long the whole actor pool may take to start before work is handed out (and the
    # stage fails saying so); an autoscaling cluster adding nodes needs minutes.
    actor_start_timeout_s: float = 600.0
    # Keep freed memory in each actor (glibc mallopt): ~2x faster denoising, up to ~0.5 GB more
    # resident memory per actor (lssed/preprocess/allocator.py).
    keep_freed_memory: bool = True
    rows_per_shard: int = 256
    min_duration_s: float = 0.05  # shorter segments are quarantined as too short
    # More shards than rows_per_shard alone gives for small manifests, so every actor has work.
    min_shards: int = 8
    # A shard also closes at this much (known) audio; rows with no end time count as 30 s.
    max_shard_audio_s: float = 1800.0
    # A segment may reach this far past the end of its media (it is then shorter); further
    # is quarantined as segment_past_end.
    max_missing_s: float = 0.1
    # Longer segments (or whole-file rows of longer media) are quarantined as segment_too_long
    # before they are decoded: a row's audio, features and shard cell stay bounded in memory.
    max_segment_s: float = 600.0


@dataclass(frozen=True)
class FeatureConfig:
    """Log-mel settings. Paper: Hann 1024, hop 512, power 2, 128 slaney mel bands, log."""

    sample_rate: int = 16000
    n_fft: int = 1024
    win_length: int = 1024
    hop_length: int = 512
    n_mels: int = 128
    f_min: float = 0.0
    f_max: float | None = None
    log: Literal["log", "db", "none"] = "log"
    log_offset: float = 1e-6  # log(mel + offset)


@dataclass(frozen=True)
class TrainConfig:
    """The paper's recipe (the ``lssed`` preset) with laptop-sized defaults for epochs."""

    model: str = "resnet18"
    models: tuple[str, ...] = ("resnet18",)  # the workflow trains each of these
    epochs: int = 60
    batch_size: int = 256
    eval_batch_size: int = 64
    lr: float = 0.01
    momentum: float = 0.9
    weight_decay: float = 1e-3
    # lr x lr_gamma every this many epochs; None: every third of training (epochs // 3, at
    # least 1), the paper's 20 of 60, so a shorter or longer run still decays twice
    lr_step_epochs: int | None = None
    lr_gamma: float = 0.1
    # Training crop (random crop, or log-floor pad that the models mask out) in seconds, so
    # it covers the same audio at any hop (a window study compares windows, not context).
    # In frames at the run's sample rate and hop: 1 + round(crop_seconds * sample_rate) // hop
    # (5 s at hop 512 / 16 kHz: 157). crop_frames, when set, wins over crop_seconds.
    crop_seconds: float = 5.0
    crop_frames: int | None = None
    class_weighted: bool = False
    # SpecAugment-style masks on the training crops (not in the paper; lssed/train/augment.py)
    spec_augment: bool = False
    spec_augment_masks: int = 2  # masks per axis
    spec_augment_freq_bands: int = 16  # widest frequency mask, mel bands
    spec_augment_time_frames: int = 8  # widest time mask, frames
    num_workers: int = 1
    use_gpu: bool = False
    cpus_per_worker: float = 1.0
    seed: int = 0
    seeds: tuple[int, ...] = (0,)  # the workflow repeats every model over these
    amp: bool = True  # bf16 autocast on GPU (ignored on CPU)
    channels_last: bool = True  # NHWC model and inputs on GPU (~1.4x for PyResNet on H200); CPU: ignored
    # The training step (lssed/train/steps.py, docs/training.md): compile: torch.compile the model
    # (inductor; on CPU too; the first steps compile for minutes); cuda_graph: replay the whole step
    # as one CUDA graph (needs use_gpu; the last partial batch of each epoch is dropped; not used
    # under DDP with several workers). The fast PyResNet recipe: both, with model_kwargs {impl: fast}.
    compile: bool = False
    cuda_graph: bool = False
    max_failures: int = 2
    # Train splits whose shards take at most this many MB on disk are read once into Ray's
    # object store (materialize) instead of re-read from storage every epoch; 0: always stream.
    # "auto": materialize when the split fits the cluster's object-store memory / concurrent
    # runs x a safety fraction (lssed/train/ingest_plan.py), else stream.
    materialize_mb: int | Literal["auto"] = "auto"
    # Rows each worker's seeded local shuffle mixes before batching (Ray Data's
    # local_shuffle_buffer_size): it changes the batches, so it names runs. None: 4 of the
    # worker's batches, at least 256 rows; 0: no local shuffle (file order).
    local_shuffle_buffer_size: int | None = None
    prefetch_batches: int = 2  # batches each worker's iterator prepares ahead (speed only)
    checkpoints_to_keep: int = 2  # newest checkpoints kept in the run directory (resume needs 1)
    num_classes: int = 4
    # Start from pretrained weights: a checkpoint file from `lssed models import` or a finished
    # run's URI (its validation-selected weights). The backbone loads strictly; the classifier
    # `fc` is replaced when its shape differs (another class count). None: random init.
    init_from: str | None = None
    freeze: Literal["none", "backbone"] = "none"  # backbone: train only the classifier `fc`
    model_kwargs: Any = None  # a mapping of create_model keywords (e.g. {impl: fast}); None: none
    # Per-utterance input normalisation inside the model (lssed/models/input_norm.py): utterance
    # standardises each item's log-mel per mel band over its valid frames (not in the paper;
    # what lets a model trained on few voices generalise to held-out ones, docs/training.md).
    # Part of the model: exports, predict and evaluation apply it too; saved as model_kwargs.
    input_norm: Literal["none", "utterance"] = "none"
    run_name: str | None = None  # default: derived from model, features and config digest
    # k-fold protocol (corpus.split=folds): None trains on the shards' `split` column; f tests
    # fold f, validates on fold (f+1) mod k and trains on the rest. The workflow sets it per
    # run when the features have folds (every fold is a run).
    fold: int | None = None

    def crop_frames_at(self, sample_rate: int, hop_length: int) -> int:
        """The training crop in frames at ``hop_length`` (``crop_frames`` wins when set)."""
        if self.crop_frames is not None:
            return int(self.crop_frames)
        return 1 + int(round(self.crop_seconds * sample_rate)) // int(hop_length)


@dataclass(frozen=True)
class TuneConfig:
    models: tuple[str, ...] = ("resnet18", "vgg11")
    windows: tuple[int, ...] = (400, 1024)  # STFT window lengths in samples (25 ms, 64 ms)
    # empty: features.hop_length for every window, so the frame rate (and the crop, in
    # seconds) is the same in every trial and only the window varies
    hops: tuple[int, ...] = ()
    lrs: tuple[float, ...] = ()  # empty: train.lr
    crop_seconds: tuple[float, ...] = ()  # empty: train.crop_seconds
    crop_frames: tuple[int, ...] = ()  # crops in frames (override crop_seconds); empty: train.crop_frames
    search: Literal["grid", "random"] = "grid"
    num_samples: int = 1
    max_concurrent_trials: int | None = None  # None: from the cluster's resources
    asha: bool = True
    grace_period: int = 1
    reduction_factor: int = 2
    epochs: int | None = None  # None: train.epochs
    name: str | None = None
    # evaluate trials ASHA stopped early from their last checkpoint, so their runs get
    # results.json (val/test of the validation-selected checkpoint) like any other run
    finalize_stopped: bool = True


MEDIA_EXTENSIONS: tuple[str, ...] = (".wav", ".flac", ".mp3", ".m4a", ".aac", ".ogg", ".opus", ".mp4", ".mkv",
                                     ".webm", ".mov", ".avi")


@dataclass(frozen=True)
class PredictConfig:
    """`lssed predict`: segmentation of new media, windows, and the Ray Data pools (docs/predict.md)."""

    # silero: the silero-vad package's ONNX model (ships with the package, loads offline);
    # energy: frame loudness, no model; none: fixed windows over the whole file
    vad: Literal["silero", "energy", "none"] = "silero"
    # speech regions longer than max_segment_s are cut into windows of that length that
    # overlap by overlap_s; shorter than min_segment_s are kept but flagged "short"
    max_segment_s: float = 5.0
    overlap_s: float = 1.0
    min_segment_s: float = 0.5
    window_s: float | None = None  # fixed windows of vad=none; None: max_segment_s
    # VAD, both methods: speech shorter than vad_min_speech_s is dropped, pauses shorter than
    # vad_min_silence_s do not split a region, and every region is padded by vad_pad_s a side
    vad_threshold: float = 0.5  # silero speech probability that starts speech (it ends 0.15 lower)
    vad_min_speech_s: float = 0.25
    vad_min_silence_s: float = 0.3
    vad_pad_s: float = 0.1
    # energy VAD: a frame starts speech when it is within energy_range_db of the file's loud
    # frames and at least energy_min_snr_db above its quiet ones (so steady noise alone is
    # never speech); it ends energy_hysteresis_db lower
    energy_range_db: float = 30.0
    energy_min_snr_db: float = 6.0
    energy_hysteresis_db: float = 3.0
    batch_size: int = 32  # windows per model call
    decode_actors: int | None = None  # None: as many as the cluster's CPUs allow
    model_actors: int = 1
    use_gpu: bool | None = None  # None: a GPU when the cluster has one
    extensions: tuple[str, ...] = MEDIA_EXTENSIONS  # media files a folder input contributes


@dataclass(frozen=True)
class TransferConfig:
    """Transfer to depression detection (the paper's Table 6; lssed/transfer, docs/transfer.md)."""

    # The transfer corpus (a corpus section, e.g. {name: daicwoz, root: ...}): the workflow
    # prepares and preprocesses it after training and runs the transfer stage on it. null: no
    # transfer stage. `lssed transfer` takes its feature set on the command line instead.
    corpus: CorpusConfig | None = None
    # The SER runs whose embeddings are classified (run names under <storage>/runs, or URIs);
    # empty: every run the workflow trained.
    runs: tuple[str, ...] = ()
    # Baselines on the same participants: mfcc (MFCC + prosody functionals, always available),
    # wav2vec2 (a torchaudio ASR bundle's encoder; needs its weights file), egemaps (openSMILE,
    # the optional extra lssed[opensmile]; research-only licence).
    baselines: tuple[str, ...] = ("mfcc",)
    classifiers: tuple[str, ...] = ("logreg", "svm")  # PHQ-8 binary; ridge regresses the score whenever scores exist
    cv_folds: int = 5  # participant-grouped CV folds on the training participants (fewer if a class is smaller)
    bootstrap: int = 1000  # participant resamples of dev for the 95% intervals (0: none)
    seed: int = 0
    # The split scored: test (DAIC-WOZ's dev list when the corpus has no test labels, as the
    # adapter's official split puts it; train and val participants train) or val (with
    # full_test_split.csv: dev is val, test participants are left out)
    dev_split: Literal["test", "val"] = "test"
    positive_label: str = "depressed"  # the label counted as the positive class (F1 of it is the headline)
    wav2vec2_bundle: str = "WAV2VEC2_ASR_BASE_960H"  # a torchaudio.pipelines wav2vec2 bundle
    # Its weights: null reads the torch hub cache (<torch hub dir>/checkpoints/<bundle file>); nothing
    # is ever downloaded at run time.
    wav2vec2_weights: str | None = None
    # The weights are not the bundle's trained ones (generated for a test or a smoke run): Table 6
    # marks those rows untrained.
    wav2vec2_untrained: bool = False
    wav2vec2_layer: int | None = None  # transformer layer whose output is averaged (1-based); null: the last
    name: str | None = None  # transfer/<name>/results.json; null: <corpus id>-<features digest>
    force: bool = False  # recompute embeddings that are already in storage


@dataclass(frozen=True)
class ReportConfig:
    out_dir: str | None = None  # None: <storage.root>/report


@dataclass(frozen=True)
class RayConfig:
    address: str | None = None  # None: RAY_ADDRESS, a running job's cluster, or a local Ray
    num_cpus: int | None = None  # local Ray only; None: 2x the machine's cores (at least 4)
    object_store_memory_mb: int | None = None


@dataclass(frozen=True)
class StagesConfig:
    """Which stages the workflow runs."""

    preprocess: bool = True
    train: bool = True
    tune: bool = True
    report: bool = True
    force: bool = False  # redo committed stages
    # training runs (model x seed) in flight at once; >1 runs each as a Ray task driving its
    # own TorchTrainer, so a GPU cluster trains the zoo in parallel (1: one after another)
    parallel_runs: int = 1


@dataclass(frozen=True)
class Config:
    storage: StorageConfig = field(default_factory=StorageConfig)
    corpus: CorpusConfig = field(default_factory=CorpusConfig)
    preprocess: PreprocessConfig = field(default_factory=PreprocessConfig)
    features: FeatureConfig = field(default_factory=FeatureConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    tune: TuneConfig = field(default_factory=TuneConfig)
    report: ReportConfig = field(default_factory=ReportConfig)
    predict: PredictConfig = field(default_factory=PredictConfig)
    transfer: TransferConfig = field(default_factory=TransferConfig)
    ray: RayConfig = field(default_factory=RayConfig)
    stages: StagesConfig = field(default_factory=StagesConfig)
    # Several corpora for the workflow (each a corpus section); empty: the single `corpus`.
    # With `crosscorpus: true` every run is also evaluated on every other corpus's test split
    # (the report's Table 4).
    corpora: tuple[CorpusConfig, ...] = ()
    crosscorpus: bool = False


# --------------------------------------------------------------------------- building

T = TypeVar("T")


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def _coerce(value: Any, tp: Any, where: str) -> Any:
    """Check ``value`` against the annotation ``tp``; convert lists to tuples, ints to floats."""
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if tp is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(value, arg, where)
            except ConfigError as exc:
                errors.append(str(exc))
        raise ConfigError(f"{where}: {value!r} is not a valid {_type_name(tp)}")
    if origin is Literal:
        if value not in args:
            raise ConfigError(f"{where}: {value!r} is not one of {list(args)}")
        return value
    if origin in (tuple, list, Sequence):
        if isinstance(value, (str, bytes)) or not isinstance(value, (list, tuple)):
            # a single value where a list is expected is a common slip: accept `models=resnet18`
            value = [value]
        item_tp = args[0] if args else Any
        return tuple(_coerce(v, item_tp, f"{where}[{i}]") for i, v in enumerate(value))
    if is_dataclass(tp):
        if not isinstance(value, Mapping):
            raise ConfigError(f"{where}: expected a mapping of {[f.name for f in fields(tp)]}")
        return _build(tp, value, where)
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{where}: expected true or false, got {value!r}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{where}: expected an integer, got {value!r}")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{where}: expected a number, got {value!r}")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"{where}: expected a string, got {value!r}")
        return value
    raise ConfigError(f"{where}: unsupported type {tp!r}")  # pragma: no cover - programming error


def _build(cls: type[T], data: Mapping[str, Any], where: str = "") -> T:
    hints = typing.get_type_hints(cls)
    valid = [f.name for f in fields(cls)]
    unknown = sorted(set(data) - set(valid))
    if unknown:
        prefix = f"{where}." if where else ""
        raise ConfigError(
            f"unknown config key(s) {[prefix + k for k in unknown]}; valid keys here: "
            f"{[prefix + k for k in valid]}"
        )
    kwargs = {}
    for name, value in data.items():
        sub = f"{where}.{name}" if where else name
        kwargs[name] = _coerce(value, hints[name], sub)
    return cls(**kwargs)


def config_from_dict(data: Mapping[str, Any] | None) -> Config:
    return _build(Config, data or {})


def config_to_dict(cfg: Any) -> dict[str, Any]:
    """A plain, JSON/YAML-serialisable dict (tuples become lists)."""

    def plain(v: Any) -> Any:
        if is_dataclass(v):
            return {f.name: plain(getattr(v, f.name)) for f in fields(v)}
        if isinstance(v, (tuple, list)):
            return [plain(x) for x in v]
        return v

    return plain(cfg)


def parse_override(text: str) -> tuple[list[str], Any]:
    """``'train.lr=0.02'`` -> ``(['train', 'lr'], 0.02)``; the value is parsed as YAML."""
    if "=" not in text:
        raise ConfigError(f"override {text!r} must look like section.key=value (e.g. train.lr=0.02)")
    key, raw = text.split("=", 1)
    path = [p for p in key.strip().split(".") if p]
    if not path:
        raise ConfigError(f"override {text!r} has an empty key")
    try:
        value = yaml.safe_load(raw) if raw.strip() else None
    except yaml.YAMLError as exc:
        raise ConfigError(f"override {text!r}: the value is not valid YAML ({exc})") from exc
    return path, value


def apply_overrides(data: dict[str, Any], overrides: Sequence[str]) -> dict[str, Any]:
    out = json.loads(json.dumps(data))  # deep copy of plain data
    for text in overrides:
        path, value = parse_override(text)
        node = out
        for part in path[:-1]:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise ConfigError(f"override {text!r}: {part!r} is not a section")
            node = child
        node[path[-1]] = value
    return out


# The configs that ship inside the package (also reachable as workflows/configs/<name>.yaml in a
# checkout), so `lssed run --config lssed` works from any directory of an installed lssed.
PACKAGED_CONFIGS = Path(__file__).resolve().parent / "configs"


def packaged_configs() -> list[str]:
    """Names of the shipped configs (``demo``, ``lssed``, ``quality``, ...)."""
    return sorted(p.stem for p in PACKAGED_CONFIGS.glob("*.yaml"))


def resolve_config_path(path: str | Path) -> Path:
    """A config file: ``path`` itself when it exists, else a shipped config named ``path``
    (``lssed`` or ``lssed.yaml``). Raises :class:`ConfigError` naming the path otherwise."""
    p = Path(path).expanduser()
    if p.exists():
        return p
    if len(p.parts) == 1:
        shipped = PACKAGED_CONFIGS / (p.name if p.suffix in (".yaml", ".yml") else f"{p.name}.yaml")
        if shipped.exists():
            return shipped
    raise ConfigError(f"config file {p} does not exist; give a YAML path or one of the shipped configs "
                      f"{packaged_configs()} ({PACKAGED_CONFIGS})")


def load_config(path: str | Path | None = None, overrides: Sequence[str] = ()) -> Config:
    """Defaults, then the YAML file (if any: a path or a shipped config's name), then ``--set`` overrides."""
    data: dict[str, Any] = {}
    if path is not None:
        p = resolve_config_path(path)
        loaded = yaml.safe_load(p.read_text()) or {}
        if not isinstance(loaded, dict):
            raise ConfigError(f"config file {p} must hold a mapping of sections, got {type(loaded).__name__}")
        data = loaded
    data = apply_overrides(data, overrides)
    return config_from_dict(data)


def replace_section(cfg: Config, section: str, **changes: Any) -> Config:
    """A copy of ``cfg`` with some keys of one section changed (typed like the YAML path)."""
    current = config_to_dict(getattr(cfg, section))
    current.update(changes)
    sub = _build(type(getattr(cfg, section)), current, section)
    return dataclasses.replace(cfg, **{section: sub})


def digest(*parts: Any, length: int = 16) -> str:
    """A stable hex digest of dataclasses / plain data (used to key stage outputs)."""
    payload = json.dumps([config_to_dict(p) for p in parts], sort_keys=True, default=str)
    return hashlib.sha256(payload.encode()).hexdigest()[:length]


def dump_yaml(cfg: Config) -> str:
    return yaml.safe_dump(config_to_dict(cfg), sort_keys=False)
