"""The per-worker training function: the paper's recipe, validation-UA model selection, resume.

:func:`run_training` holds all of the training logic and talks to its surroundings only
through a :class:`WorkerContext`: Ray Train's (``lssed.train.trainer``) or the in-memory
:class:`LocalContext` (the GPU benchmark and unit tests, where Ray is not installed).
Imports here are torch and numpy only.

Recipe (PAPER.md, the ``lssed`` preset): SGD momentum 0.9, lr 0.01 x0.1 every 20 epochs,
weight decay 1e-3, batch 256, 60 epochs, all from ``cfg.train``; bf16 autocast on GPU;
optional class-weighted cross-entropy. ``batch_size`` is the global batch: each of N workers
takes ``batch_size // N`` (DDP averages the gradients). The checkpoint is selected on
validation UA (ties keep the earlier epoch); test is evaluated once, at the end, with it.
"""

from __future__ import annotations

import copy
import logging
import os
import random
import signal
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Iterator, Protocol, Sequence

import numpy as np
import torch
from torch import nn

from lssed.train.augment import spec_augment
from lssed.train.metrics import compute_metrics
from lssed.train.results import EpochRecord, Metrics

log = logging.getLogger(__name__)

STATE_FILE = "state.pt"


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
    utt_ids: tuple[str, ...]
    splits: tuple[str, ...]
    labels: np.ndarray  # (N,) int64
    probabilities: np.ndarray  # (N, C) float32
    loss: float

    @property
    def predicted(self) -> np.ndarray:
        return self.probabilities.argmax(axis=1) if len(self.labels) else np.zeros(0, dtype=np.int64)


@dataclass(frozen=True)
class LoopOutcome:
    """What rank 0's :func:`run_training` hands to :meth:`WorkerContext.write_outputs`."""

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
    rank: int
    world_size: int
    device: torch.device

    def prepare_model(self, model: nn.Module) -> nn.Module: ...

    def train_batches(self, epoch: int, batch_size: int) -> Iterable[dict[str, torch.Tensor]]: ...

    def eval_utterances(self, split: str) -> Iterable[Utterance]: ...

    def load_checkpoint(self) -> dict[str, Any] | None: ...

    def report(self, metrics: dict[str, Any], state: dict[str, Any] | None) -> None: ...

    def all_reduce_sum(self, tensor: torch.Tensor) -> torch.Tensor: ...

    def broadcast(self, obj: Any) -> Any: ...

    def write_outputs(self, outcome: LoopOutcome, config: dict[str, Any]) -> None: ...


# --------------------------------------------------------------------------- pieces


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)


def unwrap(model: nn.Module) -> nn.Module:
    return model.module if hasattr(model, "module") and isinstance(model, nn.parallel.DistributedDataParallel) else model


def class_weights(counts: Sequence[int]) -> torch.Tensor:
    """``N / (C * n_c)`` per class (0 for a class absent from training)."""
    c = torch.tensor(list(counts), dtype=torch.float32)
    total, k = float(c.sum()), len(counts)
    return torch.where(c > 0, total / (k * c.clamp(min=1)), torch.zeros_like(c))


def autocast(device: torch.device, enabled: bool):
    """bf16 autocast on CUDA when ``enabled``; a no-op elsewhere."""
    on = bool(enabled) and device.type == "cuda"
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=on)


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


class _FeatureView:
    """Attribute access to a feature-config dict (lssed.features takes the dataclass's fields)."""

    def __init__(self, d: dict[str, Any]) -> None:
        self.__dict__.update(d)


