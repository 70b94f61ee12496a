"""SpecAugment-style masking: bounds, fill value, repeatability, and the loop's use of it."""

from __future__ import annotations

import torch

from lssed.config import load_config
from lssed.train.augment import spec_augment
from lssed.train.stage import default_run_name


def _masked_cells(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return (x != y)[:, 0]


def test_masks_are_bands_and_spans_within_the_widths():
    torch.manual_seed(0)
    x = torch.randn(64, 1, 40, 30) + 5.0
    y = spec_augment(x, freq_bands=6, time_frames=4, masks=2)
    assert y.shape == x.shape and not torch.equal(x, y)
    changed = _masked_cells(x, y)
    for b in range(x.shape[0]):
        fill = x[b].mean()
        assert torch.allclose(y[b][0][changed[b]], fill.expand(int(changed[b].sum())))
        rows = changed[b].all(dim=1)  # whole mel bands masked
        cols = changed[b].all(dim=0)  # whole frames masked
        # every changed cell lies in a masked band or a masked frame
        assert bool((changed[b] == (rows[:, None] | cols[None, :])).all())
        # 2 masks of at most 6 bands / 4 frames each
        assert int(rows.sum()) <= 12 and int(cols.sum()) <= 8
    assert changed.any(dim=2).any(dim=1).float().mean() > 0.5  # most samples got some mask


def test_same_seed_same_masks_and_zero_width_is_identity():
    x = torch.randn(8, 1, 20, 16)
    torch.manual_seed(3)
    a = spec_augment(x, freq_bands=5, time_frames=5)
    torch.manual_seed(3)
    b = spec_augment(x, freq_bands=5, time_frames=5)
    assert torch.equal(a, b)
    assert torch.equal(spec_augment(x, freq_bands=0, time_frames=0), x)


def test_unused_augment_settings_do_not_rename_runs():
    base = load_config(None, [])
    assert default_run_name(base, "resnet18", "abcdef0123") == default_run_name(
        load_config(None, ["train.spec_augment_freq_bands=30"]), "resnet18", "abcdef0123")
    assert default_run_name(base, "resnet18", "abcdef0123") != default_run_name(
        load_config(None, ["train.spec_augment=true"]), "resnet18", "abcdef0123")

