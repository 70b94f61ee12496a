"""VGG-11/13/16/19 with batch norm (Simonyan & Zisserman 2015) for 1-channel log-mel input.

Departure from the ImageNet VGG: the three 4096-wide FC layers after a fixed 7x7 pool are
replaced by global average pooling and one linear ``fc`` (any input length works; the
classifier stays small), as SER adaptations of VGG commonly do. Five 2x2 max-pools: inputs
smaller than 32x32 are zero-padded.
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from lssed.models import register_model
from lssed.models.base import SERModel, init_weights
from lssed.models.masking import TimeMask, masked_time_mean

# torchvision's configurations: numbers are 3x3 conv widths, "M" a 2x2 max-pool
CFGS: dict[str, tuple[int | str, ...]] = {
    "A": (64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"),
    "B": (64, 64, "M", 128, 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"),
    "D": (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"),
    "E": (64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M", 512, 512, 512, 512, "M"),
}


class VGG(SERModel):
    """VGG-BN: ``features`` (conv-BN-ReLU stacks and max-pools) -> global average pool -> ``fc``."""

    min_size = (32, 32)

    def __init__(self, cfg: Sequence[int | str], num_classes: int = 4, dropout: float = 0.5) -> None:
        super().__init__()
        self.num_classes = num_classes
        layers: list[nn.Module] = []
        in_c = 1
        for v in cfg:
            if v == "M":
                layers.append(nn.MaxPool2d(2, 2))
            else:
                layers += [nn.Conv2d(in_c, int(v), 3, padding=1), nn.BatchNorm2d(int(v)), nn.ReLU(inplace=True)]
                in_c = int(v)
        self.features = nn.Sequential(*layers)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.dropout = nn.Dropout(dropout)
        self.num_features = in_c
        self.fc = nn.Linear(in_c, num_classes)
        init_weights(self)

    def forward_features(self, x: torch.Tensor, mask: TimeMask | None = None) -> torch.Tensor:
        # ``mask``: active hooks keep padded frames out of every conv and pool (masking.py)
        return self.features(x)

    def forward_head(self, x: torch.Tensor, valid: torch.Tensor | None = None) -> torch.Tensor:
        pooled = torch.flatten(self.avgpool(x), 1) if valid is None else masked_time_mean(x.mean(dim=2), valid)
        return self.fc(self.dropout(pooled))


@register_model
def vgg11(**kw) -> VGG:
    return VGG(CFGS["A"], **kw)


@register_model
def vgg13(**kw) -> VGG:
    return VGG(CFGS["B"], **kw)


@register_model
def vgg16(**kw) -> VGG:
    return VGG(CFGS["D"], **kw)


@register_model
def vgg19(**kw) -> VGG:
    return VGG(CFGS["E"], **kw)
