"""PyResNet matches the LSSED authors' released PyConvResNet (names, shapes, layout), and the
fast implementation computes the same function from the same state_dict."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from lssed.models import create_model
from lssed.models.pyresnet import PYRAMID_MODES, block_diagonal, embed_kernel

# Written down from our reading of tobefans/LSSED pyconvresnet.py (derived from
# iduta/pyconvresnet): per stage (kernels, groups, output channels as a fraction of planes).
AUTHORS_PYRAMIDS = [
    ([3, 5, 7, 9], [1, 4, 8, 16], [4, 4, 4, 4]),  # PyConv4: planes//4 each
    ([3, 5, 7], [1, 4, 8], [4, 4, 2]),  # PyConv3: planes//4, planes//4, planes//2
    ([3, 5], [1, 4], [2, 2]),  # PyConv2: planes//2 each
    ([3], [1], [1]),  # a plain conv named conv2
]


def authors_shapes(layers, num_classes=4):
    """name -> shape of the authors' PyConvResNet state_dict."""
    shapes = {}

    def bn(prefix, c):
        shapes.update({f"{prefix}.weight": (c,), f"{prefix}.bias": (c,), f"{prefix}.running_mean": (c,),
                       f"{prefix}.running_var": (c,), f"{prefix}.num_batches_tracked": ()})

    shapes["conv1.weight"] = (64, 1, 7, 7)  # 1-channel 7x7 stem, no max-pool
    bn("bn1", 64)
    inplanes = 64
    for stage, (planes, blocks) in enumerate(zip((64, 128, 256, 512), layers)):
        kernels, groups, divisors = AUTHORS_PYRAMIDS[stage]
        for b in range(blocks):
            p = f"layer{stage + 1}.{b}"
            shapes[f"{p}.conv1.weight"] = (planes, inplanes, 1, 1)
            bn(f"{p}.bn1", planes)
            if len(kernels) == 1:
                shapes[f"{p}.conv2.weight"] = (planes, planes, 3, 3)
            else:
                for i, (k, g, d) in enumerate(zip(kernels, groups, divisors), start=1):
                    shapes[f"{p}.conv2.conv2_{i}.weight"] = (planes // d, planes // g, k, k)
            bn(f"{p}.bn2", planes)
            shapes[f"{p}.conv3.weight"] = (planes * 4, planes, 1, 1)
            bn(f"{p}.bn3", planes * 4)
            if b == 0:  # stride 2 and a width change at every stage: MaxPool, conv1x1, BN
                shapes[f"{p}.downsample.1.weight"] = (planes * 4, inplanes, 1, 1)
                bn(f"{p}.downsample.2", planes * 4)
            inplanes = planes * 4
    shapes["fc.weight"] = (num_classes, 512 * 4 * 4)
    shapes["fc.bias"] = (num_classes,)
    return shapes


@pytest.mark.parametrize("name,layers", [("pyresnet50", (3, 4, 6, 3)), ("pyresnet101", (3, 4, 23, 3)),
                                         ("pyresnet152", (3, 8, 36, 3))])
def test_state_dict_names_and_shapes_equal_the_authors(name, layers):
    with torch.device("meta"):
        model = create_model(name)
    ours = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    expected = authors_shapes(layers)
    assert list(ours) == list(expected)  # same names, same order
    assert ours == expected
    assert ours["layer1.0.conv2.conv2_1.weight"] == (16, 64, 3, 3)
    assert ours["fc.weight"] == (4, 8192)


def test_authors_state_dict_loads_strict_and_gives_the_same_outputs():
    torch.manual_seed(0)
    state = {k: (torch.randn(s) * 0.05 if len(s) else torch.tensor(7)) for k, s in authors_shapes((3, 4, 6, 3)).items()}
    for k in state:
        if k.endswith("running_var"):
            state[k] = state[k].abs() + 1.0
        if k.endswith(".weight") and ".bn" in k or k.endswith("downsample.2.weight") or k == "bn1.weight":
            state[k] = 1.0 + state[k]
    model = create_model("pyresnet50")
    model.load_state_dict(state, strict=True)
    model.eval()
    x = torch.randn(2, 1, 128, 40)
    with torch.no_grad():
        y = model(x)
    assert y.shape == (2, 4) and torch.isfinite(y).all()
    assert torch.equal(model.state_dict()["layer1.0.conv2.conv2_4.weight"], state["layer1.0.conv2.conv2_4.weight"])


def test_layout_follows_the_paper():
    model = create_model("pyresnet50")
    assert not any(isinstance(m, nn.MaxPool2d) for m in [model.conv1, model.bn1, model.relu])
    assert not hasattr(model, "maxpool")  # no stem max-pool
    ds = model.layer1[0].downsample
    assert isinstance(ds[0], nn.MaxPool2d) and ds[0].kernel_size == 3 and ds[0].stride == 2 and ds[0].padding == 1
    assert isinstance(ds[1], nn.Conv2d) and ds[1].kernel_size == (1, 1) and ds[1].stride == (1, 1)
    assert isinstance(ds[2], nn.BatchNorm2d)
    for i in range(1, 5):
        first = getattr(model, f"layer{i}")[0]
        conv2 = first.conv2 if isinstance(first.conv2, nn.Conv2d) else first.conv2.conv2_1
        assert conv2.stride == (2, 2), "every stage starts with stride 2"
    levels = model.layer1[0].conv2
    assert [c.kernel_size[0] for c in levels.levels()] == [3, 5, 7, 9]
    assert [c.groups for c in levels.levels()] == [1, 4, 8, 16]
    assert model.avgpool.output_size == (4, 1)
    assert model.fc.in_features == 8192


def test_block_diagonal_and_embedding_are_the_same_function():
    torch.manual_seed(0)
    x = torch.randn(2, 16, 9, 11)
    w = torch.randn(8, 4, 5, 5)  # groups=4
    ref = torch.nn.functional.conv2d(x, w, padding=2, groups=4)
    dense = torch.nn.functional.conv2d(x, block_diagonal(w, 4), padding=2)
    big = torch.nn.functional.conv2d(x, embed_kernel(block_diagonal(w, 4), 9), padding=4)
    assert torch.allclose(ref, dense, atol=1e-5) and torch.allclose(ref, big, atol=1e-5)


@pytest.mark.parametrize("mode", [m for m in PYRAMID_MODES if m != "grouped"])
def test_fast_equals_reference(mode):
    """Same function, same gradients: exact in float64; in float32 within rounding (a deep
    random-init network amplifies rounding differences, so gradients are compared in float64)."""
    torch.manual_seed(0)
    ref = create_model("pyresnet50")
    fast = create_model("pyresnet50", impl="fast", plan=(mode,) * 4)
    fast.load_state_dict(ref.state_dict(), strict=True)
    x = torch.randn(2, 1, 128, 24)
    # train mode (batch statistics) keeps a random-init network's activations in range
    ref.train(), fast.train()
    with torch.no_grad():
        y32 = ref(x)
        assert torch.allclose(y32, fast(x.contiguous(memory_format=torch.channels_last)),
                              atol=1e-3 * y32.abs().max().item())
    ref.double(), fast.double()
    y_ref, y_fast = ref(x.double()), fast(x.double().contiguous(memory_format=torch.channels_last))
    assert torch.allclose(y_ref, y_fast, atol=1e-9, rtol=1e-9)
    y_ref.sum().backward()
    y_fast.sum().backward()
    for name in ("layer1.0.conv2.conv2_4.weight", "layer2.1.conv2.conv2_3.weight", "layer3.0.conv2.conv2_2.weight",
                 "conv1.weight"):
        g_ref = ref.get_parameter(name).grad
        g_fast = fast.get_parameter(name).grad
        assert torch.allclose(g_ref, g_fast, atol=1e-9 * g_ref.abs().max().item(), rtol=1e-7), name


def test_default_fast_plan_and_bad_options():
    fast = create_model("pyresnet50", impl="fast")
    assert fast.plan != ("grouped",) * 4
    with pytest.raises(ValueError, match="impl"):
        create_model("pyresnet50", impl="turbo")
    with pytest.raises(ValueError, match="plan"):
        create_model("pyresnet50", impl="fast", plan=("merged",))
