"""A whole training step (forward, loss, backward, optimiser) captured as one CUDA graph.

Why: profiling PyResNet-152 on an H200 (batch 256, 128x160, bf16, channels_last;
docs/performance.md) showed the eager step is bound by the CPU launching ~2,000 small kernels
(the pyramid convs, concatenations, BN and ReLU of 50 blocks), not by the GPU: the rewritten
pyramids removed GPU time but made the step slower in eager mode because they add launches.
Replaying a captured graph removes the per-kernel CPU cost, after which the GPU-side savings
of ``impl="fast"`` show. The maths is unchanged.

Limits (those of CUDA graphs): fixed input shapes (a batch of another shape runs eagerly),
the optimiser's hyper-parameters are frozen into the graph at capture (changing the learning
rate needs a new capture: call :meth:`GraphedTrainStep.recapture`), no host syncs inside the
model, CUDA only.
"""

from __future__ import annotations

import logging
from typing import Callable

import torch
from torch import nn

log = logging.getLogger(__name__)


class GraphedTrainStep:
    """``step(x, y) -> loss`` that replays one captured CUDA graph for inputs of the captured shape.

    ``amp_dtype``: autocast dtype inside the graph (``None``: no autocast). Autocast's weight
    cast cache is disabled, as graph capture requires.
    """

    def __init__(self, model: nn.Module, optimizer: torch.optim.Optimizer,
                 loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], *,
                 amp_dtype: torch.dtype | None = torch.bfloat16, warmup: int = 3) -> None:
        self.model, self.optimizer, self.loss_fn = model, optimizer, loss_fn
        self.amp_dtype, self.warmup = amp_dtype, warmup
        self.graph: torch.cuda.CUDAGraph | None = None
        self.static_x: torch.Tensor | None = None
        self.static_y: torch.Tensor | None = None
        self.static_loss: torch.Tensor | None = None

    def _eager(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        self.optimizer.zero_grad(set_to_none=True)
        with torch.autocast("cuda", dtype=self.amp_dtype or torch.float32, enabled=self.amp_dtype is not None,
                            cache_enabled=False):
            loss = self.loss_fn(self.model(x), y)
        loss.backward()
        self.optimizer.step()
        return loss

    def capture(self, x: torch.Tensor, y: torch.Tensor) -> None:
        if not x.is_cuda:
            raise ValueError("GraphedTrainStep needs CUDA tensors; on CPU call the model eagerly")
        self.static_x, self.static_y = x.clone(), y.clone()
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):  # warm up (cuDNN autotuning, optimiser state) off the capture stream
            for _ in range(self.warmup):
                self._eager(self.static_x, self.static_y)
        torch.cuda.current_stream().wait_stream(side)
        self.graph = torch.cuda.CUDAGraph()
        self.optimizer.zero_grad(set_to_none=True)
        with torch.cuda.graph(self.graph):
            self.static_loss = self._eager(self.static_x, self.static_y)
        log.info("captured a CUDA graph of the training step for input %s", tuple(x.shape))

    def recapture(self) -> None:
        """Capture again (e.g. after changing the learning rate) with the same shapes."""
        if self.static_x is None:
            raise RuntimeError("nothing captured yet")
        self.capture(self.static_x, self.static_y)

    def __call__(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        if self.graph is None:
            self.capture(x, y)
        if x.shape != self.static_x.shape or y.shape != self.static_y.shape:
            return self._eager(x, y)  # e.g. the last, smaller batch of an epoch
        self.static_x.copy_(x)
        self.static_y.copy_(y)
        self.graph.replay()
        return self.static_loss


def fast_train_step(model: nn.Module, optimizer: torch.optim.Optimizer,
                    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], *,
                    compile: bool = True, graph: bool = True,
                    amp_dtype: torch.dtype | None = torch.bfloat16) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """The fastest measured training step on a GPU: default ``torch.compile`` of the model (fuses
    BN/ReLU/residual adds into few kernels), then the whole step captured as a CUDA graph.

    On an H200 this made PyResNet-152 (``impl="fast"``) train 1.69x as fast as the eager
    reference (docs/performance.md). Compilation takes ~1-2 minutes on the first step.
    The optimiser must be built on ``model``'s parameters (compiling keeps them).
    """
    target = torch.compile(model) if compile else model
    if graph:
        return GraphedTrainStep(target, optimizer, loss_fn, amp_dtype=amp_dtype)

    def step(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        optimizer.zero_grad(set_to_none=True)
        with torch.autocast(x.device.type, dtype=amp_dtype or torch.float32, enabled=amp_dtype is not None):
            loss = loss_fn(target(x), y)
        loss.backward()
        optimizer.step()
        return loss

    return step
