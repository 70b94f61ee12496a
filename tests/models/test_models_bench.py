"""benchmarks/train_step.py runs on CPU with tiny sizes and writes its JSON (CI smoke test);
the CUDA-graph training step matches eager training where a GPU exists."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
import torch

from lssed.models import create_model

ROOT = Path(__file__).resolve().parents[2]


def _load_bench():
    spec = importlib.util.spec_from_file_location("train_step_bench", ROOT / "benchmarks" / "train_step.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_train_step_benchmark_smoke(tmp_path, capsys):
    bench = _load_bench()
    out = tmp_path / "train_step.json"
    rc = bench.main(["--device", "cpu", "--batch", "2", "--steps", "1", "--warmup", "1", "--mels", "64",
                     "--frames", "16", "--variants", "pyresnet50:reference", "pyresnet50:fast", "vgg11",
                     "--out", str(out)])
    assert rc == 0
    data = json.loads(out.read_text())
    assert data["config"]["batch"] == 2 and data["config"]["frames"] == 16
    rows = {r["variant"]: r for r in data["results"]}
    assert set(rows) == {"pyresnet50:reference", "pyresnet50:fast", "vgg11"}
    assert all(r["samples_per_s"] > 0 and r["step_ms"] > 0 for r in rows.values())
    assert rows["pyresnet50:fast"]["plan"] != ["grouped"] * 4
    printed = capsys.readouterr().out
    assert "samples/s" in printed and "vgg11" in printed


def test_train_step_benchmark_rejects_graph_on_cpu(tmp_path):
    bench = _load_bench()
    rc = bench.main(["--device", "cpu", "--batch", "2", "--steps", "1", "--warmup", "0", "--mels", "64",
                     "--frames", "8", "--variants", "resnet18@graph", "--out", str(tmp_path / "x.json")])
    data = json.loads((tmp_path / "x.json").read_text())
    assert rc == 1 and "need --device cuda" in data["results"][0]["error"]


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_graphed_step_matches_eager():
    from lssed.models.fast import GraphedTrainStep

    torch.manual_seed(0)
    models = [create_model("pyresnet50", impl="fast").cuda() for _ in range(2)]
    models[1].load_state_dict(models[0].state_dict())
    x = torch.randn(8, 1, 128, 32, device="cuda")
    y = torch.randint(0, 4, (8,), device="cuda")
    opts = [torch.optim.SGD(m.parameters(), lr=0.01, momentum=0.9) for m in models]
    loss_fn = torch.nn.CrossEntropyLoss()
    graphed = GraphedTrainStep(models[1], opts[1], loss_fn, amp_dtype=None, warmup=1)
    eager_losses, graph_losses = [], []
    for _ in range(3):
        opts[0].zero_grad()
        loss = loss_fn(models[0](x), y)
        loss.backward()
        opts[0].step()
        eager_losses.append(loss.item())
    graph_losses.append(graphed(x, y).item())  # capture (its warm-up step is undone) + the first replay
    graph_losses.append(graphed(x, y).item())
    # two replays == two eager steps (a capture never trains)
    assert abs(graph_losses[-1] - eager_losses[1]) < 1e-2 * max(1.0, abs(eager_losses[1]))
