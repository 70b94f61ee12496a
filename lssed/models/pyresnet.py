"""PyResNet: the LSSED authors' Pyramidal-Convolution ResNet (Duta et al. 2020) for speech.

docs/paper.md / the authors' ``pyconvresnet.py``: 1-channel 7x7 stride-2 stem with BN+ReLU and no
max-pool; bottleneck blocks (expansion 4), widths 64/128/256/512, every stage starts with
stride 2; the block's 3x3 is a pyramid of parallel convs concatenated along channels
(stage 1: kernels 3/5/7/9, groups 1/4/8/16, quarter each; stage 2: 3/5/7, groups 1/4/8,
quarter/quarter/half; stage 3: 3/5, groups 1/4, halves; stage 4: one 3x3); strided shortcut =
3x3 max-pool (stride 2) -> 1x1 conv -> BN; head = adaptive average pool to (4, 1) -> flatten ->
``fc`` (2048*4 -> classes). Parameter names and shapes equal the authors' release
(``layer1.0.conv2.conv2_1.weight``, ``layer1.0.downsample.1.weight``, ``fc.weight`` (4, 8192)),
so their checkpoints load with ``strict=True``.

``impl="fast"`` computes the same function with the same state_dict but runs each pyramid
through a per-stage plan (see :data:`FAST_PLAN` and docs/models.md): grouped convs rewritten as
block-diagonal dense convs, or all pyramid levels merged into ONE dense conv whose kernel is the
largest level's with the smaller kernels zero-embedded at its centre (a 3x3 inside a 9x9 is the
same function), which replaces several small launches plus the concatenation by one big conv.
"""

from __future__ import annotations

import functools
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from lssed.models import register_model
from lssed.models.base import SERModel, init_weights
from lssed.models.masking import TimeMask, masked_time_mean
from lssed.models.resnet import Bottleneck

# (kernels, groups, output fraction of ``planes``) per stage, as in the paper / authors' code
PYRAMIDS: tuple[tuple[tuple[int, ...], tuple[int, ...], tuple[float, ...]], ...] = (
    ((3, 5, 7, 9), (1, 4, 8, 16), (0.25, 0.25, 0.25, 0.25)),
    ((3, 5, 7), (1, 4, 8), (0.25, 0.25, 0.5)),
    ((3, 5), (1, 4), (0.5, 0.5)),
    ((3,), (1,), (1.0,)),
)

PYRAMID_MODES = ("grouped", "grouped-nchw", "split", "dense", "merged")
# The fast implementation's pyramid mode per stage (layer1..layer4), from measurements on an
# H200 (benchmarks/train_step.py, docs/performance.md): merging the 4- and 3-level pyramids of
# stages 1-2 into one conv wins; for stage 3 (two levels) all modes were within 1%, so it keeps
# the fewest FLOPs.
FAST_PLAN: tuple[str, str, str, str] = ("merged", "merged", "grouped", "grouped")


