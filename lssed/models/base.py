"""Shared pieces of every model: input checks, padding of short inputs, the features/head split."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class SERModel(nn.Module):
    """Base class: ``(B, 1, n_mels, T) -> (B, num_classes)`` logits for any ``T >= 1``.

    Inputs smaller than the network's total stride (``min_size``) are zero-padded on the high-mel
    and late-time side before ``forward_features`` so that no pooling step sees an empty map.
    The classifier is always the child named ``fc`` so it can be replaced for fine-tuning.
    """

    # (n_mels, frames) below which the input is padded; subclasses override
    min_size: tuple[int, int] = (1, 1)
    num_classes: int

    def check_input(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 4 or x.size(1) != 1:
            raise ValueError(
                f"{type(self).__name__} expects log-mel input of shape (batch, 1, n_mels, frames), got "
                f"{tuple(x.shape)}; add the channel axis with x.unsqueeze(1)"
            )
        if x.size(0) < 1 or x.size(2) < 1 or x.size(3) < 1:
            raise ValueError(f"{type(self).__name__}: empty input of shape {tuple(x.shape)}")
        pad_f = max(0, self.min_size[0] - x.size(2))
        pad_t = max(0, self.min_size[1] - x.size(3))
        if pad_f or pad_t:
            x = F.pad(x, (0, pad_t, 0, pad_f))
        return x

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def forward_head(self, x: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(self.check_input(x)))


def init_weights(module: nn.Module) -> None:
    """He init for convs, unit BN, as in torchvision's and PyConv's ResNets."""
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, (nn.BatchNorm2d, nn.BatchNorm1d, nn.GroupNorm)):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
