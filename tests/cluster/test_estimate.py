"""cluster/estimate.py: the time-and-cost arithmetic of cluster/README.md."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

from lssed.config import load_config

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def est():
    spec = importlib.util.spec_from_file_location("lssed_cluster_estimate", REPO / "cluster" / "estimate.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_estimate_arithmetic(est):
    cfg = load_config(REPO / "workflows" / "configs" / "lssed.yaml",
                      ["train.models=[resnet18,vgg16]", "train.seeds=[0,1]", "stages.tune=false",
                       "stages.parallel_runs=2"])
    gflops = {"resnet18": 1.5, "vgg16": 12.0}
    out = est.estimate(cfg, measured={"resnet18": 3000.0}, measured_gpu="H100", gflops=gflops,
                       gpu_node="g5.2xlarge", preprocess_rate=30.0)
    rows = {r["model"]: r for r in out["models"]}
    # the measured model is scaled from H100 to A10G by peak; the other one uses the FLOP model
    assert rows["resnet18"]["train_samples_per_s"] == pytest.approx(3000 * 125 / 989, rel=1e-3)
    mfu = 3 * 1.5e9 * 3000 / 989e12
    assert out["assumptions"]["mfu"] == pytest.approx(mfu, abs=1e-3)
    assert rows["vgg16"]["train_samples_per_s"] == pytest.approx(mfu * 125e12 / (3 * 12e9), rel=1e-2)
    n_train = out["assumptions"]["n_train"]
    assert n_train == pytest.approx(147_025 * 0.7, abs=1)
    sps = rows["vgg16"]["train_samples_per_s"]
    hours = 60 * (n_train / sps + (out["assumptions"]["n_val"] + out["assumptions"]["n_test"] / 60) / (3 * sps)) / 3600
    assert rows["vgg16"]["hours_per_run"] == pytest.approx(hours, rel=1e-2)
    assert out["train_gpu_hours"] == pytest.approx(sum(r["gpu_hours"] for r in out["models"]), abs=0.2)
    assert out["tune_gpu_hours"] == 0
    assert out["preprocess"]["cpu_hours"] == pytest.approx((206 + 25 / 60) / 30, rel=1e-2)
    assert 0 < out["usd_spot"] < out["usd_on_demand"]


def test_reads_the_train_step_benchmark_json(est, tmp_path):
    p = tmp_path / "ts.json"
    p.write_text(json.dumps({"device": "NVIDIA H100 80GB HBM3", "results": [
        {"variant": "pyresnet152:reference", "samples_per_s": 900.0},
        {"variant": "pyresnet152:fast@graph", "samples_per_s": 1200.0},
        {"variant": "vgg16", "samples_per_s": 2000.0},
        {"variant": "broken", "error": "oom"},
    ]}))
    measured, gpu = est.read_throughput(p)
    assert measured == {"pyresnet152": 1200.0, "vgg16": 2000.0} and "H100" in gpu


def test_the_committed_measurements_are_read_by_default(est):
    """cluster/throughput.json: the H200 numbers of docs/performance.md, each with its source."""
    data = json.loads(est.DEFAULT_THROUGHPUT.read_text())
    measured, gpu = est.read_throughput(est.DEFAULT_THROUGHPUT)
    assert gpu == "NVIDIA H200" and measured == {"resnet18": 13021.0, "pyresnet152": 1816.0,
                                                 "resnet152": 2611.0, "vgg16": 5848.0}
    used = {(m["model"], m["samples_per_s"]) for m in data["measurements"] if m["used"]}
    assert used == {(k, int(v)) for k, v in measured.items()}
    assert all("docs/performance.md" in m["source"] for m in data["measurements"])
    perf = (REPO / "docs" / "performance.md").read_text()
    for value in ("13,021", "1,816", "2,611", "5,848", "125.4"):  # still what the doc says
        assert value in perf
    assert est.read_preprocess_rate(est.DEFAULT_THROUGHPUT) == 125.4
    cfg = load_config(REPO / "workflows" / "configs" / "lssed.yaml")
    gflops = {m: 5.0 for m in cfg.train.models}
    out = est.estimate(cfg, measured=measured, measured_gpu="H200", gflops=gflops, gpu_node="p5.48xlarge",
                       preprocess_rate=125.4)
    rows = {r["model"]: r for r in out["models"]}
    assert {m for m, r in rows.items() if r["measured"]} == set(measured)
    assert rows["pyresnet152"]["train_samples_per_s"] == pytest.approx(1816 * 989 / 989, rel=1e-3)
    assert "measured on H200" in rows["pyresnet152"]["how"] and "GFLOPs" in rows["vgg11"]["how"]


def test_readme_table_is_the_estimate_of_the_committed_file(est, capsys):
    """cluster/README.md's per-model table and g5 total are what estimate.py prints today."""
    assert est.main(["--markdown"]) == 0
    printed = capsys.readouterr().out
    readme = (REPO / "cluster" / "README.md").read_text()
    table = [line for line in printed.splitlines() if line.startswith("|")]
    assert len(table) == 2 + len(load_config(REPO / "workflows" / "configs" / "lssed.yaml").train.models)
    for line in table:
        assert line in readme
    total = next(line for line in printed.splitlines() if line.startswith("GPU-hours:"))
    gpu_h = float(total.split("= ")[1].split()[0])
    assert f"| {gpu_h} (train" in readme
    assert "preprocess: 1.65 CPU-h" in printed  # 206.4 h at the measured 125.4 audio-s per CPU-s


def test_a_missing_throughput_file_is_named(est, tmp_path):
    with pytest.raises(SystemExit, match="no-such.json"):
        est.main(["--throughput", str(tmp_path / "no-such.json")])