def block_diagonal(weight: torch.Tensor, groups: int) -> torch.Tensor:
    """The dense ``(out, in, k, k)`` weight equal to a grouped conv's ``(out, in/groups, k, k)``."""
    if groups == 1:
        return weight
    out_c, in_g, kh, kw = weight.shape
    w = weight.reshape(groups, out_c // groups, in_g, kh, kw)
    eye = torch.eye(groups, dtype=weight.dtype, device=weight.device)
    dense = torch.einsum("goikl,gh->gohikl", w, eye)
    return dense.reshape(out_c, groups * in_g, kh, kw)


def embed_kernel(weight: torch.Tensor, size: int) -> torch.Tensor:
    """Zero-pad a ``k x k`` kernel (odd k) to ``size x size`` around its centre: the same function."""
    p = (size - weight.shape[-1]) // 2
    return F.pad(weight, (p, p, p, p)) if p else weight


class PyConv(nn.Module):
    """A pyramid of parallel convs, outputs concatenated; children ``conv2_1``.. as the authors'.

    ``mode``: ``grouped`` (the authors' computation), ``grouped-nchw`` (the same, run in NCHW
    memory format even when the network is channels_last), ``split`` (each group of a grouped
    level as its own dense conv on its channel slice), ``dense`` (each level as a
    block-diagonal dense conv), ``merged`` (all levels as one dense conv with the largest kernel).
    """

    # every level is an odd kernel with "same" padding: over time the pyramid is one conv of
    # its largest kernel, and the "merged"/"dense"/"split" modes call F.conv2d, which no conv
    # hook sees, so the time mask (lssed/models/masking.py) hooks the pyramid itself
    mixes_time = True

    def __init__(self, inplanes: int, planes: int, kernels: Sequence[int], groups: Sequence[int],
                 fractions: Sequence[float], stride: int = 1, mode: str = "grouped") -> None:
        super().__init__()
        if mode not in PYRAMID_MODES:
            raise ValueError(f"pyramid mode {mode!r} is not one of {PYRAMID_MODES}")
        self.kernels, self.groups, self.stride, self.mode = tuple(kernels), tuple(groups), stride, mode
        self.kernel_size, self.padding = max(kernels), max(kernels) // 2
        for i, (k, g, f) in enumerate(zip(kernels, groups, fractions), start=1):
            self.add_module(f"conv2_{i}", nn.Conv2d(inplanes, int(planes * f), k, stride=stride,
                                                    padding=k // 2, groups=g, bias=False))

    def levels(self) -> list[nn.Conv2d]:
        return [getattr(self, f"conv2_{i}") for i in range(1, len(self.kernels) + 1)]

    def merged_weight(self) -> torch.Tensor:
        kmax = max(self.kernels)
        return torch.cat([embed_kernel(block_diagonal(c.weight, g), kmax)
                          for c, g in zip(self.levels(), self.groups)], dim=0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.mode == "merged":
            kmax = max(self.kernels)
            return F.conv2d(x, self.merged_weight(), stride=self.stride, padding=kmax // 2)
        if self.mode == "grouped-nchw" and not x.is_contiguous():
            out = torch.cat([c(x.contiguous()) for c in self.levels()], dim=1)
            return out.contiguous(memory_format=torch.channels_last)
        if self.mode == "split":
            outs = []
            for c, g in zip(self.levels(), self.groups):
                if g == 1:
                    outs.append(c(x))
                else:
                    outs += [F.conv2d(xi, wi, stride=self.stride, padding=c.padding)
                             for xi, wi in zip(x.chunk(g, dim=1), c.weight.chunk(g, dim=0))]
            return torch.cat(outs, dim=1)
        if self.mode == "dense":
            outs = [F.conv2d(x, block_diagonal(c.weight, g), stride=self.stride, padding=c.padding)
                    for c, g in zip(self.levels(), self.groups)]
        else:
            outs = [c(x) for c in self.levels()]
        return torch.cat(outs, dim=1)


def _pyramid_conv(in_planes: int, out_planes: int, kernel_size: int, *, stride: int = 1, padding: int = 0,
                  bias: bool = False, stage: int, mode: str) -> nn.Module:
    """The bottleneck's middle conv for ``stage``: its pyramid (or one conv) in place of a 3x3."""
    kernels, groups, fractions = PYRAMIDS[stage]
    if len(kernels) == 1:
        return nn.Conv2d(in_planes, out_planes, kernels[0], stride=stride, padding=kernels[0] // 2, bias=False)
    return PyConv(in_planes, out_planes, kernels, groups, fractions, stride=stride, mode=mode)


class PyConvBlock(Bottleneck):
    """Bottleneck: 1x1 -> pyramid (strided) -> 1x1 (x4), BN after each, residual.

    ResNet's bottleneck with the stage's pyramid as ``conv2``; the parameter names
    (``conv1/bn1/conv2/bn2/conv3/bn3/downsample``) are the authors'.
    """

    def __init__(self, inplanes: int, planes: int, stage: int, stride: int = 1,
                 downsample: nn.Module | None = None, mode: str = "grouped") -> None:
        super().__init__(inplanes, planes, stride=stride, downsample=downsample,
                         conv_layer=functools.partial(_pyramid_conv, stage=stage, mode=mode))


class PyResNet(SERModel):
    """PyConvResNet for (B, 1, 128, T) log-mel input; see the module docstring.

    ``impl``: ``"reference"`` (the authors' computation) or ``"fast"`` (same state_dict, same
    function; pyramid modes from ``plan``, default :data:`FAST_PLAN`). ``dropout``: the authors'
    optional dropout before ``fc`` (0 in their release).
    """

    def __init__(self, layers: Sequence[int], num_classes: int = 4, impl: str = "reference",
                 plan: Sequence[str] | None = None, dropout: float = 0.0, zero_init_residual: bool = False) -> None:
        super().__init__()
        if impl not in ("reference", "fast"):
            raise ValueError(f"impl must be 'reference' or 'fast', got {impl!r}")
        if plan is None:
            plan = FAST_PLAN if impl == "fast" else ("grouped",) * 4
        elif impl != "fast":
            raise ValueError("plan= only applies to impl='fast'")
        if len(plan) != 4 or any(p not in PYRAMID_MODES for p in plan):
            raise ValueError(f"plan must name 4 pyramid modes from {PYRAMID_MODES}, got {plan!r}")
        self.num_classes, self.impl, self.plan = num_classes, impl, tuple(plan)
        self.inplanes = 64
        self.conv1 = nn.Conv2d(1, 64, 7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.layer1 = self._make_layer(64, layers[0], 0)
        self.layer2 = self._make_layer(128, layers[1], 1)
        self.layer3 = self._make_layer(256, layers[2], 2)
        self.layer4 = self._make_layer(512, layers[3], 3)
        self.avgpool = nn.AdaptiveAvgPool2d((4, 1))
        self.dp = nn.Dropout(dropout) if dropout > 0 else None
        self.num_features = 512 * 4 * 4
        self.fc = nn.Linear(self.num_features, num_classes)
        init_weights(self)
        if zero_init_residual:
            for m in self.modules():
                if isinstance(m, PyConvBlock):
                    nn.init.zeros_(m.bn3.weight)

    def _make_layer(self, planes: int, blocks: int, stage: int) -> nn.Sequential:
        # every stage starts with stride 2 and a channel change: max-pool -> 1x1 -> BN shortcut
        downsample = nn.Sequential(
            nn.MaxPool2d(3, stride=2, padding=1),
            nn.Conv2d(self.inplanes, planes * 4, 1, bias=False),
            nn.BatchNorm2d(planes * 4),
        )
        mode = self.plan[stage]
        layers = [PyConvBlock(self.inplanes, planes, stage, stride=2, downsample=downsample, mode=mode)]
        self.inplanes = planes * 4
        layers += [PyConvBlock(self.inplanes, planes, stage, mode=mode) for _ in range(1, blocks)]
        return nn.Sequential(*layers)

    def set_plan(self, plan: Sequence[str]) -> None:
        """Switch the pyramid modes in place (the state_dict is unchanged)."""
        if len(plan) != 4 or any(p not in PYRAMID_MODES for p in plan):
            raise ValueError(f"plan must name 4 pyramid modes from {PYRAMID_MODES}, got {plan!r}")
        for stage, mode in enumerate(plan):
            for m in getattr(self, f"layer{stage + 1}").modules():
                if isinstance(m, PyConv):
                    m.mode = mode
        self.plan = tuple(plan)
        self.impl = "fast" if self.plan != ("grouped",) * 4 else self.impl

    def forward_features(self, x: torch.Tensor, mask: TimeMask | None = None) -> torch.Tensor:
        # ``mask``: active hooks keep padded frames out of every conv and pool (masking.py)
        x = self.relu(self.bn1(self.conv1(x)))
        return self.layer4(self.layer3(self.layer2(self.layer1(x))))

    def forward_head(self, x: torch.Tensor, valid: torch.Tensor | None = None) -> torch.Tensor:
        if valid is None:
            x = torch.flatten(self.avgpool(x), 1)
        else:  # the (4, 1) pool: 4 frequency bands, each averaged over the valid frames
            x = torch.flatten(masked_time_mean(F.adaptive_avg_pool2d(x, (4, x.size(3))), valid), 1)
        if self.dp is not None:
            x = self.dp(x)
        return self.fc(x)


@register_model
def pyresnet50(**kw) -> PyResNet:
    return PyResNet((3, 4, 6, 3), **kw)


@register_model
def pyresnet101(**kw) -> PyResNet:
    return PyResNet((3, 4, 23, 3), **kw)


@register_model
def pyresnet152(**kw) -> PyResNet:
    return PyResNet((3, 8, 36, 3), **kw)
