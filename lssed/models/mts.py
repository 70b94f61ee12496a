"""MTS-ResNet: multi-time-scale convolution (Guizzo et al., ICASSP 2020) on ResNet backbones.

docs/paper.md: "MTS-3 branches" on ResNet-152. Every conv whose kernel spans more than one frame
runs its kernel at several time scales in parallel and merges the branch outputs by an
element-wise max (Guizzo et al.'s "pooled map"). The learned parameters are the backbone's: the
state_dict is a plain ResNet's, and ``after_optimizer_step`` folds the branches back into it.

Guizzo et al.'s training scheme, as here:

- Before each training forward pass, every stretched branch gets its own kernel, a resampled
  copy of the original one (``MTSConv2d.stretched_<k>`` parameters; not in the state_dict).
- Each branch's gradient reaches only its own kernel, and the optimizer steps every kernel
  separately (its own momentum and weight decay).
- After every optimizer step, each stretched kernel is resampled back to the original length and
  the original kernel becomes the mean of the original and all branch kernels
  (:meth:`MTSResNet.after_optimizer_step`; the training loop calls it when a model has it).
  The round trip is not the identity (a 3-frame kernel squeezed to 1 frame loses its shape in
  time), so this mean also smooths the kernel along time at every step, as theirs does.

Outside training (eval mode, no grad, or a frozen kernel) the branches are recomputed from the
original kernel and no copy is touched. Gradients taken in eval mode flow into the original
kernel through the resampling.

Our choices (the LSSED paper gives no scale factors):

- time scales ``(0.5, 1.0, 2.0)``; a kernel of ``k`` frames becomes ``2*floor(k*s/2)+1``
  frames: 3 -> 1/3/7, 7 -> 3/7/15; frequency is never stretched. The lengths are odd so that
  "same" time padding (``k'//2``) gives every branch the original output size: Guizzo et al.
  resize the branch outputs back by interpolation, which here would be the identity.
- resampling along time is linear interpolation (the weights of ``F.interpolate(mode="bilinear",
  align_corners=False)``, as Guizzo et al.), applied as a fixed matrix, times a gain ``k / k'``
  (ours; they use none) so a stretched kernel keeps the original's total weight, and thus its
  response to a constant input, when the kernel is constant along time. For other kernels the
  totals differ: the 1-frame copy of a 3-frame kernel is 3 x its centre tap, not the sum of its
  three taps. Resampling back uses the inverse gain ``k' / k``.
- 1x1 convs (and the 1x1 shortcuts) have no time extent and stay plain convs.
"""

from __future__ import annotations

