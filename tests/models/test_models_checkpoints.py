"""Checkpoint import: state_dicts, the authors' whole-pickled-module format (needs trust),
clear errors for the wrong architecture or number of classes, and the CLI."""

from __future__ import annotations

import sys
import types

import pytest
import torch
from torch import nn

from lssed.cli import main as cli_main
from lssed.models import create_model
from lssed.models.checkpoints import (CheckpointError, CheckpointMismatch, import_checkpoint, load_into,
                                      read_state_dict)
from lssed.models.pyresnet import PyConv, PyConvBlock, PyResNet
from lssed.models.stats import model_stats


def _eval_out(model, seed=0):
    torch.manual_seed(seed)
    with torch.no_grad():
        return model.eval()(torch.randn(2, 1, 64, 20))


def test_state_dict_import_round_trip(tmp_path):
    model = create_model("resnet18", num_classes=5)
    src = tmp_path / "sd.pt"
    torch.save({"state_dict": {f"module.{k}": v for k, v in model.state_dict().items()}, "epoch": 3}, src)
    res = import_checkpoint(src, tmp_path / "out" / "state.pt")
    assert (res.model, res.num_classes, res.source_format) == ("resnet18", 5, "state_dict")
    assert res.num_tensors == len(model.state_dict())
    state = torch.load(res.out, weights_only=True)
    assert set(state) == set(model.state_dict())
    again = create_model("resnet18", num_classes=5, checkpoint=res.out)
    assert torch.equal(_eval_out(again), _eval_out(model))


def test_wrong_classes_and_architecture_name_the_tensors(tmp_path):
    src = tmp_path / "r18.pt"
    torch.save(create_model("resnet18").state_dict(), src)
    with pytest.raises(CheckpointMismatch, match=r"fc\.weight: checkpoint \(4, 512\) vs model \(7, 512\).*classes"):
        import_checkpoint(src, tmp_path / "x.pt", model="resnet18", num_classes=7)
    with pytest.raises(CheckpointMismatch, match=r"resnet34.*missing from the checkpoint: layer1\.2\.conv1\.weight"):
        import_checkpoint(src, tmp_path / "x.pt", model="resnet34")
    with pytest.raises(CheckpointMismatch, match="fc.weight"):
        load_into(create_model("resnet18", num_classes=2), src)
    assert not (tmp_path / "x.pt").exists()


def test_not_a_checkpoint(tmp_path):
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a torch file")
    with pytest.raises(CheckpointError, match="not a readable PyTorch checkpoint"):
        read_state_dict(bad)
    torch.save([1, 2, 3], tmp_path / "list.pt")
    with pytest.raises(CheckpointError, match="not a state_dict"):
        read_state_dict(tmp_path / "list.pt")


@pytest.fixture()
def authors_pickle(tmp_path):
    """A whole pickled PyResNet-50 whose classes live in a module ``pyconvresnet`` that is not
    installed at load time: the format of the LSSED authors' release."""
    fake = types.ModuleType("pyconvresnet")
    names = {PyResNet: "PyConvResNet", PyConvBlock: "PyConvBlock"}
    classes = {}
    for cls_name in ("PyConvResNet", "PyConvBlock", "PyConv4", "PyConv3", "PyConv2"):
        classes[cls_name] = type(cls_name, (nn.Module,), {"__module__": "pyconvresnet", "forward": None})
        setattr(fake, cls_name, classes[cls_name])
    torch.manual_seed(1)
    model = create_model("pyresnet50")
    reference = _eval_out(model)
    state = {k: v.clone() for k, v in model.state_dict().items()}
    for m in model.modules():
        if type(m) in names:
            m.__class__ = classes[names[type(m)]]
        elif isinstance(m, PyConv):
            m.__class__ = classes[f"PyConv{len(m.kernels)}"]
    path = tmp_path / "pyconvresnet50_lssed.pth"
    sys.modules["pyconvresnet"] = fake
    try:
        torch.save(model, path)
    finally:
        del sys.modules["pyconvresnet"]
    return path, state, reference


def test_pickled_module_needs_trust(authors_pickle, tmp_path):
    path, _, _ = authors_pickle
    with pytest.raises(CheckpointError, match="--trust-pickle.*|runs code"):
        import_checkpoint(path, tmp_path / "s.pt")
    with pytest.raises(CheckpointError, match="runs code from the file"):
        read_state_dict(path)
    assert not (tmp_path / "s.pt").exists()


def test_pickled_module_imports_with_trust(authors_pickle, tmp_path):
    path, state, reference = authors_pickle
    res = import_checkpoint(path, tmp_path / "s.pt", trust_pickle=True)
    assert (res.model, res.num_classes, res.source_format) == ("pyresnet50", 4, "pickled-module")
    loaded = torch.load(res.out, weights_only=True)
    assert set(loaded) == set(state) and all(torch.equal(loaded[k], state[k]) for k in state)
    model = create_model("pyresnet50", checkpoint=res.out)
    assert torch.equal(_eval_out(model), reference)
    fast = create_model("pyresnet50", impl="fast", checkpoint=res.out)
    assert torch.allclose(_eval_out(fast), reference, atol=1e-3 * reference.abs().max().item())


def test_cli_import_and_list(authors_pickle, tmp_path, capsys):
    path, _, _ = authors_pickle
    out = tmp_path / "cli.pt"
    assert cli_main(["models", "import", str(path), "--out", str(out)]) == 2
    assert not out.exists()
    assert cli_main(["models", "import", str(path), "--out", str(out), "--model", "pyresnet50",
                     "--trust-pickle"]) == 0
    assert out.exists() and "pyresnet50 (4 classes" in capsys.readouterr().out
    assert cli_main(["models"]) == 0
    listed = capsys.readouterr().out.split()
    assert "pyresnet152" in listed and "crnn_attn" in listed


def test_model_stats_counts_params_and_flops():
    s = model_stats("resnet18")
    assert s.params == sum(p.numel() for p in create_model("resnet18").parameters())
    # ResNet-18 at 128x160 on 1 channel: about 1.4 GFLOPs (multiply-add = 2)
    assert 1.0 < s.gflops < 2.0
