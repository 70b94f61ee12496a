"""SpecAugment-style masking of log-mel training crops (Park et al., Interspeech 2019).

Off in the paper's recipe; ``train.spec_augment=true`` turns it on. Each training sample gets
``masks`` frequency bands of 0..``freq_bands`` mel bands and ``masks`` time spans of
0..``time_frames`` frames replaced by the sample's mean, on whatever device the batch is on.
The random draws come from torch's global generator, which the training loop seeds per epoch
and rank, so a run stays repeatable and resumes exactly.
"""

from __future__ import annotations

import torch


def _spans(batch: int, size: int, width: int, masks: int) -> torch.Tensor:
    """(batch, size) bool: ``masks`` random spans of 0..width positions per sample."""
    out = torch.zeros(batch, size, dtype=torch.bool)
    width = max(0, min(width, size))
    if width == 0:
        return out
    pos = torch.arange(size)
    for _ in range(masks):
        w = torch.randint(0, width + 1, (batch, 1))
        start = (torch.rand(batch, 1) * (size - w + 1)).floor().long()
        out |= (pos >= start) & (pos < start + w)
    return out


def spec_augment(x: torch.Tensor, *, freq_bands: int, time_frames: int, masks: int = 2) -> torch.Tensor:
    """Masked copy of ``x`` (B, C, n_mels, frames); masked cells take each sample's mean."""
    if x.dim() != 4:
        raise ValueError(f"spec_augment expects (batch, channels, mels, frames), got shape {tuple(x.shape)}")
    b, _, m, t = x.shape
    freq = _spans(b, m, freq_bands, masks)[:, None, :, None]
    time = _spans(b, t, time_frames, masks)[:, None, None, :]
    mask = (freq | time).to(x.device)
    fill = x.mean(dim=(1, 2, 3), keepdim=True)
    return torch.where(mask, fill, x)
