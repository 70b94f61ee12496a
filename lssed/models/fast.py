"""A whole training step (forward, loss, backward, optimiser) captured as one CUDA graph.

Why: profiling PyResNet-152 on an H200 (batch 256, 128x160, bf16, channels_last;
docs/performance.md) showed the eager step is bound by the CPU launching ~2,000 small kernels
(the pyramid convs, concatenations, BN and ReLU of 50 blocks), not by the GPU: the rewritten
pyramids removed GPU time but made the step slower in eager mode because they add launches.
Replaying a captured graph removes the per-kernel CPU cost, after which the GPU-side savings
of ``impl="fast"`` show. The maths is unchanged.

Limits (those of CUDA graphs): fixed input shapes (a smaller batch is dropped, another shape
runs uncaptured), the optimiser's hyper-parameters are frozen into the graph at capture (a
changed learning rate is noticed and captured again), no host syncs inside the model, CUDA
only, one process (no DDP all-reduce inside the graph). The training loop builds it through
:func:`lssed.train.steps.build_train_step` (``train.cuda_graph``), whose docstring states the
rules for partial batches, padded crops, lr changes, MTS and DDP.
"""

from __future__ import annotations

import logging
from typing import Callable

import torch
from torch import nn

log = logging.getLogger(__name__)


