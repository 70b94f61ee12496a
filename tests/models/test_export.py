"""`lssed models export`: ONNX and TorchScript graphs with probabilities out, a dynamic batch and
time axis, and the metadata to use them embedded (issue 14 item 2). No Ray.

Parity is against the torch model itself (softmax of its logits), fp32, max |diff| <= 1e-4, on
several lengths and batch sizes; small inputs (64 mel bands) keep it fast.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from lssed.cli import main as cli_main
from lssed.labels import BENCHMARK_CLASSES
from lssed.models import create_model
from lssed.report.modelcard import export_card_path
from lssed.models.export import (build_metadata, export_with_card, load_exported, min_frames,
                                 model_from_checkpoint, read_metadata)

N_MELS = 64
# (batch, frames): one below VGG's 32-frame minimum (padded on the host, as torch pads it itself)
SHAPES = [(1, 9), (1, 40), (3, 67), (2, 131)]


def _model(name: str) -> torch.nn.Module:
    torch.manual_seed(7)
    net = create_model(name, num_classes=4).eval()
    with torch.no_grad():  # non-trivial BN statistics, so eval-mode normalisation is exercised
        for mod in net.modules():
            if isinstance(mod, torch.nn.BatchNorm2d):
                mod.running_mean.uniform_(-0.2, 0.2)
                mod.running_var.uniform_(0.5, 1.5)
    return net


def _meta(net: torch.nn.Module, name: str) -> dict:
    return build_metadata(model=name, class_names=BENCHMARK_CLASSES, features={"sample_rate": 16000, "n_mels": N_MELS},
                          preprocess={"denoise": "none", "gain": 1.0}, min_input_frames=min_frames(net))


@pytest.mark.parametrize("fmt", ["onnx", "torchscript"])
@pytest.mark.parametrize("name", ["resnet18", "pyresnet50", "vgg11", "crnn_attn"])
def test_exported_probabilities_match_torch(tmp_path, name, fmt):
    torch.set_num_threads(1)
    net = _model(name)
    res = export_with_card(net, _meta(net, name), fmt, tmp_path / f"{name}.{fmt}")
    exported = load_exported(res.out, threads=1)
    assert exported.format == fmt
    gen = torch.Generator().manual_seed(1)
    for batch, frames in SHAPES:
        x = torch.randn(batch, 1, N_MELS, frames, generator=gen) * 3 - 5  # log-mel-like range
        with torch.no_grad():
            ref = torch.softmax(net(x), dim=1).numpy()
        got = exported(x.numpy())
        assert got.shape == (batch, 4)
        assert np.abs(got - ref).max() <= 1e-4, (name, fmt, batch, frames)
        assert np.allclose(got.sum(axis=1), 1.0, atol=1e-5)  # the softmax is inside the graph


def test_onnx_graph_has_dynamic_batch_and_time(tmp_path):
    import onnx

    net = _model("resnet18")
    out = export_with_card(net, _meta(net, "resnet18"), "onnx", tmp_path / "m.onnx").out
    dims = onnx.load(str(out)).graph.input[0].type.tensor_type.shape.dim
    assert [d.dim_param or d.dim_value for d in dims] == ["batch", 1, N_MELS, "frames"]


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    from lssed.models.checkpoints import import_checkpoint

    d = tmp_path_factory.mktemp("ckpt")
    torch.save(_model("resnet18").state_dict(), d / "raw.pt")
    return str(import_checkpoint(d / "raw.pt", d / "resnet18.pt", model="resnet18").out)


@pytest.mark.parametrize("fmt", ["onnx", "torchscript"])
def test_metadata_round_trip(tmp_path, checkpoint, fmt):
    features = {"sample_rate": 16000, "n_fft": 1024, "win_length": 1024, "hop_length": 512, "n_mels": N_MELS,
                "f_min": 0.0, "f_max": None, "log": "log", "log_offset": 1e-6}
    preprocess = {"sample_rate": 16000, "denoise": "noisereduce", "gain": 2.0}
    net, meta = model_from_checkpoint(checkpoint, features=features, preprocess=preprocess)
    res = export_with_card(net, meta, fmt, tmp_path / f"m.{fmt}")
    back = read_metadata(res.out)
    assert back == json.loads(json.dumps(meta))
    assert back["class_names"] == ["angry", "neutral", "happy", "sad"]  # the authors' order by default
    assert back["model"] == "resnet18" and back["sample_rate"] == 16000
    assert back["features"] == features and back["preprocess"] == preprocess
    assert back["settings_from"] == "user" and back["metrics"] == {}
    loaded = load_exported(res.out)
    assert loaded.class_names == tuple(BENCHMARK_CLASSES) and loaded.features["hop_length"] == 512
    card = export_card_path(res.out)
    assert card == tmp_path / f"m.{fmt}.MODEL_CARD.md" and card.is_file()
    text = card.read_text()
    assert "No metrics are recorded" in text and "Data licence" in text and "(stated by the user at export)" in text


def test_cli_exports_a_checkpoint_with_stated_settings(tmp_path, checkpoint):
    out = tmp_path / "m.onnx"
    assert cli_main(["models", "export", checkpoint, "--format", "onnx", "--out", str(out), "--model", "resnet18",
                     "--set", f"features.n_mels={N_MELS}", "--set", "preprocess.gain=1.5"]) == 0
    meta = read_metadata(out)
    assert meta["features"]["n_mels"] == N_MELS and meta["preprocess"]["gain"] == 1.5
    assert load_exported(out)(np.zeros((2, 1, N_MELS, 50), np.float32)).shape == (2, 4)
    assert export_card_path(out).is_file()


@pytest.mark.parametrize("argv", [
    ["--format", "onnx"],  # no --out
    ["--out", "X"],  # no --format
    ["--format", "onnx", "--out", "X", "--model", "nosuchmodel"],
    ["--format", "onnx", "--out", "X", "--model", "vgg11"],  # the checkpoint is a resnet18
    ["--format", "onnx", "--out", "X", "--class-names", "a,b,c"],  # 3 names for 4 outputs
])
def test_cli_export_user_errors_exit_2(tmp_path, checkpoint, argv):
    argv = [a.replace("X", str(tmp_path / "m.onnx")) for a in argv]
    assert cli_main(["models", "export", checkpoint, *argv]) == 2
    assert not (tmp_path / "m.onnx").exists()


def test_cli_export_of_a_missing_run_exits_2(tmp_path):
    run = tmp_path / "runs" / "nothing-here"
    run.mkdir(parents=True)
    assert cli_main(["models", "export", str(run), "--format", "torchscript", "--out", str(tmp_path / "m.pt")]) == 2
    assert cli_main(["models", "export", str(tmp_path / "absent"), "--format", "onnx",
                     "--out", str(tmp_path / "m.onnx")]) == 2
