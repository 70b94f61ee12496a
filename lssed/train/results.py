"""What a training run leaves in storage: ``<out>/runs/<run name>/results.json``.

The report stage reads only these files (and ``predictions.parquet`` beside them), so this
dataclass is the contract between training, tuning and reporting. Keep it backwards
compatible: add fields with defaults, never rename.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

RESULTS_FILE = "results.json"
PREDICTIONS_FILE = "predictions.parquet"
# ``tune_trial`` of a run that ASHA stopped early: ``<sweep name>/stopped-early``
STOPPED_EARLY = "stopped-early"


@dataclass(frozen=True)
class Metrics:
    """Classification metrics on one evaluation set (numpy-computed; see train/metrics.py)."""

    n: int
    wa: float  # weighted accuracy = overall accuracy
    ua: float  # unweighted accuracy = mean per-class recall
    macro_f1: float
    per_class_recall: tuple[float, ...]
    confusion: tuple[tuple[int, ...], ...]  # rows = true class, columns = predicted
    loss: float | None = None

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Metrics":
        """From :func:`dataclasses.asdict` output or JSON (lists back to tuples; unknown keys ignored)."""
        d = _known(cls, data)
        d["per_class_recall"] = tuple(float(x) for x in d["per_class_recall"])
        d["confusion"] = tuple(tuple(int(x) for x in row) for row in d["confusion"])
        return cls(**d)


@dataclass(frozen=True)
class EpochRecord:
    epoch: int  # 1-based
    lr: float
    train_loss: float
    val: Metrics
    seconds: float
    train_seconds: float = 0.0  # (train) of `seconds`, the time in training steps (data waits included)
    samples: int = 0  # (train) training samples seen this epoch, all workers
    # (train) of `train_seconds`, the time rank 0 waited for its next batch: when it is a large
    # share, ingest (Ray Data reads, collate) starves the device
    data_wait_seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "EpochRecord":
        """The inverse of :meth:`to_dict` (results.json, checkpoints); unknown keys ignored."""
        d = _known(cls, data)
        d["val"] = Metrics.from_dict(d["val"])
        return cls(**d)


@dataclass(frozen=True)
class RunResults:
    run_name: str
    model: str
    class_names: tuple[str, ...]
    train_corpus: str  # corpora present in the training split, '+'-joined
    features_uri: str
    features_digest: str
    feature_config: dict[str, Any]  # the STFT/mel settings actually used for training
    train_config: dict[str, Any]
    seed: int
    num_params: int
    epochs_completed: int
    best_epoch: int  # selected on validation UA
    train_seconds: float
    history: tuple[EpochRecord, ...]
    val: Metrics  # the selected checkpoint on the validation split
    # evaluation sets by name: "test" is the training corpus's test split; cross-corpus
    # evaluations are "test@<corpus>".
    evaluations: dict[str, Metrics] = field(default_factory=dict)
    num_workers: int = 1
    device: str = "cpu"
    tune_trial: str | None = None
    versions: dict[str, str] = field(default_factory=dict)
    # (train) times the loop started again from a checkpoint (worker failure or a rerun)
    restarts: int = 0
    # (train) log-mel computed on the worker from the stored waveform (features.* differ)
    features_recomputed: bool = False

    @property
    def stopped_early(self) -> bool:
        """A sweep trial that ASHA stopped, evaluated from its last checkpoint (``<sweep name>/stopped-early``)."""
        return (self.tune_trial or "").endswith("/" + STOPPED_EARLY)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "RunResults":
        d = _known(cls, data)
        d["class_names"] = tuple(d["class_names"])
        d["val"] = Metrics.from_dict(d["val"])
        d["evaluations"] = {k: Metrics.from_dict(v) for k, v in d.get("evaluations", {}).items()}
        d["history"] = tuple(EpochRecord.from_dict(h) for h in d.get("history", ()))
        return cls(**d)


def _known(cls: type, data: dict[str, Any]) -> dict[str, Any]:
    """The keys of ``data`` that are fields of ``cls``: files written by a newer version still load."""
    names = {f.name for f in dataclasses.fields(cls)}
    return {k: v for k, v in data.items() if k in names}
