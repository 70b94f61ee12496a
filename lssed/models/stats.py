"""Parameter and FLOP counts of the zoo (``lssed models --table``)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch.utils.flop_counter import FlopCounterMode


@dataclass(frozen=True)
class ModelStats:
    name: str
    params: int
    gflops: float  # forward FLOPs (multiply-add = 2) at ``input_shape``
    input_shape: tuple[int, ...]


def model_stats(name: str, input_shape: tuple[int, ...] = (1, 1, 128, 160), **kw) -> ModelStats:
    """Count parameters and forward FLOPs (``torch.utils.flop_counter``, eval mode, CPU)."""
    from lssed.models import create_model

    model = create_model(name, **kw).eval()
    # learned parameters, those a state_dict saves (not MTS's per-step branch copies)
    params = sum(v.numel() for v in model.state_dict(keep_vars=True).values() if isinstance(v, torch.nn.Parameter))
    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        model(torch.zeros(input_shape))
    return ModelStats(name=name, params=params, gflops=counter.get_total_flops() / 1e9, input_shape=tuple(input_shape))