def train_one_epoch(model: nn.Module, batches: Iterable[dict[str, torch.Tensor]], optimizer: torch.optim.Optimizer,
                    loss_fn: nn.Module, device: torch.device, *, amp: bool,
                    features: dict[str, Any] | None = None, channels_last: bool = False,
                    augment: dict[str, int] | None = None,
                    timings: dict[str, float] | None = None) -> tuple[torch.Tensor, int]:
    """One pass; returns (sum of per-sample losses as a device tensor, samples).

    ``augment``: keyword arguments of :func:`lssed.train.augment.spec_augment`, or None.
    ``timings`` (if given) accumulates ``data_wait_s``: the seconds spent waiting for the next
    batch. Device work is asynchronous, so on a GPU this is time the host had nothing to queue.
    """
    model.train()
    loss_sum = torch.zeros((), device=device)
    seen = 0
    waited = 0.0
    iterator = iter(batches)
    while True:
        t_wait = time.perf_counter()
        batch = next(iterator, None)
        waited += time.perf_counter() - t_wait
        if batch is None:
            break
        y = batch["y"].to(device, non_blocking=True)
        if y.numel() < 2:  # BatchNorm cannot train on one sample; equal splits keep DDP in step
            continue
        x = batch_inputs(batch, features, device)
        if augment:
            x = spec_augment(x, **augment)
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        optimizer.zero_grad(set_to_none=True)
        with autocast(device, amp):
            logits = model(x)
        loss = loss_fn(logits.float(), y)
        loss.backward()
        optimizer.step()
        loss_sum += loss.detach() * y.numel()
        seen += int(y.numel())
    if timings is not None:
        timings["data_wait_s"] = timings.get("data_wait_s", 0.0) + waited
    return loss_sum, seen


@torch.no_grad()
def predict(model: nn.Module, items: Iterable[Utterance], device: torch.device, *, amp: bool,
            features: dict[str, Any] | None = None, group: int = 64) -> Predictions:
    """Whole-utterance predictions; utterances of equal length are batched together (exact)."""
    model.eval()
    ids: list[str] = []
    splits: list[str] = []
    labels: list[int] = []
    probs: list[np.ndarray] = []
    nll = 0.0

    def flush(chunk: list[Utterance]) -> None:
        nonlocal nll
        by_shape: dict[tuple[int, ...], list[Utterance]] = {}
        for u in chunk:
            by_shape.setdefault(u.data.shape, []).append(u)
        for same in by_shape.values():
            stacked = torch.from_numpy(np.stack([u.data for u in same]))
            batch = {"wave": stacked} if same[0].is_wave else {"x": stacked.unsqueeze(1)}
            x = batch_inputs(batch, features, device)
            with autocast(device, amp):
                logits = model(x)
            logp = torch.log_softmax(logits.float(), dim=1)
            target = torch.tensor([u.label for u in same], device=device)
            nll += float(-logp.gather(1, target[:, None]).sum())
            probs.append(logp.exp().cpu().numpy().astype(np.float32))
            ids.extend(u.utt_id for u in same)
            splits.extend(u.split for u in same)
            labels.extend(u.label for u in same)

    chunk: list[Utterance] = []
    for u in items:
        chunk.append(u)
        if len(chunk) >= group:
            flush(chunk)
            chunk = []
    if chunk:
        flush(chunk)
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
    pred = predict(model, items, device, amp=amp, features=features)
    if len(pred.labels) == 0:
        raise ValueError("the evaluation split is empty: no labelled rows to evaluate")
    return compute_metrics(pred.labels, pred.predicted, num_classes, loss=pred.loss), pred


def epoch_record_to_dict(r: EpochRecord) -> dict[str, Any]:
    import dataclasses

    return dataclasses.asdict(r)


def epoch_record_from_dict(d: dict[str, Any]) -> EpochRecord:
    v = dict(d["val"])
    v["per_class_recall"] = tuple(v["per_class_recall"])
    v["confusion"] = tuple(tuple(r) for r in v["confusion"])
    return EpochRecord(epoch=int(d["epoch"]), lr=float(d["lr"]), train_loss=float(d["train_loss"]),
                       val=Metrics(**v), seconds=float(d["seconds"]), train_seconds=float(d.get("train_seconds", 0.0)),
                       samples=int(d.get("samples", 0)), data_wait_seconds=float(d.get("data_wait_seconds", 0.0)))


def _maybe_inject_fault(fault: dict[str, Any] | None, epoch: int, rank: int) -> None:
    """Tests only: SIGKILL this worker once (a marker file remembers that it happened)."""
    if not fault or int(fault.get("epoch", -1)) != epoch or int(fault.get("rank", 0)) != rank:
        return
    marker = Path(fault["marker"])
    if marker.exists():
        return
    marker.parent.mkdir(parents=True, exist_ok=True)
    marker.write_text(f"killed rank {rank} at the start of epoch {epoch}, pid {os.getpid()}\n")
    log.warning("fault injection: killing worker rank %d (pid %d) at epoch %d", rank, os.getpid(), epoch)
    sys.stdout.flush()
    os.kill(os.getpid(), signal.SIGKILL)


