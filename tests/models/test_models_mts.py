"""MTS convolution: three time scales of one kernel, max-merged, no extra parameters."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from lssed.models import create_model
from lssed.models.mts import MTSConv2d, scaled_length


def test_scaled_lengths_are_odd_and_documented():
    assert [scaled_length(3, s) for s in (0.5, 1.0, 2.0)] == [1, 3, 7]
    assert [scaled_length(7, s) for s in (0.5, 1.0, 2.0)] == [3, 7, 15]


def test_mts_adds_no_parameters():
    with torch.device("meta"):
        mts, plain = create_model("mts_resnet152"), create_model("resnet152")
    assert {k: v.shape for k, v in mts.state_dict().items()} == {k: v.shape for k, v in plain.state_dict().items()}


def test_mts_conv_is_the_max_over_time_scales():
    torch.manual_seed(0)
    conv = MTSConv2d(3, 4, 3, stride=2, padding=1, bias=False)
    x = torch.randn(2, 3, 10, 13)
    branches = []
    for k in (1, 3, 7):
        w = conv.weight if k == 3 else F.interpolate(conv.weight, size=(3, k), mode="bilinear", align_corners=False) * (3 / k)
        branches.append(F.conv2d(x, w, stride=2, padding=(1, k // 2)))
    expected = torch.stack(branches).amax(0)
    out = conv(x)
    assert out.shape == F.conv2d(x, conv.weight, stride=2, padding=1).shape
    assert torch.allclose(out, expected, atol=1e-6)
    out.sum().backward()  # gradients of every branch reach the one shared kernel
    assert conv.weight.grad is not None and conv.weight.grad.abs().sum() > 0


def test_single_scale_is_a_plain_conv():
    torch.manual_seed(0)
    conv = MTSConv2d(2, 3, 3, padding=1, scales=(1.0,))
    x = torch.randn(1, 2, 8, 8)
    assert torch.allclose(conv(x), F.conv2d(x, conv.weight, conv.bias, padding=1))
