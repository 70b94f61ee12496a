"""Padded frames kept out of a model's output: the time mask behind ``model(x, lengths)``.

Training pads utterances shorter than the crop with the log floor; evaluation never pads.
For a padded utterance to give the output of the unpadded one, no valid output may read a
padded frame. Convolutions and pools are the only layers that mix frames (BN, ReLU, residual
sums and channel concatenations act per frame), so while :class:`TimeMask` is active every
``Conv2d`` / ``MaxPool2d`` / ``AvgPool2d`` first zeroes its input past each item's valid
frames: exactly what the unpadded input's own zero "same" padding holds there (a max-pool's
padding is -inf, but every pool here follows a ReLU, so 0 changes no maximum). The valid
length at each time resolution follows the layer's own output-size formula, so strides,
odd lengths and ``floor`` vs ``ceil`` pools are all accounted for; the model's pooling over
time then averages (or attends over) only :meth:`TimeMask.valid` frames.

The hooks exist only during a masked forward pass: an unpadded batch (``lengths`` None, or
every item full length, as in evaluation) runs the plain network at no cost.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

_TIME_MIXING = (nn.Conv2d, nn.MaxPool2d, nn.AvgPool2d)


def mixes_time(module: nn.Module) -> bool:
    """Convs and pools, and modules that run their own convs functionally (``mixes_time = True``,
    with ``kernel_size``/``stride``/``padding`` describing the time axis: PyResNet's pyramids)."""
    return isinstance(module, _TIME_MIXING) or bool(getattr(module, "mixes_time", False))


def _pair(v: Any) -> tuple[int, int]:
    return (int(v), int(v)) if isinstance(v, int) else (int(v[0]), int(v[1]))


def out_frames(frames: torch.Tensor | int, module: nn.Module) -> torch.Tensor | int:
    """Time length after ``module`` (a conv or pool) of an input ``frames`` long (PyTorch's formula)."""
    k, s, p = _pair(module.kernel_size)[1], _pair(module.stride)[1], _pair(module.padding)[1]
    d = _pair(getattr(module, "dilation", 1))[1]
    return (frames + 2 * p - d * (k - 1) - 1) // s + 1


class TimeMask:
    """Context manager: while active, ``model``'s convs and pools see no frame past ``lengths``.

    ``lengths``: (B,) valid frames of the ``frames``-long input (already clamped to it).
    Valid lengths are kept per time resolution (every path through the networks reaching a
    given size has the same valid length: the same strides and "same" paddings).
    """

    def __init__(self, model: nn.Module, lengths: torch.Tensor, frames: int) -> None:
        self.model = model
        self._valid: dict[int, torch.Tensor] = {int(frames): lengths}
        self._handles: list[Any] = []

    def valid(self, frames: int) -> torch.Tensor:
        """(B,) valid frames of a map ``frames`` long (the pooling's mask)."""
        try:
            return self._valid[int(frames)]
        except KeyError:
            raise RuntimeError(f"no valid length known for a time size of {frames} frames (sizes seen: "
                               f"{sorted(self._valid)}); a layer changed the time size without a hook") from None

    def mask(self, x: torch.Tensor, time_dim: int = -1) -> torch.Tensor:
        """``x`` with every frame past the valid length (at its resolution) set to zero."""
        return zero_past(x, self.valid(x.size(time_dim)), time_dim)

    def _pre_hook(self, module: nn.Module, args: tuple[Any, ...]) -> tuple[Any, ...]:
        x = args[0]
        frames = x.size(-1)
        valid = self.valid(frames)
        self._valid.setdefault(int(out_frames(frames, module)), out_frames(valid, module))
        return (self.mask(x), *args[1:])

    def __enter__(self) -> "TimeMask":
        for m in self.model.modules():
            if mixes_time(m):
                self._handles.append(m.register_forward_pre_hook(self._pre_hook))
        return self

    def __exit__(self, *exc: Any) -> None:
        for h in self._handles:
            h.remove()
        self._handles.clear()


def _keep(x: torch.Tensor, valid: torch.Tensor, time_dim: int) -> torch.Tensor:
    """1.0 for the first ``valid[b]`` frames of item b, else 0.0, broadcastable against ``x``."""
    frames = x.size(time_dim)
    keep = torch.arange(frames, device=x.device) < valid.to(x.device)[:, None]  # (B, T)
    shape = [1] * x.dim()
    shape[0], shape[time_dim] = x.size(0), frames
    return keep.view(shape).to(x.dtype)


def zero_past(x: torch.Tensor, valid: torch.Tensor, time_dim: int = -1) -> torch.Tensor:
    """``x`` with every frame of item b from ``valid[b]`` on set to zero."""
    return x * _keep(x, valid, time_dim)


def masked_time_mean(x: torch.Tensor, valid: torch.Tensor | None, time_dim: int = -1) -> torch.Tensor:
    """Mean over ``time_dim`` of the first ``valid[b]`` frames of each item (all when None)."""
    if valid is None:
        return x.mean(dim=time_dim)
    w = _keep(x, valid, time_dim)
    return (x * w).sum(dim=time_dim) / w.sum(dim=time_dim).clamp(min=1)
