"""Padded training crops: ``model(x, lengths)`` gives every item's unpadded output (issue 12, item 8)."""

from __future__ import annotations

import pytest
import torch

from lssed.models import create_model, list_models
from lssed.models.masking import masked_time_mean, out_frames

LOG_FLOOR = -13.8  # what the training collate pads with (log(1e-6))
DEEP = {n for n in list_models() if n.endswith(("101", "152"))}


def _padded(items: list[torch.Tensor], frames: int) -> tuple[torch.Tensor, torch.Tensor]:
    x = torch.full((len(items), 1, items[0].size(2), frames), LOG_FLOOR)
    for i, u in enumerate(items):
        x[i, :, :, : u.size(3)] = u[0]
    return x, torch.tensor([u.size(3) for u in items])


@pytest.mark.parametrize("name", list_models())
def test_padded_item_gives_its_unpadded_output(name):
    torch.manual_seed(0)
    model = create_model(name, num_classes=3).eval()
    # odd and even lengths, one below VGG's 32-frame minimum, one at full length
    lengths = [5, 40] if name in DEEP else [5, 23, 40, 64]
    items = [torch.randn(1, 1, 64, t) for t in lengths]
    x, lens = _padded(items, 64)
    with torch.no_grad():
        alone = torch.cat([model(u) for u in items])
        masked = model(x, lens)
        unmasked = model(x)
    assert torch.allclose(masked, alone, atol=1e-4, rtol=1e-4), (masked - alone).abs().max()
    # without lengths the padding does change the short items' outputs (what the mask fixes)
    assert not torch.allclose(unmasked[0], alone[0], atol=1e-3)


@pytest.mark.parametrize("name", ["resnet18", "pyresnet50", "crnn_attn"])
def test_lengths_train_and_backprop_only_through_valid_frames(name):
    torch.manual_seed(0)
    model = create_model(name, num_classes=3).train()
    x = torch.randn(4, 1, 64, 48, requires_grad=True)
    model(x, torch.tensor([10, 48, 31, 17])).sum().backward()
    assert torch.isfinite(x.grad).all()
    assert x.grad[0, :, :, 10:].abs().sum() == 0 and x.grad[0, :, :, :10].abs().sum() > 0


def test_pyresnet_fast_plan_masks_its_merged_pyramids():
    torch.manual_seed(0)
    ref = create_model("pyresnet50").eval()
    fast = create_model("pyresnet50", impl="fast").eval()
    fast.load_state_dict(ref.state_dict())
    u = torch.randn(1, 1, 128, 37)
    x, lens = _padded([u], 80)
    with torch.no_grad():
        assert torch.allclose(fast(x, lens), ref(u), atol=1e-4, rtol=1e-4)


def test_full_lengths_run_the_plain_network():
    model = create_model("resnet18").eval()
    x = torch.randn(2, 1, 64, 30)
    with torch.no_grad():
        assert torch.equal(model(x, torch.tensor([30, 30])), model(x))
    with pytest.raises(ValueError, match="one frame count per item"):
        model(x, torch.tensor([30]))


def test_helpers():
    assert out_frames(7, torch.nn.Conv2d(1, 1, 3, stride=2, padding=1)) == 4
    assert out_frames(7, torch.nn.MaxPool2d(2, 2)) == 3
    x = torch.tensor([[1.0, 2.0, 3.0, 100.0]])
    assert torch.allclose(masked_time_mean(x, torch.tensor([3])), torch.tensor([2.0]))
