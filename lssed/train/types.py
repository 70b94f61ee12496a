"""The types the training loop, evaluation and their surroundings share (torch and numpy only).

:class:`WorkerContext` is the loop's only view of where it runs: Ray Train's
:class:`lssed.train.trainer.RayContext`, or the in-memory :class:`lssed.train.local.LocalContext`
(unit tests and the GPU benchmark, where Ray is not installed).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable, Protocol

import numpy as np
import torch
from torch import nn

from lssed.train.results import EpochRecord, Metrics


@dataclass(frozen=True)
class Utterance:
    """One whole utterance for evaluation."""

    utt_id: str
    label: int
    split: str
    data: np.ndarray  # (n_mels, n_frames) float32 log-mel, or (samples,) float32 waveform
    is_wave: bool


@dataclass(frozen=True)
class Predictions:
    """A model's class probabilities for a set of utterances, in the order they were given."""

    utt_ids: tuple[str, ...]
    splits: tuple[str, ...]
    labels: np.ndarray  # (N,) int64
    probabilities: np.ndarray  # (N, C) float32
    loss: float  # mean negative log-likelihood of the true labels; NaN when N == 0

    @property
    def predicted(self) -> np.ndarray:
        """(N,) int64 arg-max class."""
        return self.probabilities.argmax(axis=1) if len(self.labels) else np.zeros(0, dtype=np.int64)


@dataclass(frozen=True)
class LoopOutcome:
    """What rank 0's :func:`lssed.train.loop.run_training` hands to :meth:`WorkerContext.write_outputs`."""

    history: tuple[EpochRecord, ...]
    best_epoch: int
    val: Metrics
    evaluations: dict[str, Metrics]
    predictions: dict[str, Predictions]
    best_state: dict[str, torch.Tensor]
    num_params: int
    restarts: int
    train_samples: int  # samples trained in this process (since the last (re)start)
    train_seconds_here: float  # seconds spent in training steps in this process
    device: str


class WorkerContext(Protocol):
    """Where one training worker runs: its rank, its data, its checkpoints, its collectives."""

    rank: int
    world_size: int
    device: torch.device

    def prepare_model(self, model: nn.Module) -> nn.Module:
        """The model on this worker's device (DDP-wrapped when there are several workers)."""
        ...

    def train_batches(self, epoch: int, batch_size: int) -> Iterable[dict[str, torch.Tensor]]:
        """This worker's share of one epoch: ``{"x" or "wave": ..., "y": ...}`` batches."""
        ...

    def eval_utterances(self, split: str) -> Iterable[Utterance]:
        """Every labelled utterance of ``split`` (called on rank 0 only)."""
        ...

    def load_checkpoint(self) -> dict[str, Any] | None:
        """The newest usable checkpoint state (see :func:`lssed.train.loop.checkpoint_state`), or None."""
        ...

    def report(self, metrics: dict[str, Any], state: dict[str, Any] | None) -> None:
        """One epoch's metrics (every rank) and checkpoint state (rank 0; None elsewhere)."""
        ...

    def all_reduce_sum(self, tensor: torch.Tensor) -> torch.Tensor:
        ...

    def broadcast(self, obj: Any) -> Any:
        """Rank 0's ``obj`` on every rank."""
        ...

    def write_outputs(self, outcome: LoopOutcome, config: dict[str, Any]) -> None:
        """Persist the finished run (rank 0)."""
        ...
