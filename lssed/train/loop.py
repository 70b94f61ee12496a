"""The per-worker training function: the paper's recipe, validation-UA model selection, resume.

:func:`run_training` holds the training logic and talks to its surroundings only through a
:class:`~lssed.train.types.WorkerContext`: Ray Train's (:mod:`lssed.train.trainer`) or the
in-memory :class:`~lssed.train.local.LocalContext` (the GPU benchmark and unit tests, where Ray
is not installed). Imports here are torch and numpy only.

Recipe (docs/paper.md, the ``lssed`` preset): SGD momentum 0.9, lr 0.01 x0.1 every 20 epochs
(``lr_step_epochs``, resolved by the trainer: a third of the epochs unless set),
weight decay 1e-3, batch 256, 60 epochs, all from ``cfg.train``; bf16 autocast on GPU;
optional class-weighted cross-entropy. ``batch_size`` is the global batch: each of N workers
takes ``batch_size // N`` (DDP averages the gradients). The checkpoint is selected on
validation UA (ties keep the earlier epoch); test is evaluated once, at the end, with it.

One SGD step is a :data:`~lssed.train.steps.TrainStep`, ``step(x, y, lengths) -> loss``
(``lengths``: the real frames of each padded crop, or None; the loss is None for a batch the
step skipped); :func:`build_training` gets it from :func:`lssed.train.steps.build_train_step`:
eager (:func:`eager_train_step`), compiled, or CUDA-graphed (``train.compile``,
``train.cuda_graph``).
"""

from __future__ import annotations

import logging
import random
import time
from dataclasses import dataclass, field
from typing import Any, Iterable, Sequence

import numpy as np
import torch
from torch import nn

from lssed.train.augment import spec_augment
from lssed.train.evaluate import batch_inputs, evaluate
from lssed.train.pretrained import backbone_eval, freeze_backbone, load_pretrained, read_init_state
from lssed.train.results import EpochRecord, Metrics
# TrainStep and eager_train_step live in lssed.train.steps; imported from here too (tests, benchmarks)
from lssed.train.steps import TrainStep, build_train_step, eager_train_step, unwrap  # noqa: F401
from lssed.train.types import LoopOutcome, Predictions, WorkerContext

log = logging.getLogger(__name__)

# --------------------------------------------------------------------------- pieces


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)


def cpu_state(model: nn.Module) -> dict[str, torch.Tensor]:
    """A CPU copy of ``model``'s state_dict that later training steps do not change."""
    return {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}


def class_weights(counts: Sequence[int]) -> torch.Tensor:
    """``N / (C * n_c)`` per class (0 for a class absent from training)."""
    c = torch.tensor(list(counts), dtype=torch.float32)
    total, k = float(c.sum()), len(counts)
    return torch.where(c > 0, total / (k * c.clamp(min=1)), torch.zeros_like(c))


def train_one_epoch(model: nn.Module, batches: Iterable[dict[str, torch.Tensor]], step: TrainStep,
                    device: torch.device, *, features: dict[str, Any] | None = None, channels_last: bool = False,
                    augment: dict[str, int] | None = None, frozen_backbone: bool = False,
                    timings: dict[str, float] | None = None) -> tuple[torch.Tensor, int]:
    """One pass; returns (sum of per-sample losses as a device tensor, samples).

    ``frozen_backbone``: only ``fc`` trains, so everything else stays in eval mode (its
    BatchNorm statistics fixed too; :mod:`lssed.train.pretrained`).
    ``augment``: keyword arguments of :func:`lssed.train.augment.spec_augment`, or None.
    ``timings`` (if given) accumulates ``data_wait_s``: the seconds spent waiting for the next
    batch. Device work is asynchronous, so on a GPU this is time the host had nothing to queue.
    """
    model.train()
    if frozen_backbone:
        backbone_eval(unwrap(model))
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
        # lengths stay on the host: the model decides "nothing padded" without a device sync
        lengths = batch.get("lengths")
        loss = step(x, y) if lengths is None else step(x, y, lengths)
        if loss is None:  # skipped by the step (a CUDA-graphed step's last partial batch): not trained
            continue
        loss_sum += loss * y.numel()
        seen += int(y.numel())
    if timings is not None:
        timings["data_wait_s"] = timings.get("data_wait_s", 0.0) + waited
    return loss_sum, seen


