"""CRNN with attention pooling: a typical open-source SER baseline (stands in for docs/paper.md's
unnamed baselines [23]-[25], which score below plain VGG/ResNet).

Four conv blocks (3x3 conv-BN-ReLU, 2x2 max-pool on the first two, frequency-only pooling on
the last two: the time axis is downsampled 4x), frequency pooled to 4 rows and folded into
the features, a 2-layer bidirectional LSTM over time, additive attention pooling over the
frames (softmax of ``v^T tanh(W h_t)``), and a linear ``fc``. The LSTM runs in float32 even
under autocast (bf16 recurrences drift and cuDNN's bf16 RNN support varies).
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from lssed.models import register_model
from lssed.models.base import SERModel, init_weights
from lssed.models.masking import TimeMask


class AttentionPool(nn.Module):
    """Additive attention over time: ``(B, T, D) -> (B, D)``."""

    def __init__(self, dim: int, hidden: int = 128) -> None:
        super().__init__()
        self.proj = nn.Linear(dim, hidden)
        self.score = nn.Linear(hidden, 1, bias=False)

    def forward(self, h: torch.Tensor, valid: torch.Tensor | None = None) -> torch.Tensor:
        scores = self.score(torch.tanh(self.proj(h))).squeeze(-1)  # (B, T)
        if valid is not None:  # padded frames get no weight
            keep = torch.arange(h.size(1), device=h.device) < valid.to(h.device)[:, None]
            scores = scores.masked_fill(~keep, float("-inf"))
        weights = torch.softmax(scores, dim=1)
        return torch.bmm(weights.unsqueeze(1).to(h.dtype), h).squeeze(1)


class CRNNAttn(SERModel):
    """CNN front end -> BiLSTM -> attention pooling -> ``fc``."""

    min_size = (16, 4)

    def __init__(self, num_classes: int = 4, channels: Sequence[int] = (32, 64, 128, 128),
                 hidden: int = 128, lstm_layers: int = 2, freq_rows: int = 4, dropout: float = 0.3) -> None:
        super().__init__()
        self.num_classes = num_classes
        pools = ((2, 2), (2, 2), (2, 1), (2, 1))
        blocks: list[nn.Module] = []
        in_c = 1
        for c, p in zip(channels, pools):
            blocks += [nn.Conv2d(in_c, c, 3, padding=1, bias=False), nn.BatchNorm2d(c), nn.ReLU(inplace=True),
                       nn.MaxPool2d(p, p)]
            in_c = c
        self.cnn = nn.Sequential(*blocks)
        self.freq_pool = nn.AdaptiveAvgPool2d((freq_rows, None))
        self.lstm = nn.LSTM(in_c * freq_rows, hidden, num_layers=lstm_layers, batch_first=True,
                            bidirectional=True, dropout=dropout if lstm_layers > 1 else 0.0)
        self.attention = AttentionPool(2 * hidden)
        self.dropout = nn.Dropout(dropout)
        self.num_features = 2 * hidden
        self.fc = nn.Linear(2 * hidden, num_classes)
        init_weights(self)

    def forward_features(self, x: torch.Tensor, mask: TimeMask | None = None) -> torch.Tensor:
        # ``mask``: active hooks keep padded frames out of the convs and pools (masking.py)
        x = self.freq_pool(self.cnn(x))  # (B, C, rows, T')
        x = torch.flatten(x, 1, 2).transpose(1, 2).contiguous()  # (B, T', C*rows)
        with torch.autocast(device_type=x.device.type, enabled=False):
            if mask is None:
                h, _ = self.lstm(x.float())
            else:  # each item's recurrence (both directions) runs over its valid frames only
                valid = mask.valid(x.size(1)).cpu()
                packed = nn.utils.rnn.pack_padded_sequence(x.float(), valid, batch_first=True, enforce_sorted=False)
                h, _ = self.lstm(packed)
                h, _ = nn.utils.rnn.pad_packed_sequence(h, batch_first=True, total_length=x.size(1))
        return h  # (B, T', 2*hidden)

    def feature_frames(self, features: torch.Tensor) -> int:
        return features.size(1)

    def forward_head(self, x: torch.Tensor, valid: torch.Tensor | None = None) -> torch.Tensor:
        return self.fc(self.dropout(self.attention(x, valid)))


@register_model
def crnn_attn(**kw) -> CRNNAttn:
    return CRNNAttn(**kw)
