"""Every registered model honours the zoo's contract (parametrised over the registry)."""

from __future__ import annotations

import pytest
import torch

from lssed.models import create_model, list_models

DEEP = {n for n in list_models() if n.endswith(("101", "152"))}
EXPECTED = {
    "vgg11", "vgg13", "vgg16", "vgg19", "resnet18", "resnet34", "resnet50", "resnet101", "resnet152",
    "pyresnet50", "pyresnet101", "pyresnet152", "mts_resnet152", "crnn_attn",
}


def test_registry_lists_the_paper_zoo():
    names = list_models()
    assert EXPECTED <= set(names)
    assert names == sorted(names)


def test_unknown_model_and_bad_classes_fail_clearly():
    with pytest.raises(ValueError, match="unknown model 'resnet19'.*resnet18"):
        create_model("resnet19")
    with pytest.raises(ValueError, match="num_classes"):
        create_model("resnet18", num_classes=0)


def test_wrong_input_shape_says_how_to_fix():
    model = create_model("resnet18")
    with pytest.raises(ValueError, match="unsqueeze"):
        model(torch.randn(2, 64, 17))


@pytest.mark.parametrize("name", list_models())
def test_model_contract(name):
    """Forward+backward at two lengths (one shorter than any stride), num_classes, finite
    outputs, features/head split, eval determinism, state_dict round trip, channels_last."""
    torch.manual_seed(0)
    model = create_model(name, num_classes=3)
    assert isinstance(model.fc, torch.nn.Linear) and model.fc.out_features == 3
    model.train()
    shapes = [(1, 1, 64, 3)] if name in DEEP else [(2, 1, 64, 17), (1, 1, 64, 3)]
    if name in DEEP:
        shapes = [(2, 1, 64, 5), (1, 1, 64, 1)]
    for shape in shapes:
        model.zero_grad(set_to_none=True)
        out = model(torch.randn(*shape))
        assert out.shape == (shape[0], 3)
        assert torch.isfinite(out).all()
        out.square().sum().backward()
        assert model.fc.weight.grad is not None and torch.isfinite(model.fc.weight.grad).all()
        assert model.fc.weight.grad.abs().sum() > 0
    if name in DEEP:
        return  # the remaining checks are the same code as the shallower family members
    model.eval()
    x = torch.randn(2, 1, 64, 17)
    with torch.no_grad():
        a, b = model(x), model(x)
        assert torch.equal(a, b), "eval mode must be deterministic"
        assert torch.allclose(model.forward_head(model.forward_features(model.check_input(x))), a)
        fresh = create_model(name, num_classes=3)
        fresh.load_state_dict(model.state_dict(), strict=True)
        assert torch.equal(fresh.eval()(x), a), "state_dict round trip changes the outputs"
        cl = model.to(memory_format=torch.channels_last)(x.to(memory_format=torch.channels_last))
        assert torch.allclose(cl, a, atol=1e-4, rtol=1e-4)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            low = model(x)
        assert torch.isfinite(low.float()).all() and low.shape == (2, 3)


def test_models_accept_128_mels_and_odd_lengths():
    model = create_model("pyresnet50").eval()
    with torch.no_grad():
        for t in (1, 31, 33):
            assert model(torch.randn(1, 1, 128, t)).shape == (1, 4)