import functools
from typing import Any, Sequence

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
    align_corners=False)`` along one axis, times the gain ``k / k_new``."""
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


def _drop_copies(module: "MTSConv2d", state_dict: dict[str, Any], prefix: str, _meta: Any) -> None:
    for name in module.copy_names:
        state_dict.pop(prefix + name, None)


def _copies_not_missing(module: "MTSConv2d", incompatible: Any) -> None:
    # the branch copies are never saved (their values are re-derived before they are used)
    suffixes = tuple("." + name for name in module.copy_names)
    incompatible.missing_keys[:] = [k for k in incompatible.missing_keys
                                    if not (k.endswith(suffixes) or k in module.copy_names)]


class MTSConv2d(nn.Conv2d):
    """A Conv2d whose kernel is applied at several time scales; outputs merged by max."""

    def __init__(self, *args: Any, scales: Sequence[float] = DEFAULT_SCALES, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if not scales or any(s <= 0 for s in scales):
            raise ValueError(f"MTS time scales must be positive, got {scales!r}")
        kh, kt = self.kernel_size
        if self.dilation != (1, 1) or (kt > 1 and (kt % 2 == 0 or self.padding[1] != kt // 2)):
            raise ValueError("MTSConv2d needs odd time kernels with 'same' padding and no dilation")
        # distinct time lengths only: two scales that give the same kernel would be one branch
        self.time_lengths = tuple(dict.fromkeys(scaled_length(kt, s) for s in scales)) if kt > 1 else (kt,)
        self.scales = tuple(scales)
        self.copy_names: tuple[str, ...] = ()
        names = []
        for k in self.time_lengths:
            if k == kt:
                continue
            # resampling as small matrix products (cheap to differentiate); non-persistent buffers
            dev = self.weight.device
            self.register_buffer(f"stretch_{k}", torch.tensor(resample_matrix(kt, k), device=dev), persistent=False)
            self.register_buffer(f"shrink_{k}", torch.tensor(resample_matrix(k, kt), device=dev), persistent=False)
            # the branch's own kernel between a training forward pass and the optimizer step
            self.register_parameter(f"stretched_{k}", nn.Parameter(self.weight.new_zeros(*self.weight.shape[:3], k)))
            names.append(f"stretched_{k}")
            if self.bias is not None:
                self.register_parameter(f"stretched_bias_{k}", nn.Parameter(torch.zeros_like(self.bias)))
                names.append(f"stretched_bias_{k}")
        self.copy_names = tuple(names)
        if names:
            self.register_state_dict_post_hook(_drop_copies)
            self.register_load_state_dict_post_hook(_copies_not_missing)

    def stretched(self, k: int, weight: torch.Tensor | None = None) -> torch.Tensor:
        """The original kernel (or ``weight``) resampled to ``k`` frames, in its own precision
        (not autocast's: the copies are averaged back into the kernel)."""
        w = self.weight if weight is None else weight
        if k == self.kernel_size[1]:
            return w
        r = getattr(self, f"stretch_{k}").to(w.dtype)
        with torch.autocast(w.device.type, enabled=False):
            return torch.matmul(w, r.t())  # (o, i, kh, kt) @ (kt, k)

    def shrunk(self, k: int, weight: torch.Tensor) -> torch.Tensor:
        """A ``k``-frame kernel resampled back to the original length (inverse gain)."""
        r = getattr(self, f"shrink_{k}").to(weight.dtype)
        with torch.autocast(weight.device.type, enabled=False):
            return torch.matmul(weight, r.t())  # (o, i, kh, k) @ (k, kt)

    def separate_branches(self) -> bool:
        """Whether this pass trains each branch's own kernel (Guizzo et al.'s scheme)."""
        return bool(self.copy_names) and self.training and torch.is_grad_enabled() and self.weight.requires_grad

    def branch_kernels(self) -> list[tuple[int, torch.Tensor, torch.Tensor | None]]:
        """``(time length, kernel, bias)`` of every branch for this forward pass."""
        kt = self.kernel_size[1]
        separate = self.separate_branches()
        out = []
        for k in self.time_lengths:
            if k == kt:
                out.append((k, self.weight, self.bias))
            elif separate:
                w, b = getattr(self, f"stretched_{k}"), getattr(self, f"stretched_bias_{k}", None)
                with torch.no_grad():  # as Guizzo et al.'s forward: the copy restarts from the original
                    w.copy_(self.stretched(k))
                    if b is not None:
                        b.copy_(self.bias)
                # a clone is what the conv saves, so a second forward before backward can refresh
                # the copy without invalidating the first graph; gradients still reach the copy
                out.append((k, w.clone(), None if b is None else b.clone()))
            else:
                out.append((k, self.stretched(k), self.bias))
        return out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if len(self.time_lengths) == 1:
            return super().forward(x)
        outs = (F.conv2d(x, w, b, self.stride, (self.padding[0], k // 2), groups=self.groups)
                for k, w, b in self.branch_kernels())
        return functools.reduce(torch.maximum, outs)

    @torch.no_grad()
    def average_back(self) -> None:
        """Guizzo et al.'s step after the optimizer's: the original kernel (and bias) becomes the
        mean of itself and every branch kernel resampled back; the copies restart from it."""
        if not self.copy_names or not self.weight.requires_grad:
            return  # nothing trains here (e.g. a frozen backbone)
        kt = self.kernel_size[1]
        weights, biases = [], []
        for k in self.time_lengths:
            if k == kt:
                weights.append(self.weight.clone())
                biases.append(self.bias)
            else:
                weights.append(self.shrunk(k, getattr(self, f"stretched_{k}")))
                biases.append(getattr(self, f"stretched_bias_{k}", None))
        self.weight.copy_(torch.stack(weights).mean(0))
        if self.bias is not None:
            self.bias.copy_(torch.stack(biases).mean(0))
        for k in self.time_lengths:
            if k != kt:
                getattr(self, f"stretched_{k}").copy_(self.stretched(k))
                if self.bias is not None:
                    getattr(self, f"stretched_bias_{k}").copy_(self.bias)


class MTSResNet(ResNet):
    """A ResNet built of :class:`MTSConv2d`; its state_dict is the plain ResNet's."""

    def after_optimizer_step(self) -> None:
        """Fold every conv's branch kernels back into its kernel (call after each optimizer step)."""
        for m in self.modules():
            if isinstance(m, MTSConv2d):
                m.average_back()


def _mts_resnet(layers: Sequence[int], block: str, scales: Sequence[float] = DEFAULT_SCALES, **kw: Any) -> MTSResNet:
    return MTSResNet(layers, block, conv_layer=functools.partial(MTSConv2d, scales=tuple(scales)), **kw)


@register_model
def mts_resnet18(**kw: Any) -> MTSResNet:
    return _mts_resnet((2, 2, 2, 2), "basic", **kw)


@register_model
def mts_resnet50(**kw: Any) -> MTSResNet:
    return _mts_resnet((3, 4, 6, 3), "bottleneck", **kw)


@register_model
def mts_resnet101(**kw: Any) -> MTSResNet:
    return _mts_resnet((3, 4, 23, 3), "bottleneck", **kw)


@register_model
def mts_resnet152(**kw: Any) -> MTSResNet:
    return _mts_resnet((3, 8, 36, 3), "bottleneck", **kw)