# --------------------------------------------------------------------------- the function


def run_training(config: dict[str, Any], ctx: WorkerContext) -> LoopOutcome | None:
    """Train, select on validation UA, evaluate the selection on val and test (rank 0).

    ``config``: see :func:`lssed.train.trainer.loop_config`. Returns the outcome on rank 0
    (after ``ctx.write_outputs``), None on other ranks.
    """
    from lssed.models import create_model

    tc = config["train"]
    seed = int(tc["seed"])
    num_classes = int(config["num_classes"])
    epochs = int(tc["epochs"])
    amp = bool(tc["amp"])
    features = config["features"] if config["recompute"] else None
    device = ctx.device
    seed_everything(seed)

    model = create_model(config["model"], num_classes=num_classes, **config.get("model_kwargs", {}))
    num_params = sum(p.numel() for p in model.parameters())
    channels_last = bool(tc.get("channels_last", True)) and device.type == "cuda"
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    model = ctx.prepare_model(model)
    core = unwrap(model)
    optimizer = torch.optim.SGD(model.parameters(), lr=float(tc["lr"]), momentum=float(tc["momentum"]),
                                weight_decay=float(tc["weight_decay"]))
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=int(tc["lr_step_epochs"]),
                                                gamma=float(tc["lr_gamma"]))
    weight = class_weights(config["class_counts"]).to(device) if tc.get("class_weighted") else None
    augment = None
    if tc.get("spec_augment"):
        augment = {"freq_bands": int(tc["spec_augment_freq_bands"]), "time_frames": int(tc["spec_augment_time_frames"]),
                   "masks": int(tc["spec_augment_masks"])}
    loss_fn = nn.CrossEntropyLoss(weight=weight)

    history: list[EpochRecord] = []
    best_epoch, best_ua = 0, -1.0
    best_state: dict[str, torch.Tensor] | None = None
    restarts = 0
    start_epoch = 0
    state = ctx.load_checkpoint()
    if state is not None:
        core.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        start_epoch = int(state["epoch"])
        history = [epoch_record_from_dict(h) for h in state["history"]]
        best_epoch, best_ua = int(state["best_epoch"]), float(state["best_ua"])
        best_state = state["best_model"]
        restarts = int(state.get("restarts", 0)) + 1
        if ctx.rank == 0:
            log.info("resuming %s from epoch %d (restart %d)", config.get("run_name"), start_epoch, restarts)

    per_worker = max(1, int(tc["batch_size"]) // ctx.world_size)
    trained, train_time = 0, 0.0
    for epoch in range(start_epoch + 1, epochs + 1):
        _maybe_inject_fault(config.get("fault"), epoch, ctx.rank)
        torch.manual_seed(seed * 1_000_003 + epoch * 1009 + ctx.rank)  # dropout etc.: resume-stable
        lr = optimizer.param_groups[0]["lr"]
        t0 = time.perf_counter()
        step_timings: dict[str, float] = {}
        loss_sum, seen = train_one_epoch(model, ctx.train_batches(epoch, per_worker), optimizer, loss_fn,
                                         device, amp=amp, features=features, channels_last=channels_last,
                                         augment=augment, timings=step_timings)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        t_train = time.perf_counter() - t0
        trained += seen
        train_time += t_train
        totals = ctx.all_reduce_sum(torch.stack([loss_sum.float(), torch.tensor(float(seen), device=device)]))
        train_loss = float(totals[0] / totals[1]) if float(totals[1]) else float("nan")
        scheduler.step()

        val = None
        if ctx.rank == 0:
            val, _ = evaluate(core, ctx.eval_utterances("val"), device, num_classes=num_classes, amp=amp,
                              features=features)
        val = ctx.broadcast(val)
        record = EpochRecord(epoch=epoch, lr=float(lr), train_loss=train_loss, val=val,
                             seconds=time.perf_counter() - t0, train_seconds=t_train, samples=int(totals[1]),
                             data_wait_seconds=step_timings.get("data_wait_s", 0.0))
        history.append(record)
        if val.ua > best_ua:
            best_ua, best_epoch = val.ua, epoch
            if ctx.rank == 0:
                best_state = {k: v.detach().cpu().clone() for k, v in core.state_dict().items()}
        metrics = {
            "epoch": epoch,
            "train_loss": train_loss,
            "val_ua": val.ua,
            "val_wa": val.wa,
            "val_f1": val.macro_f1,
            "val_loss": val.loss,
            "lr": float(lr),
            "best_val_ua": best_ua,
            "best_epoch": best_epoch,
            "samples_per_s": (totals[1].item() / t_train) if t_train > 0 else 0.0,
            "data_wait_s": record.data_wait_seconds,
        }
        ckpt = None
        if ctx.rank == 0:
            ckpt = {
                "epoch": epoch,
                "model": {k: v.detach().cpu() for k, v in core.state_dict().items()},
                "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict(),
                "history": [epoch_record_to_dict(h) for h in history],
                "best_epoch": best_epoch,
                "best_ua": best_ua,
                "best_model": best_state,
                "restarts": restarts,
            }
        if ctx.rank == 0:
            log.info("epoch %d/%d: train_loss %.4f val UA %.4f WA %.4f (%.1f s; training %.1f s, %.0f%% of it "
                     "waiting for data)", epoch, epochs, train_loss, val.ua, val.wa, record.seconds, t_train,
                     100.0 * record.data_wait_seconds / t_train if t_train > 0 else 0.0)
        ctx.report(metrics, ckpt)

    if ctx.rank != 0:
        return None
    if best_state is None:
        best_state = {k: v.detach().cpu().clone() for k, v in core.state_dict().items()}
    core.load_state_dict(best_state)
    evaluations: dict[str, Metrics] = {}
    predictions: dict[str, Predictions] = {}
    val_metrics, predictions["val"] = evaluate(core, ctx.eval_utterances("val"), device, num_classes=num_classes,
                                               amp=amp, features=features)
    evaluations["test"], predictions["test"] = evaluate(core, ctx.eval_utterances("test"), device,
                                                        num_classes=num_classes, amp=amp, features=features)
    outcome = LoopOutcome(
        history=tuple(history),
        best_epoch=best_epoch,
        val=val_metrics,
        evaluations=evaluations,
        predictions=predictions,
        best_state=best_state,
        num_params=int(num_params),
        restarts=restarts,
        train_samples=trained,
        train_seconds_here=train_time,
        device=str(device),
    )
    ctx.write_outputs(outcome, config)
    return outcome


# --------------------------------------------------------------------------- without Ray


class LocalContext:
    """One process, in-memory data: the GPU benchmark and unit tests (no Ray needed).

    ``train_data``: (x (N, 1, n_mels, T) float32, y (N,) int64) already cropped; each epoch is
    a seeded shuffle in batches. ``eval_data``: utterances per split. Checkpoints live in
    memory (``self.checkpoints``), so resuming can be tested by passing one in.
    """

    rank = 0
    world_size = 1

    def __init__(self, train_data: tuple[torch.Tensor, torch.Tensor], eval_data: dict[str, list[Utterance]], *,
                 device: str | torch.device | None = None, seed: int = 0,
                 checkpoint: dict[str, Any] | None = None, stop_after_epoch: int | None = None) -> None:
        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        x, y = train_data
        self.x = x.to(self.device)
        self.y = y.to(self.device)
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
            yield {"x": self.x[idx], "y": self.y[idx]}

    def eval_utterances(self, split: str) -> Iterable[Utterance]:
        return list(self.eval_data.get(split, []))

    def load_checkpoint(self) -> dict[str, Any] | None:
        return self._resume

    def report(self, metrics: dict[str, Any], state: dict[str, Any] | None) -> None:
        self.reports.append(metrics)
        if state is not None:
            self.checkpoints.append(copy.deepcopy(state))
        if self.stop_after_epoch is not None and metrics["epoch"] >= self.stop_after_epoch:
            raise _Stop()

    def all_reduce_sum(self, tensor: torch.Tensor) -> torch.Tensor:
        return tensor

    def broadcast(self, obj: Any) -> Any:
        return obj

    def write_outputs(self, outcome: LoopOutcome, config: dict[str, Any]) -> None:
        self.outcome = outcome


class _Stop(Exception):
    """Raised by LocalContext.report to simulate a crash after a given epoch."""


def run_local(config: dict[str, Any], ctx: LocalContext) -> LoopOutcome | None:
    """:func:`run_training` in-process; returns None when ``ctx.stop_after_epoch`` cut it short."""
    try:
        return run_training(config, ctx)
    except _Stop:
        return None
