"""One SGD step of the training loop, and the builder that picks how it runs.

A :data:`TrainStep` is ``step(x, y, lengths) -> loss``: forward under the recipe's autocast,
float32 cross-entropy, backward, ``optimizer.step()``, then the model's own
``after_optimizer_step`` when it has one (MTS folds its branch kernels back after every step:
:mod:`lssed.models.mts`). :func:`build_train_step` returns one of three plans, all with that
contract (``train.compile``, ``train.cuda_graph``; docs/training.md, "Compiled and CUDA-graphed
steps"):

* ``eager``: :func:`eager_train_step`, the reference.
* ``compiled``: the same step around ``torch.compile(model)`` (inductor by default; on CPU too).
  The maths is the eager step's; only the rounding of fused kernels differs (equal to the
  eager step within float64 tolerance on CPU: tests/train/test_fast_step.py).
* ``graphed`` / ``compiled+graphed`` (CUDA only): the whole step replayed as one CUDA graph,
  :class:`lssed.models.fast.GraphedTrainStep`. Its rules, each for a reason:

  - **Last partial batch: dropped.** A graph has fixed shapes. Padding the batch to the captured
    size with zero-weight rows would still change BatchNorm's batch statistics, and running it
    uncaptured would make torch.compile compile a second shape. So a batch with fewer rows than
    the captured one (the epoch's last) is skipped: the step returns ``None`` and
    :func:`lssed.train.loop.train_one_epoch` neither trains on it nor counts its samples.
    Under Ray Data's local shuffle a different remainder is dropped every epoch.
  - **lengths (padded crops) are honoured**: a batch with a padded item replays a second graph,
    captured on the model's masked path with the lengths in a static device tensor
    (``model(x, lengths)`` takes the masked path for device lengths without a host check:
    :meth:`lssed.models.base.SERModel.valid_input_frames`); a batch with nothing padded replays
    the plain graph, as the eager step would run the plain network.
  - **lr changes (StepLR) recapture**: SGD's hyper-parameters are frozen into the captured
    kernels, so the step compares each call's (lr, momentum, weight decay) with the captured
    ones and captures again when they changed (three times in the paper's 60 epochs).
    Capturing warms up on the batch and then restores the weights, buffers, optimizer state and
    RNG, so a capture never trains.
  - **after_optimizer_step** runs eagerly after each replay (it rewrites weights in place, at
    the addresses the graph reads).
  - **DDP**: a graph of the step would have to contain DDP's gradient all-reduce (NCCL capture,
    static buckets). It is not done: with more than one worker the builder logs a warning and
    uses the un-graphed (compiled, when ``compile``) step, whose backward all-reduces as DDP
    does. With one worker Ray Train does not wrap the model and the graph is used.
  - bf16 autocast (``train.amp``) is captured with autocast's weight cache off (capture requires
    it); channels_last is the model's and the inputs' memory format (set by the loop on CUDA).

Imports here are torch only (the loop runs where Ray and lssed.config are not installed).
"""

from __future__ import annotations

import logging
from typing import Any, Callable

import torch
from torch import nn

from lssed.train.evaluate import autocast

log = logging.getLogger(__name__)

# step(x, y, lengths) -> the batch's mean loss (a 0-d device tensor), or None when the step skipped
# the batch (a CUDA-graphed step's last partial batch); it updates the model in place.
# lengths: (B,) real frames of each crop (host tensor) or None; the model masks the padding.
TrainStep = Callable[[torch.Tensor, torch.Tensor, "torch.Tensor | None"], "torch.Tensor | None"]

PLANS = ("eager", "compiled", "graphed", "compiled+graphed")


def unwrap(model: nn.Module) -> nn.Module:
    """The module inside a DDP wrapper (what checkpoints and evaluation use)."""
    return model.module if isinstance(model, nn.parallel.DistributedDataParallel) else model


def after_step_hook(model: nn.Module) -> Callable[[], None]:
    """The model's ``after_optimizer_step`` (MTS), or a no-op."""
    return getattr(unwrap(model), "after_optimizer_step", lambda: None)


def eager_train_step(model: nn.Module, optimizer: torch.optim.Optimizer, loss_fn: nn.Module,
                     device: torch.device, *, amp: bool, forward: Callable[..., torch.Tensor] | None = None
                     ) -> TrainStep:
    """The plain SGD step: forward under autocast, float32 loss, backward, update, the model's hook.

    ``forward``: what computes the logits (default ``model``; the compiled plan passes
    ``torch.compile(model)``, which shares ``model``'s parameters).
    """
    net = forward if forward is not None else model
    after = after_step_hook(model)

    def step(x: torch.Tensor, y: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        optimizer.zero_grad(set_to_none=True)
        with autocast(device, amp):
            logits = net(x) if lengths is None else net(x, lengths)
        loss = loss_fn(logits.float(), y)
        loss.backward()
        optimizer.step()
        after()  # a model may need work after each step (MTS folds its branch kernels back)
        return loss.detach()

    return step


def step_plan(*, compile: bool, cuda_graph: bool, device: torch.device, world_size: int) -> str:
    """The plan in effect (one of :data:`PLANS`) for the settings; raises when a graph cannot run here."""
    graph = bool(cuda_graph)
    if graph and device.type != "cuda":
        raise ValueError(f"train.cuda_graph needs a CUDA device, but this worker runs on {device}: set "
                         "train.use_gpu=true on a machine with a GPU, or train.cuda_graph=false "
                         "(train.compile alone works on CPU)")
    if graph and world_size > 1:
        log.warning("train.cuda_graph is not used with %d workers (DDP's gradient all-reduce is not captured): "
                    "running the %s step", world_size, "compiled" if compile else "eager")
        graph = False
    if graph:
        return "compiled+graphed" if compile else "graphed"
    return "compiled" if compile else "eager"


def build_train_step(model: nn.Module, optimizer: torch.optim.Optimizer, loss_fn: nn.Module,
                     device: torch.device, *, amp: bool, compile: bool = False, cuda_graph: bool = False,
                     world_size: int = 1, compile_backend: str = "inductor") -> TrainStep:
    """The training step for ``train.compile`` / ``train.cuda_graph`` (see the module docstring).

    ``model``: as the worker context prepared it (DDP-wrapped with several workers), already on
    ``device`` and in its memory format; ``optimizer`` is built on its parameters.
    ``compile_backend``: torch.compile's backend (inductor; ``"aot_eager"`` compiles without
    generating code, e.g. for a quick check on CPU).
    """
    plan = step_plan(compile=compile, cuda_graph=cuda_graph, device=device, world_size=world_size)
    if plan == "eager":
        return eager_train_step(model, optimizer, loss_fn, device, amp=amp)
    if plan == "compiled":
        # DDP-wrapped models compile as such (torch's DDP optimizer splits the graph at its buckets)
        return eager_train_step(model, optimizer, loss_fn, device, amp=amp,
                                forward=torch.compile(model, backend=compile_backend))
    from lssed.models.fast import GraphedTrainStep

    core = unwrap(model)  # one worker: a DDP wrapper (if any) has nothing to reduce
    forward: Any = torch.compile(core, backend=compile_backend) if plan == "compiled+graphed" else core
    log.info("training step: %s (the first batch's size is captured; smaller last batches are dropped)", plan)
    return GraphedTrainStep(core, optimizer, loss_fn, forward=forward,
                            amp_dtype=torch.bfloat16 if amp else None, after_step=after_step_hook(core))