class GraphedTrainStep:
    """``step(x, y, lengths=None) -> loss`` replaying a captured CUDA graph of the whole SGD step.

    The first call captures the step for its batch shape. Later calls:

    * a batch with fewer rows than the captured one (an epoch's last) is dropped: returns
      ``None`` without training (a graph has fixed shapes; padding would change BatchNorm's
      batch statistics);
    * any other shape runs uncaptured (eagerly, through ``forward``), with a warning;
    * ``lengths`` with a padded item (host tensor, checked without a sync) replay a second graph
      captured on the model's masked path, the lengths copied into a static device tensor;
    * when the optimizer's lr, momentum or weight decay changed since capture (an lr scheduler),
      the graphs are captured again: those values are frozen into the captured kernels.

    Capturing warms up ``warmup`` steps on a side stream (cuDNN autotuning, torch.compile's
    compilation, lazy allocations), then restores the parameters, buffers, optimizer state and
    RNG state it had: a capture never trains, so the step's n-th call is the eager step's n-th.
    SGD only (its momentum buffers are created zero before the first capture, which gives the
    first step exactly the eager step's update with dampening 0).

    ``forward``: what computes the logits (default ``model``; e.g. ``torch.compile(model)``).
    ``amp_dtype``: autocast dtype inside the graph (``None``: no autocast); autocast's weight cast
    cache is disabled, as capture requires. ``after_step`` runs eagerly after every replay
    (MTS's ``after_optimizer_step``: it rewrites weights in place, where the graph reads them).
    Do not load optimizer state after the first call (it replaces the tensors the graph reads);
    the training loop resumes before its first step.
    """

    def __init__(self, model: nn.Module, optimizer: torch.optim.Optimizer,
                 loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], *,
                 forward: Callable[..., torch.Tensor] | None = None,
                 amp_dtype: torch.dtype | None = torch.bfloat16, warmup: int = 3,
                 after_step: Callable[[], None] | None = None) -> None:
        if not isinstance(optimizer, torch.optim.SGD):
            raise TypeError(f"GraphedTrainStep supports torch.optim.SGD (the recipe's), not {type(optimizer).__name__}")
        if any(g["momentum"] and g["dampening"] for g in optimizer.param_groups):
            raise ValueError("GraphedTrainStep needs SGD dampening=0 (a zero momentum buffer then equals a fresh one)")
        self.model, self.optimizer, self.loss_fn = model, optimizer, loss_fn
        self.forward = forward if forward is not None else model
        self.amp_dtype, self.warmup = amp_dtype, max(1, int(warmup))
        self.after_step = after_step or (lambda: None)
        self.rows: int | None = None  # the captured batch size (the first batch's)
        self.graphs: dict[bool, _Captured] = {}  # by "masked"
        self.settings: tuple[tuple[float, ...], ...] | None = None  # optimizer settings at capture
        self.dropped = 0  # batches skipped (smaller than the captured one)
        self._warned_shape = False

    # ------------------------------------------------------------------ one step, uncaptured
    def _eager(self, x: torch.Tensor, y: torch.Tensor, lengths: torch.Tensor | None) -> torch.Tensor:
        self.optimizer.zero_grad(set_to_none=True)
        with torch.autocast("cuda", dtype=self.amp_dtype or torch.float32, enabled=self.amp_dtype is not None,
                            cache_enabled=False):
            logits = self.forward(x) if lengths is None else self.forward(x, lengths)
        loss = self.loss_fn(logits.float(), y)
        loss.backward()
        self.optimizer.step()
        return loss.detach()

    # ------------------------------------------------------------------ capture
    def _optimizer_settings(self) -> tuple[tuple[float, ...], ...]:
        return tuple((float(g["lr"]), float(g["momentum"]), float(g["weight_decay"]))
                     for g in self.optimizer.param_groups)

    def _momentum_buffers(self) -> None:
        """Zero momentum buffers where none exist yet: the captured update then reads them (and a
        zero buffer times momentum, plus the gradient, is exactly a fresh buffer)."""
        for group in self.optimizer.param_groups:
            if not group["momentum"]:
                continue
            for p in group["params"]:
                state = self.optimizer.state[p]
                if state.get("momentum_buffer") is None:
                    state["momentum_buffer"] = torch.zeros_like(p, memory_format=torch.preserve_format)

    def _state_tensors(self) -> list[torch.Tensor]:
        tensors = list(self.model.parameters()) + list(self.model.buffers())
        for state in self.optimizer.state.values():
            tensors.extend(v for v in state.values() if isinstance(v, torch.Tensor))
        return tensors

    def capture(self, x: torch.Tensor, y: torch.Tensor, lengths: torch.Tensor | None = None) -> None:
        """Capture the step for this batch's shape (``lengths`` given: the masked path)."""
        if not x.is_cuda:
            raise ValueError("GraphedTrainStep needs CUDA tensors; on CPU use the eager or compiled step")
        masked = lengths is not None
        static = _Captured(x.clone(), y.clone(), lengths.to(x.device).clone() if masked else None)
        self._momentum_buffers()
        tensors = self._state_tensors()
        saved = [t.detach().clone() for t in tensors]
        rng = (torch.get_rng_state(), torch.cuda.get_rng_state(x.device))
        side = torch.cuda.Stream(device=x.device)
        side.wait_stream(torch.cuda.current_stream(x.device))
        with torch.cuda.stream(side):  # warm up off the capture stream
            for _ in range(self.warmup):
                self._eager(static.x, static.y, static.lengths)
                self.after_step()
        torch.cuda.current_stream(x.device).wait_stream(side)
        with torch.no_grad():  # undo the warm-up: a capture must not train
            for t, s in zip(tensors, saved):
                t.copy_(s)
        del saved
        torch.set_rng_state(rng[0])
        torch.cuda.set_rng_state(rng[1], x.device)
        static.graph = torch.cuda.CUDAGraph()
        self.optimizer.zero_grad(set_to_none=True)  # the graph's backward allocates its own gradients
        try:
            # thread_local: Ray Data moves the next batches to the GPU from a background thread
            # meanwhile; under the default "global" mode its CUDA calls would break this capture
            with torch.cuda.graph(static.graph, capture_error_mode="thread_local"):
                static.loss = self._eager(static.x, static.y, static.lengths)
        except RuntimeError as exc:  # e.g. "operation not permitted when stream is capturing"
            raise RuntimeError(
                f"capturing {type(self.model).__name__}'s training step{' on padded crops' if masked else ''} as a "
                f"CUDA graph failed: its forward waits for the host (CRNN's packed LSTM over padded crops does). "
                f"Set train.cuda_graph=false (train.compile still applies). Cause: {exc}") from exc
        self.graphs[masked] = static
        log.info("captured a CUDA graph of the training step for input %s%s at lr %s", tuple(x.shape),
                 " (masked path)" if masked else "", [g["lr"] for g in self.optimizer.param_groups])

    def recapture(self) -> None:
        """Drop the captured graphs; the next call captures again (e.g. after an lr change)."""
        self.graphs.clear()
        self.settings = None

    # ------------------------------------------------------------------ the step
    def __call__(self, x: torch.Tensor, y: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor | None:
        if self.rows is None:
            self.rows = int(x.size(0))
        if x.size(0) < self.rows:
            self.dropped += 1
            return None
        settings = self._optimizer_settings()
        if settings != self.settings:
            self.graphs.clear()
            self.settings = settings
        # host lengths (the collate's): deciding "anything padded?" needs no device sync
        masked = lengths is not None and bool((torch.as_tensor(lengths).cpu() < x.size(-1)).any())
        g = self.graphs.get(masked)
        if g is None:
            self.capture(x, y, lengths if masked else None)
            g = self.graphs[masked]
        elif x.shape != g.x.shape or y.shape != g.y.shape:
            if not self._warned_shape:
                log.warning("batch of shape %s differs from the captured %s: running it uncaptured",
                            tuple(x.shape), tuple(g.x.shape))
                self._warned_shape = True
            loss = self._eager(x, y, lengths if masked else None)
            self.after_step()
            return loss
        g.x.copy_(x, non_blocking=True)
        g.y.copy_(y, non_blocking=True)
        if masked:
            g.lengths.copy_(torch.as_tensor(lengths), non_blocking=True)
        g.graph.replay()
        self.after_step()
        return g.loss


class _Captured:
    """One captured graph and the static tensors it reads and writes."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor, lengths: torch.Tensor | None) -> None:
        self.x, self.y, self.lengths = x, y, lengths
        self.graph: torch.cuda.CUDAGraph | None = None
        self.loss: torch.Tensor | None = None


def fast_train_step(model: nn.Module, optimizer: torch.optim.Optimizer, loss_fn: nn.Module, *,
                    compile: bool = True, graph: bool = True, amp: bool = True) -> Callable[..., torch.Tensor | None]:
    """The fastest measured training step on a GPU: default ``torch.compile`` of the model (fuses
    BN/ReLU/residual adds into few kernels), then the whole step captured as a CUDA graph.

    On an H200 this made PyResNet-152 (``impl="fast"``) train 1.69x as fast as the eager
    reference (docs/performance.md). Compilation takes ~1-2 minutes on the first step.
    The optimiser must be built on ``model``'s parameters (compiling keeps them). The same
    builder as the training loop's (``train.compile``, ``train.cuda_graph``).
    """
    from lssed.train.steps import build_train_step

    device = next(model.parameters()).device
    return build_train_step(model, optimizer, loss_fn, device, amp=amp, compile=compile, cuda_graph=graph)
