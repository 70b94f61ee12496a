""":func:`lssed.train.loop.run_training` in one process over in-memory tensors (no Ray).

The GPU benchmark (``benchmarks/train_ray.py --gpu-only``, a machine with torch but no Ray)
and the loop's unit tests run it here.
"""

from __future__ import annotations

import copy
from typing import Any, Iterable, Iterator

import torch
from torch import nn

from lssed.train.loop import run_training
from lssed.train.types import LoopOutcome, Utterance


class LocalContext:
    """A :class:`~lssed.train.types.WorkerContext` of one worker over in-memory data.

    ``train_data``: (x (N, 1, n_mels, T) float32, y (N,) int64) already cropped, optionally
    with lengths (N,) int64, the real frames of each padded crop; each epoch is a seeded
    shuffle in batches. ``eval_data``: utterances per split. Checkpoints live in
    memory (``self.checkpoints``), so resuming is a matter of passing one in; with
    ``stop_after_epoch`` the run ends after reporting that epoch, as a crashed worker would.
    """

    rank = 0
    world_size = 1

    def __init__(self, train_data: tuple[torch.Tensor, ...], eval_data: dict[str, list[Utterance]], *,
                 device: str | torch.device | None = None, seed: int = 0,
                 checkpoint: dict[str, Any] | None = None, stop_after_epoch: int | None = None) -> None:
        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        x, y, *lengths = train_data
        self.x = x.to(self.device)
        self.y = y.to(self.device)
        self.lengths = lengths[0].cpu() if lengths else None  # host, as Ray Data's collate gives them
        self.eval_data = eval_data
        self.seed = seed
        self.checkpoints: list[dict[str, Any]] = []
        self.reports: list[dict[str, Any]] = []
        self._resume = checkpoint
        self.stop_after_epoch = stop_after_epoch
        self.outcome: LoopOutcome | None = None

    def prepare_model(self, model: nn.Module) -> nn.Module:
        return model.to(self.device)

    def train_batches(self, epoch: int, batch_size: int) -> Iterator[dict[str, torch.Tensor]]:
        gen = torch.Generator().manual_seed(self.seed * 1000 + epoch)
        order = torch.randperm(len(self.y), generator=gen).to(self.device)
        for i in range(0, len(order), batch_size):
            idx = order[i:i + batch_size]
            batch = {"x": self.x[idx], "y": self.y[idx]}
            if self.lengths is not None:
                batch["lengths"] = self.lengths[idx.cpu()]
            yield batch

    def eval_utterances(self, split: str) -> Iterable[Utterance]:
        return list(self.eval_data.get(split, []))

    def load_checkpoint(self) -> dict[str, Any] | None:
        return self._resume

    def report(self, metrics: dict[str, Any], state: dict[str, Any] | None) -> None:
        self.reports.append(metrics)
        if state is not None:
            self.checkpoints.append(copy.deepcopy(state))
        if self.stop_after_epoch is not None and metrics["epoch"] >= self.stop_after_epoch:
            raise _Stopped()

    def all_reduce_sum(self, tensor: torch.Tensor) -> torch.Tensor:
        return tensor

    def broadcast(self, obj: Any) -> Any:
        return obj

    def write_outputs(self, outcome: LoopOutcome, config: dict[str, Any]) -> None:
        self.outcome = outcome


class _Stopped(Exception):
    """LocalContext.report's way of ending a run after ``stop_after_epoch``."""


def run_local(config: dict[str, Any], ctx: LocalContext) -> LoopOutcome | None:
    """:func:`run_training` in-process; returns None when ``ctx.stop_after_epoch`` cut it short."""
    try:
        return run_training(config, ctx)
    except _Stopped:
        return None