# --------------------------------------------------------------------------- one run's state


@dataclass(frozen=True)
class LoopSettings:
    """What :func:`run_training` reads from its plain-data config."""

    seed: int
    epochs: int
    amp: bool
    num_classes: int
    features: dict[str, Any] | None  # the feature config when log-mel is computed on the device
    augment: dict[str, int] | None  # spec_augment's keyword arguments when it is on
    channels_last: bool  # requested; it takes effect on CUDA only
    frozen_backbone: bool = False  # train.freeze=backbone: only the classifier trains

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> "LoopSettings":
        tc = config["train"]
        augment = None
        if tc.get("spec_augment"):
            augment = {"freq_bands": int(tc["spec_augment_freq_bands"]),
                       "time_frames": int(tc["spec_augment_time_frames"]), "masks": int(tc["spec_augment_masks"])}
        return cls(seed=int(tc["seed"]), epochs=int(tc["epochs"]), amp=bool(tc["amp"]),
                   num_classes=int(config["num_classes"]),
                   features=config["features"] if config["recompute"] else None, augment=augment,
                   channels_last=bool(tc.get("channels_last", True)),
                   frozen_backbone=tc.get("freeze", "none") == "backbone")


@dataclass
class Training:
    """The model and what updates it, on this worker's device."""

    model: nn.Module  # as prepared by the context (DDP-wrapped with several workers)
    core: nn.Module  # the unwrapped model: state_dict, evaluation
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    step: TrainStep
    num_params: int
    channels_last: bool  # in effect


@dataclass
class Progress:
    """What carries over from epoch to epoch, and through a checkpoint."""

    history: list[EpochRecord] = field(default_factory=list)
    best_epoch: int = 0
    best_ua: float = -1.0
    best_state: dict[str, torch.Tensor] | None = None  # rank 0 only
    restarts: int = 0

    def add(self, record: EpochRecord, core: nn.Module | None) -> None:
        """Record an epoch; keep ``core``'s weights (rank 0 passes it) if its validation UA is the best."""
        self.history.append(record)
        if record.val.ua > self.best_ua:  # strictly: ties keep the earlier epoch
            self.best_ua, self.best_epoch = record.val.ua, record.epoch
            if core is not None:
                self.best_state = cpu_state(core)


def lr_step_epochs(tc: dict[str, Any]) -> int:
    """``train.lr_step_epochs``, or (null) a third of the epochs: the paper's 20 of 60."""
    step = tc.get("lr_step_epochs")
    return int(step) if step is not None else max(1, int(tc["epochs"]) // 3)


def build_training(config: dict[str, Any], settings: LoopSettings, ctx: WorkerContext) -> Training:
    """Model (initialised from the seed, or from ``train.init_from``), SGD with the recipe's step
    schedule over the parameters that train, the loss, the step."""
    from lssed.models import create_model

    tc = config["train"]
    device = ctx.device
    # train.model_kwargs, e.g. {impl: fast} (the rewritten PyResNet pyramids of the fast recipe)
    model = create_model(config["model"], num_classes=settings.num_classes, **(config.get("model_kwargs") or {}))
    if tc.get("init_from"):
        resized = load_pretrained(model, read_init_state(tc["init_from"], config.get("out")))
        if ctx.rank == 0:
            log.info("initialised %s from %s%s", config["model"], tc["init_from"],
                     " (new classifier)" if resized else "")
    if settings.frozen_backbone:
        freeze_backbone(model)
    # learned parameters, those a state_dict saves (not MTS's per-step branch copies)
    num_params = sum(v.numel() for v in model.state_dict(keep_vars=True).values() if isinstance(v, nn.Parameter))
    channels_last = settings.channels_last and device.type == "cuda"
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    model = ctx.prepare_model(model)
    optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=float(tc["lr"]),
                                momentum=float(tc["momentum"]), weight_decay=float(tc["weight_decay"]))
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=lr_step_epochs(tc),
                                                gamma=float(tc["lr_gamma"]))
    weight = class_weights(config["class_counts"]).to(device) if tc.get("class_weighted") else None
    step = build_train_step(model, optimizer, nn.CrossEntropyLoss(weight=weight), device, amp=settings.amp,
                            compile=bool(tc.get("compile", False)), cuda_graph=bool(tc.get("cuda_graph", False)),
                            world_size=ctx.world_size)
    return Training(model=model, core=unwrap(model), optimizer=optimizer, scheduler=scheduler, step=step,
                    num_params=int(num_params), channels_last=channels_last)


