"""Shared pieces of every model: input checks, padding of short inputs, the features/head split,
and the valid-frame ``lengths`` of padded training crops (:mod:`lssed.models.masking`)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from lssed.models.masking import TimeMask, zero_past


class SERModel(nn.Module):
    """Base class: ``(B, 1, n_mels, T) -> (B, num_classes)`` logits for any ``T >= 1``.

    Inputs smaller than the network's total stride (``min_size``) are zero-padded on the high-mel
    and late-time side before ``forward_features`` so that no pooling step sees an empty map.
    The classifier is always the child named ``fc`` so it can be replaced for fine-tuning.

    ``model(x, lengths)``: ``lengths`` (B,) are the valid frames of each item of a padded
    batch; the output is then that of each item alone, unpadded (frames past its length never
    reach a valid output, and the pooling over time averages only valid frames). Subclasses
    implement ``forward_features(x, mask=None)`` and ``forward_head(features, valid=None)``,
    ``valid`` being the (B,) valid frames of the feature map (None: all).
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

    def forward_features(self, x: torch.Tensor, mask: TimeMask | None = None) -> torch.Tensor:  # pragma: no cover
        raise NotImplementedError

    def forward_head(self, x: torch.Tensor, valid: torch.Tensor | None = None) -> torch.Tensor:  # pragma: no cover
        raise NotImplementedError

    def valid_input_frames(self, x: torch.Tensor, lengths: torch.Tensor | None) -> torch.Tensor | None:
        """(B,) valid frames of the (checked) input ``x``; None when no item is padded.

        An item shorter than ``min_size`` is, alone, zero-padded to it by :meth:`check_input`;
        so is it here (its frames past ``lengths`` are zeroed in :meth:`forward`).
        """
        if lengths is None:
            return None
        lengths = torch.as_tensor(lengths)
        if lengths.shape != (x.size(0),):
            raise ValueError(f"lengths must hold one frame count per item: shape ({x.size(0)},), "
                             f"got {tuple(lengths.shape)}")
        frames = x.size(3)
        # checked on the host when the collate's lengths are CPU tensors: no device sync. Lengths
        # already on an accelerator (a CUDA-graphed step's static buffer: lssed/models/fast.py) always
        # take the masked path, which equals the plain one when nothing is padded: a check would sync
        if lengths.device.type == "cpu" and bool((lengths >= frames).all()):
            return None
        return lengths.clamp(min=min(self.min_size[1], frames), max=frames).to(x.device)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        x = self.check_input(x)
        valid = self.valid_input_frames(x, lengths)
        if valid is None:
            return self.forward_head(self.forward_features(x))
        # what an item alone would have past its frames: check_input's (or "same" conv) zeros
        x = zero_past(x, torch.as_tensor(lengths).to(x.device).clamp(max=x.size(3)))
        with TimeMask(self, valid, x.size(3)) as mask:
            features = self.forward_features(x, mask)
            return self.forward_head(features, mask.valid(self.feature_frames(features)))

    def feature_frames(self, features: torch.Tensor) -> int:
        """The time length of ``forward_features``' output (its last axis unless overridden)."""
        return features.size(-1)


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
