"""A model's inputs and its whole-utterance predictions: shared by training, evaluation and inference.

* :func:`batch_inputs` turns a batch (stored log-mel ``x``, or ``wave`` to compute log-mel from
  on the device) into the model's ``(B, 1, n_mels, T)`` input; :func:`autocast` is the
  recipe's bf16 autocast on GPU. The training step uses both, so training and evaluation
  see identical inputs.
* :func:`utterance_batches` groups whole utterances of equal shape into exact batches (the
  models pool adaptively and BatchNorm is in eval mode, so batching does not change a
  prediction); :func:`predict` and :func:`evaluate` run a classifier over them, and other
  per-utterance passes (e.g. embeddings) can reuse the grouping.

Imports here are torch and numpy only.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from typing import Any, Iterable, Iterator

import numpy as np
import torch
from torch import nn

from lssed.train.metrics import compute_metrics
from lssed.train.results import Metrics
from lssed.train.types import Predictions, Utterance

EVAL_GROUP = 64  # utterances read before grouping by shape: bounds host memory, not results


def autocast(device: torch.device, enabled: bool) -> AbstractContextManager[Any]:
    """bf16 autocast on CUDA when ``enabled``; a no-op elsewhere."""
    on = bool(enabled) and device.type == "cuda"
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=on)


class _FeatureView:
    """Attribute access to a feature-config dict (:mod:`lssed.features` reads the dataclass's fields).

    The loop receives plain-data config (it crosses to Ray workers and must not need
    :mod:`lssed.config`, which the torch-only GPU benchmark does not install).
    """

    def __init__(self, d: dict[str, Any]) -> None:
        self.__dict__.update(d)


def batch_inputs(batch: dict[str, torch.Tensor], features: dict[str, Any] | None,
                 device: torch.device) -> torch.Tensor:
    """(B, 1, n_mels, T) model input: the stored log-mel, or log-mel from ``wave`` on ``device``."""
    if "x" in batch:
        return batch["x"].to(device, non_blocking=True)
    if features is None:
        raise ValueError("a waveform batch needs the feature config to compute log-mel")
    from lssed.features import logmel

    wave = batch["wave"].to(device, non_blocking=True)
    return logmel(wave, _FeatureView(features)).unsqueeze(1)


def utterance_batches(items: Iterable[Utterance], features: dict[str, Any] | None, device: torch.device, *,
                      group: int = EVAL_GROUP) -> Iterator[tuple[list[Utterance], torch.Tensor]]:
    """``(utterances, model input)`` for runs of equal-shape utterances, in reading order per group."""
    chunk: list[Utterance] = []
    for u in items:
        chunk.append(u)
        if len(chunk) >= group:
            yield from _same_shape_batches(chunk, features, device)
            chunk = []
    if chunk:
        yield from _same_shape_batches(chunk, features, device)


def _same_shape_batches(chunk: list[Utterance], features: dict[str, Any] | None,
                        device: torch.device) -> Iterator[tuple[list[Utterance], torch.Tensor]]:
    by_shape: dict[tuple[int, ...], list[Utterance]] = {}
    for u in chunk:
        by_shape.setdefault(u.data.shape, []).append(u)
    for same in by_shape.values():
        stacked = torch.from_numpy(np.stack([u.data for u in same]))
        batch = {"wave": stacked} if same[0].is_wave else {"x": stacked.unsqueeze(1)}
        yield same, batch_inputs(batch, features, device)


@torch.no_grad()
def predict(model: nn.Module, items: Iterable[Utterance], device: torch.device, *, amp: bool,
            features: dict[str, Any] | None = None, group: int = EVAL_GROUP) -> Predictions:
    """Whole-utterance class probabilities (``model`` is put in eval mode)."""
    model.eval()
    ids: list[str] = []
    splits: list[str] = []
    labels: list[int] = []
    probs: list[np.ndarray] = []
    nll = 0.0
    for same, x in utterance_batches(items, features, device, group=group):
        with autocast(device, amp):
            logits = model(x)
        logp = torch.log_softmax(logits.float(), dim=1)
        target = torch.tensor([u.label for u in same], device=device)
        nll += float(-logp.gather(1, target[:, None]).sum())
        probs.append(logp.exp().cpu().numpy().astype(np.float32))
        ids.extend(u.utt_id for u in same)
        splits.extend(u.split for u in same)
        labels.extend(u.label for u in same)
    n = len(labels)
    num_classes = probs[0].shape[1] if probs else 0
    return Predictions(
        utt_ids=tuple(ids),
        splits=tuple(splits),
        labels=np.asarray(labels, dtype=np.int64),
        probabilities=np.concatenate(probs) if probs else np.zeros((0, num_classes), np.float32),
        loss=nll / n if n else float("nan"),
    )


def evaluate(model: nn.Module, items: Iterable[Utterance], device: torch.device, *, num_classes: int,
             amp: bool, features: dict[str, Any] | None = None) -> tuple[Metrics, Predictions]:
    """The benchmark's metrics (and the predictions they come from) on labelled utterances."""
    pred = predict(model, items, device, amp=amp, features=features)
    if len(pred.labels) == 0:
        raise ValueError("the evaluation split is empty: no labelled rows to evaluate")
    return compute_metrics(pred.labels, pred.predicted, num_classes, loss=pred.loss), pred