def checkpoint_state(epoch: int, tr: Training, progress: Progress) -> dict[str, Any]:
    """Everything a restart needs to continue exactly after ``epoch`` (rank 0 saves it)."""
    return {
        "epoch": epoch,
        "model": {k: v.detach().cpu() for k, v in tr.core.state_dict().items()},
        "optimizer": tr.optimizer.state_dict(),
        "scheduler": tr.scheduler.state_dict(),
        "history": [h.to_dict() for h in progress.history],
        "best_epoch": progress.best_epoch,
        "best_ua": progress.best_ua,
        "best_model": progress.best_state,
        "restarts": progress.restarts,
    }


def resume(state: dict[str, Any], tr: Training) -> tuple[int, Progress]:
    """Load a :func:`checkpoint_state` into ``tr``; returns (its epoch, the progress it held)."""
    tr.core.load_state_dict(state["model"])
    tr.optimizer.load_state_dict(state["optimizer"])
    tr.scheduler.load_state_dict(state["scheduler"])
    progress = Progress(history=[EpochRecord.from_dict(h) for h in state["history"]],
                        best_epoch=int(state["best_epoch"]), best_ua=float(state["best_ua"]),
                        best_state=state["best_model"], restarts=int(state.get("restarts", 0)) + 1)
    return int(state["epoch"]), progress


# --------------------------------------------------------------------------- epochs


def validate(tr: Training, settings: LoopSettings, ctx: WorkerContext) -> Metrics:
    """Validation metrics of the current weights: computed on rank 0, the same on every rank."""
    val = None
    if ctx.rank == 0:
        val, _ = evaluate(tr.core, ctx.eval_utterances("val"), ctx.device, num_classes=settings.num_classes,
                          amp=settings.amp, features=settings.features)
    return ctx.broadcast(val)


def train_epoch(epoch: int, tr: Training, settings: LoopSettings, ctx: WorkerContext,
                batch_size: int) -> tuple[EpochRecord, int]:
    """Train one epoch and validate; returns its record and the samples this worker trained."""
    device = ctx.device
    # dropout, augmentation: seeded per (epoch, rank), so a resumed run draws what it would have
    torch.manual_seed(settings.seed * 1_000_003 + epoch * 1009 + ctx.rank)
    lr = float(tr.optimizer.param_groups[0]["lr"])
    t0 = time.perf_counter()
    timings: dict[str, float] = {}
    loss_sum, seen = train_one_epoch(tr.model, ctx.train_batches(epoch, batch_size), tr.step, device,
                                     features=settings.features, channels_last=tr.channels_last,
                                     augment=settings.augment, frozen_backbone=settings.frozen_backbone,
                                     timings=timings)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    t_train = time.perf_counter() - t0
    totals = ctx.all_reduce_sum(torch.stack([loss_sum.float(), torch.tensor(float(seen), device=device)]))
    train_loss = float(totals[0] / totals[1]) if float(totals[1]) else float("nan")
    tr.scheduler.step()
    val = validate(tr, settings, ctx)
    record = EpochRecord(epoch=epoch, lr=lr, train_loss=train_loss, val=val, seconds=time.perf_counter() - t0,
                         train_seconds=t_train, samples=int(totals[1]),
                         data_wait_seconds=timings.get("data_wait_s", 0.0))
    return record, seen


