"""ResNet-18/34/50/101/152 (He et al. 2016) for 1-channel log-mel input (docs/paper.md, Table 5).

torchvision's layout (stride on the 3x3 conv, "v1.5") with a 1-channel 7x7 stem, global average
pooling and a linear ``fc``. ``conv_layer`` swaps the spatial convs (the MTS variant uses it).
"""

from __future__ import annotations

from typing import Callable, Sequence

import torch
from torch import nn

from lssed.models import register_model
from lssed.models.base import SERModel, init_weights
from lssed.models.masking import TimeMask, masked_time_mean

ConvLayer = Callable[..., nn.Conv2d]


class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample: nn.Module | None = None,
                 conv_layer: ConvLayer = nn.Conv2d) -> None:
        super().__init__()
        self.conv1 = conv_layer(inplanes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = conv_layer(planes, planes, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


class Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample: nn.Module | None = None,
                 conv_layer: ConvLayer = nn.Conv2d) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = conv_layer(planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, planes * 4, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * 4)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + identity)


class ResNet(SERModel):
    """ResNet with a 1-channel stem; ``block`` is ``"basic"`` or ``"bottleneck"``."""

    def __init__(self, layers: Sequence[int], block: str = "bottleneck", num_classes: int = 4,
                 conv_layer: ConvLayer = nn.Conv2d, zero_init_residual: bool = False) -> None:
        super().__init__()
        block_cls = {"basic": BasicBlock, "bottleneck": Bottleneck}[block]
        self.num_classes = num_classes
        self.inplanes = 64
        self.conv1 = conv_layer(1, 64, 7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        self.layer1 = self._make_layer(block_cls, 64, layers[0], 1, conv_layer)
        self.layer2 = self._make_layer(block_cls, 128, layers[1], 2, conv_layer)
        self.layer3 = self._make_layer(block_cls, 256, layers[2], 2, conv_layer)
        self.layer4 = self._make_layer(block_cls, 512, layers[3], 2, conv_layer)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.num_features = 512 * block_cls.expansion
        self.fc = nn.Linear(self.num_features, num_classes)
        init_weights(self)
        if zero_init_residual:
            for m in self.modules():
                if isinstance(m, Bottleneck):
                    nn.init.zeros_(m.bn3.weight)
                elif isinstance(m, BasicBlock):
                    nn.init.zeros_(m.bn2.weight)

    def _make_layer(self, block_cls: type, planes: int, blocks: int, stride: int, conv_layer: ConvLayer) -> nn.Sequential:
        downsample = None
        if stride != 1 or self.inplanes != planes * block_cls.expansion:
            downsample = nn.Sequential(
                nn.Conv2d(self.inplanes, planes * block_cls.expansion, 1, stride=stride, bias=False),
                nn.BatchNorm2d(planes * block_cls.expansion),
            )
        layers = [block_cls(self.inplanes, planes, stride, downsample, conv_layer=conv_layer)]
        self.inplanes = planes * block_cls.expansion
        layers += [block_cls(self.inplanes, planes, conv_layer=conv_layer) for _ in range(1, blocks)]
        return nn.Sequential(*layers)

    def forward_features(self, x: torch.Tensor, mask: TimeMask | None = None) -> torch.Tensor:
        # ``mask``: active hooks keep padded frames out of every conv and pool (masking.py)
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        return self.layer4(self.layer3(self.layer2(self.layer1(x))))

    def forward_head(self, x: torch.Tensor, valid: torch.Tensor | None = None) -> torch.Tensor:
        if valid is None:
            return self.fc(torch.flatten(self.avgpool(x), 1))
        return self.fc(masked_time_mean(x.mean(dim=2), valid))  # (B, C, F, T) -> (B, C)


@register_model
def resnet18(**kw) -> ResNet:
    return ResNet((2, 2, 2, 2), "basic", **kw)


@register_model
def resnet34(**kw) -> ResNet:
    return ResNet((3, 4, 6, 3), "basic", **kw)


@register_model
def resnet50(**kw) -> ResNet:
    return ResNet((3, 4, 6, 3), "bottleneck", **kw)


@register_model
def resnet101(**kw) -> ResNet:
    return ResNet((3, 4, 23, 3), "bottleneck", **kw)


@register_model
def resnet152(**kw) -> ResNet:
    return ResNet((3, 8, 36, 3), "bottleneck", **kw)
