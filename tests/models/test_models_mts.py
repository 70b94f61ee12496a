"""MTS convolution: one kernel at several time scales, max-merged; Guizzo et al.'s training scheme
(separate branch kernels, averaged back after every optimizer step); the backbone's parameters."""

from __future__ import annotations

import inspect

import pytest
import torch
import torch.nn.functional as F

from lssed.models import create_model
from lssed.models.mts import MTSConv2d, scaled_length
from lssed.models.stats import model_stats
from lssed.train.loop import eager_train_step


def interp(w: torch.Tensor, k: int) -> torch.Tensor:
    """Guizzo et al.'s resampling (bilinear, time axis only) with our gain kt/k."""
    return F.interpolate(w, size=(w.shape[2], k), mode="bilinear", align_corners=False) * (w.shape[3] / k)


def test_scaled_lengths_are_odd_and_documented():
    assert [scaled_length(3, s) for s in (0.5, 1.0, 2.0)] == [1, 3, 7]
    assert [scaled_length(7, s) for s in (0.5, 1.0, 2.0)] == [3, 7, 15]


def test_learned_parameters_are_the_backbones():
    with torch.device("meta"):
        mts, plain = create_model("mts_resnet152"), create_model("resnet152")
    assert {k: v.shape for k, v in mts.state_dict().items()} == {k: v.shape for k, v in plain.state_dict().items()}
    # the count `lssed models --table` and results.json report
    assert model_stats("mts_resnet18").params == model_stats("resnet18").params == 11_172_292
    # a plain ResNet's weights load strictly, and give back the same state_dict
    torch.manual_seed(0)
    resnet, mts18 = create_model("resnet18"), create_model("mts_resnet18")
    mts18.load_state_dict(resnet.state_dict(), strict=True)
    assert all(torch.equal(v, resnet.state_dict()[k]) for k, v in mts18.state_dict().items())


