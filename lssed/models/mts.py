"""MTS-ResNet: multi-time-scale convolution (Guizzo et al., ICASSP 2020) on ResNet backbones.

docs/paper.md: "MTS-3 branches" on ResNet-152. Every conv whose kernel spans more than one frame
runs its ONE kernel at three time scales in parallel and merges the outputs by an
element-wise max ("pooled map"); no parameters are added, so the state_dict is a ResNet's.

Our choices (the LSSED paper gives no scale factors):
- time scales ``(0.5, 1.0, 2.0)``; a kernel of ``k`` frames becomes ``2*floor(k*s/2)+1``
  frames (odd, so "same" padding keeps every branch's output the size of the original's and
  no output resizing is needed): 3 -> 1/3/7, 7 -> 3/7/15; frequency is never stretched.
- the kernel is resampled along time with linear interpolation (the weights of
  ``F.interpolate(mode="bilinear", align_corners=False)``, applied as a fixed matrix) and
  multiplied by ``k / k'`` so a constant input gives the same response at every scale.
- Guizzo et al. average the stretched kernels back into the original after every optimiser
  step. Here the stretched kernels are not separate parameters: they are recomputed from the
  one shared kernel in every forward pass and the gradients of all branches flow into it, so
  there is nothing to average.
- 1x1 convs (and the 1x1 shortcuts) have no time extent and stay plain convs.
"""

from __future__ import annotations

import functools
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from lssed.models import register_model
from lssed.models.resnet import ResNet

DEFAULT_SCALES: tuple[float, ...] = (0.5, 1.0, 2.0)


def scaled_length(k: int, scale: float) -> int:
    """The odd time length of a ``k``-frame kernel stretched by ``scale``."""
    return 2 * int(k * scale // 2) + 1


def resample_matrix(k: int, k_new: int) -> list[list[float]]:
    """``(k_new, k)`` linear-interpolation weights, as ``F.interpolate(mode="bilinear",
    align_corners=False)`` along one axis, times ``k / k_new`` (same response to a constant)."""
    rows = []
    for j in range(k_new):
        src = min(max((j + 0.5) * k / k_new - 0.5, 0.0), k - 1.0)
        lo = int(src)
        hi = min(lo + 1, k - 1)
        frac = src - lo
        row = [0.0] * k
        row[lo] += (1.0 - frac) * k / k_new
        row[hi] += frac * k / k_new
        rows.append(row)
    return rows


class MTSConv2d(nn.Conv2d):
    """A Conv2d whose kernel is applied at several time scales; outputs merged by max."""

    def __init__(self, *args, scales: Sequence[float] = DEFAULT_SCALES, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        if any(s <= 0 for s in scales) or not scales:
            raise ValueError(f"MTS time scales must be positive, got {scales!r}")
        kh, kt = self.kernel_size
        if self.dilation != (1, 1) or (kt > 1 and (kt % 2 == 0 or self.padding[1] != kt // 2)):
            raise ValueError("MTSConv2d needs odd time kernels with 'same' padding and no dilation")
        # distinct time lengths only: two scales that give the same kernel would be one branch
        self.time_lengths = tuple(dict.fromkeys(scaled_length(kt, s) for s in scales)) if kt > 1 else (kt,)
        self.scales = tuple(scales)
        # resampling as a small matrix product: much cheaper to differentiate than F.interpolate;
        # non-persistent, so the state_dict stays a plain ResNet's
        for k in self.time_lengths:
            if k != kt:
                self.register_buffer(f"resample_{k}", torch.tensor(resample_matrix(kt, k)), persistent=False)

    def branch_weight(self, kt_new: int) -> torch.Tensor:
        if kt_new == self.kernel_size[1]:
            return self.weight
        r = getattr(self, f"resample_{kt_new}")
        return torch.matmul(self.weight, r.to(self.weight.dtype).t())  # (o, i, kh, kt) @ (kt, kt')

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if len(self.time_lengths) == 1:
            return super().forward(x)
        outs = (F.conv2d(x, self.branch_weight(k), self.bias, self.stride, (self.padding[0], k // 2),
                         groups=self.groups) for k in self.time_lengths)
        return functools.reduce(torch.maximum, outs)


def _mts_resnet(layers: Sequence[int], block: str, scales: Sequence[float] = DEFAULT_SCALES, **kw) -> ResNet:
    return ResNet(layers, block, conv_layer=functools.partial(MTSConv2d, scales=tuple(scales)), **kw)


@register_model
def mts_resnet18(**kw) -> ResNet:
    return _mts_resnet((2, 2, 2, 2), "basic", **kw)


@register_model
def mts_resnet50(**kw) -> ResNet:
    return _mts_resnet((3, 4, 6, 3), "bottleneck", **kw)


@register_model
def mts_resnet101(**kw) -> ResNet:
    return _mts_resnet((3, 4, 23, 3), "bottleneck", **kw)


@register_model
def mts_resnet152(**kw) -> ResNet:
    return _mts_resnet((3, 8, 36, 3), "bottleneck", **kw)