def epoch_metrics(record: EpochRecord, progress: Progress) -> dict[str, Any]:
    """What every rank reports to Ray (Tune's schedulers read ``val_ua``)."""
    return {
        "epoch": record.epoch,
        "train_loss": record.train_loss,
        "val_ua": record.val.ua,
        "val_wa": record.val.wa,
        "val_f1": record.val.macro_f1,
        "val_loss": record.val.loss,
        "lr": record.lr,
        "best_val_ua": progress.best_ua,
        "best_epoch": progress.best_epoch,
        "samples_per_s": record.samples / record.train_seconds if record.train_seconds > 0 else 0.0,
        "data_wait_s": record.data_wait_seconds,
    }


def _log_epoch(record: EpochRecord, epochs: int) -> None:
    waiting = 100.0 * record.data_wait_seconds / record.train_seconds if record.train_seconds > 0 else 0.0
    log.info("epoch %d/%d: train_loss %.4f val UA %.4f WA %.4f (%.1f s; training %.1f s, %.0f%% of it "
             "waiting for data)", record.epoch, epochs, record.train_loss, record.val.ua, record.val.wa,
             record.seconds, record.train_seconds, waiting)


def final_evaluation(tr: Training, settings: LoopSettings, ctx: WorkerContext, progress: Progress, *,
                     trained: int, train_time: float) -> LoopOutcome:
    """Rank 0: the validation-selected weights on val and test."""
    best_state = progress.best_state if progress.best_state is not None else cpu_state(tr.core)
    tr.core.load_state_dict(best_state)
    predictions: dict[str, Predictions] = {}
    evaluations: dict[str, Metrics] = {}
    common = {"num_classes": settings.num_classes, "amp": settings.amp, "features": settings.features}
    val, predictions["val"] = evaluate(tr.core, ctx.eval_utterances("val"), ctx.device, **common)
    evaluations["test"], predictions["test"] = evaluate(tr.core, ctx.eval_utterances("test"), ctx.device, **common)
    return LoopOutcome(
        history=tuple(progress.history),
        best_epoch=progress.best_epoch,
        val=val,
        evaluations=evaluations,
        predictions=predictions,
        best_state=best_state,
        num_params=tr.num_params,
        restarts=progress.restarts,
        train_samples=trained,
        train_seconds_here=train_time,
        device=str(ctx.device),
    )


# --------------------------------------------------------------------------- the function


def run_training(config: dict[str, Any], ctx: WorkerContext) -> LoopOutcome | None:
    """Train, select on validation UA, evaluate the selection on val and test (rank 0).

    ``config``: see :func:`lssed.train.trainer.loop_config`. Returns the outcome on rank 0
    (after ``ctx.write_outputs``), None on other ranks.
    """
    settings = LoopSettings.from_config(config)
    seed_everything(settings.seed)
    tr = build_training(config, settings, ctx)
    start_epoch, progress = 0, Progress()
    state = ctx.load_checkpoint()
    if state is not None:
        start_epoch, progress = resume(state, tr)
        if ctx.rank == 0:
            log.info("resuming %s from epoch %d (restart %d)", config.get("run_name"), start_epoch,
                     progress.restarts)

    batch_size = max(1, int(config["train"]["batch_size"]) // ctx.world_size)
    trained, train_time = 0, 0.0
    for epoch in range(start_epoch + 1, settings.epochs + 1):
        record, seen = train_epoch(epoch, tr, settings, ctx, batch_size)
        trained += seen
        train_time += record.train_seconds
        progress.add(record, tr.core if ctx.rank == 0 else None)
        if ctx.rank == 0:
            _log_epoch(record, settings.epochs)
        ctx.report(epoch_metrics(record, progress), checkpoint_state(epoch, tr, progress) if ctx.rank == 0 else None)

    if ctx.rank != 0:
        return None
    outcome = final_evaluation(tr, settings, ctx, progress, trained=trained, train_time=train_time)
    ctx.write_outputs(outcome, config)
    return outcome