@pytest.mark.parametrize("train", [False, True])
def test_mts_conv_is_the_max_over_time_scales(train):
    torch.manual_seed(0)
    conv = MTSConv2d(3, 4, 3, stride=2, padding=1, bias=False).train(train)
    x = torch.randn(2, 3, 10, 13)
    branches = [F.conv2d(x, interp(conv.weight, k), stride=2, padding=(1, k // 2)) for k in (1, 3, 7)]
    expected = torch.stack(branches).amax(0)
    out = conv(x)
    assert out.shape == F.conv2d(x, conv.weight, stride=2, padding=1).shape
    assert torch.allclose(out, expected, atol=1e-6)


def constant_input_responses(conv: MTSConv2d) -> list[float]:
    """Each branch alone on a constant input, at an interior point (no padding seen)."""
    x = torch.ones(1, 1, 9, 40)
    with torch.no_grad():
        return [float(F.conv2d(x, conv.stretched(k), padding=(conv.padding[0], k // 2))[0, 0, 4, 20])
                for k in conv.time_lengths]


def test_constant_input_response_is_kept_for_time_constant_kernels_only():
    """The docstring's claim about the k/k' gain, and its limit."""
    torch.manual_seed(0)
    conv = MTSConv2d(1, 1, 7, padding=3, bias=False)
    assert conv.time_lengths == (3, 7, 15)
    with torch.no_grad():
        conv.weight.copy_(torch.randn(1, 1, 7, 1).expand(1, 1, 7, 7))  # constant along time
    first, *rest = constant_input_responses(conv)
    assert rest == pytest.approx([first] * len(rest), rel=1e-5)
    # the docstring's counterexample: the 1-frame copy of a 3-frame kernel is 3 x its centre tap
    conv = MTSConv2d(1, 1, 3, padding=1, bias=False)
    with torch.no_grad():
        conv.weight.copy_(torch.tensor([1.0, 0.0, 0.0]).expand(1, 1, 3, 3))
    assert conv.time_lengths == (1, 3, 7)
    one, three, _ = constant_input_responses(conv)
    assert three == pytest.approx(3.0) and one == pytest.approx(0.0)


def reference_guizzo_steps(w0, b0, x, target, steps, scales_k, lr=0.1, momentum=0.9, wd=0.01):
    """Guizzo et al.'s scheme written out: one separately optimised kernel (and bias) per branch,
    set from the original before each forward, averaged back (resampled to the original length)
    after each step."""
    kt = w0.shape[3]
    w0, b0 = torch.nn.Parameter(w0.clone()), torch.nn.Parameter(b0.clone())
    branch = {k: (torch.nn.Parameter(interp(w0.detach(), k)), torch.nn.Parameter(b0.detach().clone()))
              for k in scales_k if k != kt}
    opt = torch.optim.SGD([w0, b0, *(p for wb in branch.values() for p in wb)], lr=lr, momentum=momentum,
                          weight_decay=wd)
    for _ in range(steps):
        with torch.no_grad():
            for k, (w, b) in branch.items():
                w.copy_(interp(w0, k))
                b.copy_(b0)
        opt.zero_grad()
        outs = [F.conv2d(x, w0, b0, padding=(1, kt // 2))]
        outs += [F.conv2d(x, w, b, padding=(1, k // 2)) for k, (w, b) in branch.items()]
        (torch.stack(outs).amax(0) * target).sum().backward()
        opt.step()
        with torch.no_grad():
            ws = [w0.clone()] + [F.interpolate(w, size=(w.shape[2], kt), mode="bilinear", align_corners=False)
                                 * (k / kt) for k, (w, _) in branch.items()]
            w0.copy_(torch.stack(ws).mean(0))
            b0.copy_(torch.stack([b0.clone()] + [b for _, b in branch.values()]).mean(0))
    return w0.detach(), b0.detach()


def test_training_follows_guizzos_scheme():
    torch.manual_seed(0)
    conv = MTSConv2d(2, 3, 3, padding=1, bias=True).double().train()
    x, target = torch.randn(4, 2, 6, 11, dtype=torch.float64), torch.randn(4, 3, 6, 11, dtype=torch.float64)
    w_ref, b_ref = reference_guizzo_steps(conv.weight.detach(), conv.bias.detach(), x, target, 3, (1, 3, 7))
    opt = torch.optim.SGD(conv.parameters(), lr=0.1, momentum=0.9, weight_decay=0.01)
    for _ in range(3):
        opt.zero_grad()
        (conv(x) * target).sum().backward()
        assert conv.stretched_7.grad is not None and conv.stretched_1.grad is not None  # branches train apart
        opt.step()
        conv.average_back()
    assert torch.allclose(conv.weight, w_ref, atol=1e-12) and torch.allclose(conv.bias, b_ref, atol=1e-12)
    # after the step every copy restarts from the new kernel
    assert torch.equal(conv.stretched_7, conv.stretched(7)) and torch.equal(conv.stretched_bias_1, conv.bias)


def test_averaging_back_is_the_mean_of_the_resampled_branch_kernels():
    torch.manual_seed(0)
    conv = MTSConv2d(2, 2, 3, padding=1, bias=False)
    with torch.no_grad():
        conv.stretched_1.copy_(torch.randn_like(conv.stretched_1))
        conv.stretched_7.copy_(torch.randn_like(conv.stretched_7))
        expected = (conv.weight + interp(conv.stretched_1, 3) + interp(conv.stretched_7, 3)) / 3
    conv.average_back()
    assert torch.allclose(conv.weight, expected, atol=1e-6)
    frozen = MTSConv2d(2, 2, 3, padding=1, bias=False).requires_grad_(False)
    before = frozen.weight.clone()
    frozen.average_back()  # a frozen kernel is never averaged (no step trained it)
    assert torch.equal(frozen.weight, before)


def test_the_training_step_calls_the_averaging_and_copies_stay_float32():
    torch.manual_seed(0)
    model = create_model("mts_resnet18", num_classes=3).train()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    step = eager_train_step(model, optimizer, torch.nn.CrossEntropyLoss(), torch.device("cpu"), amp=False)
    x, y = torch.randn(2, 1, 32, 16), torch.tensor([0, 2])
    step(x, y)
    # after optimizer.step() the copies hold the stepped branch kernels; after_optimizer_step
    # averaged them back and restarted them from the kernel
    assert torch.equal(model.conv1.stretched_15, model.conv1.stretched(15))
    assert torch.equal(model.layer4[1].conv2.stretched_1, model.layer4[1].conv2.stretched(1))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        model(x).float().sum().backward()
    copy = model.layer2[0].conv1.stretched_7
    assert copy.dtype == torch.float32 and torch.equal(copy, model.layer2[0].conv1.stretched(7))


def test_eval_touches_no_copy_and_gradients_reach_the_kernel():
    torch.manual_seed(0)
    conv = MTSConv2d(2, 3, 3, padding=1, bias=False).eval()
    conv(torch.randn(1, 2, 5, 9)).sum().backward()
    assert torch.count_nonzero(conv.stretched_7) == 0 and conv.stretched_7.grad is None
    assert conv.weight.grad is not None and conv.weight.grad.abs().sum() > 0


@pytest.mark.parametrize("train", [False, True])
def test_any_length_gives_logits(train):
    torch.manual_seed(0)
    model = create_model("mts_resnet18", num_classes=4).train(train)
    for t in (1, 2, 3, 4, 7, 16, 33):
        out = model(torch.randn(2, 1, 40, t))
        assert out.shape == (2, 4) and torch.isfinite(out).all()


def test_padded_frames_do_not_change_the_output():
    model = create_model("mts_resnet18", num_classes=4).eval()
    if "lengths" not in inspect.signature(model.forward).parameters:
        pytest.skip("models take no `lengths` yet")
    torch.manual_seed(0)
    short = torch.randn(1, 1, 40, 11)
    padded = torch.cat([torch.cat([short, torch.full((1, 1, 40, 21), -13.8)], 3), torch.randn(1, 1, 40, 32)])
    with torch.no_grad():
        alone, both = model(short), model(padded, torch.tensor([11, 32]))
    assert torch.allclose(both[0], alone[0], atol=1e-5)


def test_single_scale_is_a_plain_conv():
    torch.manual_seed(0)
    conv = MTSConv2d(2, 3, 3, padding=1, scales=(1.0,))
    x = torch.randn(1, 2, 8, 8)
    assert torch.allclose(conv(x), F.conv2d(x, conv.weight, conv.bias, padding=1))
    assert list(dict(conv.named_parameters())) == ["weight", "bias"]
