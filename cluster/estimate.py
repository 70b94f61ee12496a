"""Time-and-cost estimate of the paper-scale run (workflows/configs/lssed.yaml) on AWS.

  .venv/bin/python cluster/estimate.py [--config workflows/configs/lssed.yaml]
      [--throughput cluster/throughput.json | none] [--preprocess-rate AUDIO_S_PER_CPU_S]
      [--gpu-node g5.2xlarge] [--out estimate.json] [--markdown]

The arithmetic (printed with every assumption; see cluster/README.md):
  preprocessing CPU-hours = corpus audio hours / (audio s per CPU-s)
  one run's GPU-seconds   = epochs x (n_train / train samples/s + n_val / eval samples/s)
  total GPU-hours         = sum over models of seeds x one run, + the sweep's trials
  wall-clock              = GPU-hours / GPUs in flight (stages.parallel_runs x train.num_workers)
  cost                    = GPU-hours x node price / GPUs per node (+ CPU nodes and the head)

Train samples/s per model comes from ``--throughput`` (JSON ``{"gpu": "...", "models":
{name: samples_per_s}}``; by default cluster/throughput.json, the H200 measurements of
docs/performance.md with the source of each number; ``--measure`` writes a new one on a GPU)
or, for models without a measurement, from the model's forward GFLOPs (lssed.models.stats) at
an effective TFLOP/s calibrated on the measured models (assumed when there are none). The
file's ``preprocess_audio_s_per_cpu_s`` is the default preprocessing rate. Prices are on-demand list
prices (us-east-1/us-west-2) at the date below; spot is an assumed discount.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

# LSSED (docs/paper.md): 147,025 utterances, 206 h 25 min of speech.
LSSED_UTTERANCES = 147_025
LSSED_HOURS = 206 + 25 / 60
# On-demand $/hour (AWS list prices, us-east-1, checked 2025; verify before spending).
PRICES = {
    "m6i.2xlarge": 0.384,   # head: 8 vCPU
    "c6i.8xlarge": 1.36,    # preprocessing: 32 vCPU
    "g5.2xlarge": 1.212,    # 1x A10G
    "p4d.24xlarge": 21.96,  # 8x A100 40 GB (after the 2025 price cut)
    "p5.48xlarge": 55.04,   # 8x H100 (after the 2025 price cut)
}
GPUS_PER_NODE = {"g5.2xlarge": 1, "p4d.24xlarge": 8, "p5.48xlarge": 8}
# Dense bf16 tensor peak per GPU, TFLOP/s (vendor data sheets).
PEAK_TFLOPS = {"g5.2xlarge": 125.0, "p4d.24xlarge": 312.0, "p5.48xlarge": 989.0, "H100": 989.0,
               "H200": 989.0, "A100": 312.0, "A10G": 125.0}
SPOT_DISCOUNT = 0.6  # assumed: spot ~60% below on-demand for these types (varies by region/day)
# Effective/peak FLOP rate for CNN training with bf16 autocast when nothing is measured:
# published ResNet-50 rates (~2,500 img/s on an A100 at 12.3 GFLOPs per train step) are ~10%.
ASSUMED_MFU = 0.08
# Measured: the demo corpus through the whole chain (decode, noisereduce, gain, log-mel)
# ran at 30.4 s of audio per CPU-second (features _SUCCESS.json stats.audio_s_per_cpu_s,
# 2026-11-26, this 2-core machine under heavy shared load); noisereduce alone is ~163x
# (docs/install.md).
DEFAULT_PREPROCESS_RATE = 30.0  # without a throughput file that gives one
DEFAULT_THROUGHPUT = REPO / "cluster" / "throughput.json"


def model_gflops(models: list[str], n_mels: int, frames: int) -> dict[str, float]:
    from lssed.models.stats import model_stats

    return {m: model_stats(m, (1, 1, n_mels, frames)).gflops for m in models}


def measure(models: list[str], *, batch_size: int, n_mels: int, frames: int, steps: int = 12,
            warmup: int = 4) -> dict[str, float]:
    """Train samples/s per model on this machine's GPU (SGD, bf16 autocast, random data)."""
    import torch

    from lssed.models import create_model

    dev = torch.device("cuda")
    out: dict[str, float] = {}
    for name in models:
        model = create_model(name).to(dev).train()
        opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=1e-3)
        x = torch.randn(batch_size, 1, n_mels, frames, device=dev)
        y = torch.randint(0, 4, (batch_size,), device=dev)
        for i in range(warmup + steps):
            if i == warmup:
                torch.cuda.synchronize()
                t0 = time.perf_counter()
            with torch.autocast("cuda", dtype=torch.bfloat16):
                loss = torch.nn.functional.cross_entropy(model(x), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        torch.cuda.synchronize()
        out[name] = batch_size * steps / (time.perf_counter() - t0)
        print(f"{name:16s} {out[name]:10.1f} samples/s", flush=True)
        del model, opt
        torch.cuda.empty_cache()
    return out


def read_preprocess_rate(path: Path) -> float | None:
    """The file's ``preprocess_audio_s_per_cpu_s`` (audio seconds per CPU-second), if it has one."""
    rate = json.loads(path.read_text()).get("preprocess_audio_s_per_cpu_s")
    return None if rate is None else float(rate)


def read_throughput(path: Path) -> tuple[dict[str, float], str | None]:
    """Ours (``{"gpu", "models": {name: sps}}``) or benchmarks/train_step.py's JSON (best variant per model)."""
    data = json.loads(path.read_text())
    if "models" in data:
        return {k: float(v) for k, v in data["models"].items()}, data.get("gpu")
    best: dict[str, float] = {}
    for row in data.get("results", []):
        if "samples_per_s" in row:
            name = row["variant"].split("@")[0].split(":")[0]
            best[name] = max(best.get(name, 0.0), float(row["samples_per_s"]))
    return best, data.get("device")


def estimate(cfg, *, measured: dict[str, float], measured_gpu: str | None, gflops: dict[str, float],
             gpu_node: str, preprocess_rate: float) -> dict:
    t = cfg.train
    n_test = LSSED_UTTERANCES * cfg.corpus.test_fraction
    n_val = LSSED_UTTERANCES * cfg.corpus.val_fraction
    n_train = LSSED_UTTERANCES - n_test - n_val
    peak = PEAK_TFLOPS[gpu_node]
    # calibrate the FLOP model on measurements (on the measured GPU, scaled by peak ratio)
    mfu, source = ASSUMED_MFU, "assumed"
    if measured and measured_gpu in PEAK_TFLOPS:
        ratios = [3 * gflops[m] * 1e9 * s / (PEAK_TFLOPS[measured_gpu] * 1e12) for m, s in measured.items() if m in gflops]
        if ratios:
            mfu, source = sorted(ratios)[len(ratios) // 2], f"median of {len(ratios)} measured on {measured_gpu}"
    rows = []
    for m in t.models:
        if m in measured and measured_gpu and measured_gpu in PEAK_TFLOPS:
            sps = measured[m] * peak / PEAK_TFLOPS[measured_gpu]  # scale by peak: an assumption
            how = f"measured on {measured_gpu}, scaled by peak"
        else:
            sps = mfu * peak * 1e12 / (3 * gflops[m] * 1e9)
            how = f"{gflops[m]:.2f} GFLOPs at MFU {mfu:.2f} ({source})"
        run_s = t.epochs * (n_train / sps + (n_val + n_test / t.epochs) / (3 * sps))
        rows.append({"model": m, "train_samples_per_s": round(sps, 1), "hours_per_run": round(run_s / 3600, 3),
                     "runs": len(t.seeds), "gpu_hours": round(len(t.seeds) * run_s / 3600, 2),
                     "measured": how.startswith("measured"), "how": how})
    train_gpu_h = sum(r["gpu_hours"] for r in rows)
    # the sweep: trials x epochs of its models (ASHA stops ~half early: count 0.6 of the budget)
    tune_models = list(cfg.tune.models)
    trials = len(tune_models) * len(cfg.tune.windows) * max(1, len(cfg.tune.lrs)) * cfg.tune.num_samples
    tune_epochs = cfg.tune.epochs or t.epochs
    mean_run_h = {r["model"]: r["hours_per_run"] / t.epochs for r in rows}
    tune_gpu_h = 0.6 * sum(mean_run_h.get(m, 0.0) * tune_epochs for m in tune_models) * trials / max(1, len(tune_models)) if cfg.stages.tune else 0.0
    gpus_in_flight = max(1, cfg.stages.parallel_runs * t.num_workers)
    gpu_h = train_gpu_h + tune_gpu_h
    wall_h = gpu_h / gpus_in_flight
    node_gpu = GPUS_PER_NODE[gpu_node]
    gpu_cost = gpu_h / node_gpu * PRICES[gpu_node]
    pre_cpu_h = LSSED_HOURS * 3600 / preprocess_rate / 3600
    pre_nodes = 4
    pre_wall_h = pre_cpu_h / (pre_nodes * 30)
    pre_cost = pre_wall_h * pre_nodes * PRICES["c6i.8xlarge"]
    head_cost = (wall_h + pre_wall_h) * PRICES["m6i.2xlarge"]
    on_demand = gpu_cost + pre_cost + head_cost
    return {
        "assumptions": {
            "utterances": LSSED_UTTERANCES, "audio_hours": round(LSSED_HOURS, 2), "n_train": round(n_train),
            "n_val": round(n_val), "n_test": round(n_test), "epochs": t.epochs, "seeds": list(t.seeds),
            "crop_frames": t.crop_frames_at(cfg.features.sample_rate, cfg.features.hop_length),
            "gpu_node": gpu_node, "gpus_in_flight": gpus_in_flight,
            "preprocess_audio_s_per_cpu_s": preprocess_rate, "preprocess_nodes": f"{pre_nodes} x c6i.8xlarge (30 actors each)",
            "mfu": round(mfu, 3), "mfu_source": source, "spot_discount": SPOT_DISCOUNT,
            "prices_usd_per_h": PRICES, "eval": "val every epoch + test once, forward only (1/3 of a train step)",
            "tune": f"{trials} trials x {tune_epochs} epochs, ASHA keeps ~60% of the budget",
        },
        "models": rows,
        "preprocess": {"cpu_hours": round(pre_cpu_h, 2), "wall_hours": round(pre_wall_h, 2), "usd": round(pre_cost, 2)},
        "train_gpu_hours": round(train_gpu_h, 1),
        "tune_gpu_hours": round(tune_gpu_h, 1),
        "gpu_hours": round(gpu_h, 1),
        "wall_hours": round(wall_h + pre_wall_h, 1),
        "usd_on_demand": round(on_demand, 0),
        "usd_spot": round(gpu_cost * (1 - SPOT_DISCOUNT) + pre_cost * (1 - SPOT_DISCOUNT) + head_cost, 0),
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", default=str(REPO / "workflows" / "configs" / "lssed.yaml"))
    p.add_argument("--throughput", default=str(DEFAULT_THROUGHPUT),
                   help="JSON of measured train samples/s per model (default: %(default)s; 'none': GFLOPs only)")
    p.add_argument("--measure", metavar="OUT_JSON", help="measure train samples/s on this machine's GPU first")
    p.add_argument("--measure-models", default="resnet18,resnet50,pyresnet50,pyresnet152,vgg16,mts_resnet50,crnn_attn")
    p.add_argument("--gpu-name", help="the measured GPU for --throughput files without one (A10G|A100|H100|H200)")
    p.add_argument("--gpu-node", default="g5.2xlarge", choices=sorted(GPUS_PER_NODE))
    p.add_argument("--preprocess-rate", type=float,
                   help="audio seconds per CPU-second (stats.audio_s_per_cpu_s of a features _SUCCESS.json); "
                        f"default: the throughput file's, else {DEFAULT_PREPROCESS_RATE}")
    p.add_argument("--out", help="write the estimate as JSON")
    p.add_argument("--markdown", action="store_true", help="also print cluster/README.md's per-model table")
    args = p.parse_args(argv)

    from lssed.config import load_config

    cfg = load_config(args.config)
    measured: dict[str, float] = {}
    gpu_name = args.gpu_name
    crop = cfg.train.crop_frames_at(cfg.features.sample_rate, cfg.features.hop_length)  # train.crop_seconds in frames
    if args.measure:
        import torch

        gpu_name = torch.cuda.get_device_name(0)
        measured = measure(args.measure_models.split(","), batch_size=cfg.train.batch_size,
                           n_mels=cfg.features.n_mels, frames=crop)
        Path(args.measure).write_text(json.dumps({"gpu": gpu_name, "batch_size": cfg.train.batch_size,
                                                  "input": [1, cfg.features.n_mels, crop],
                                                  "models": measured}, indent=1))
    elif args.throughput and args.throughput != "none":
        if not Path(args.throughput).is_file():
            raise SystemExit(f"--throughput {args.throughput}: no such file (use 'none' for the GFLOP model alone)")
        measured, found = read_throughput(Path(args.throughput))
        gpu_name = found or gpu_name
    rate = args.preprocess_rate
    if rate is None and args.throughput and args.throughput != "none" and Path(args.throughput).is_file():
        rate = read_preprocess_rate(Path(args.throughput))
    short = next((k for k in ("H200", "H100", "A100", "A10G") if gpu_name and k in gpu_name), None)
    gflops = model_gflops(sorted(set(cfg.train.models) | set(measured)), cfg.features.n_mels, crop)
    est = estimate(cfg, measured=measured, measured_gpu=short, gflops=gflops, gpu_node=args.gpu_node,
                   preprocess_rate=rate or DEFAULT_PREPROCESS_RATE)
    print(f"{'model':16s} {'samples/s':>10s} {'h/run':>7s} {'runs':>4s} {'GPU-h':>7s}  how")
    for r in est["models"]:
        print(f"{r['model']:16s} {r['train_samples_per_s']:10.1f} {r['hours_per_run']:7.2f} {r['runs']:4d} "
              f"{r['gpu_hours']:7.1f}  {r['how']}")
    print(f"preprocess: {est['preprocess']['cpu_hours']} CPU-h, {est['preprocess']['wall_hours']} h wall")
    print(f"GPU-hours: train {est['train_gpu_hours']} + tune {est['tune_gpu_hours']} = {est['gpu_hours']} "
          f"on {args.gpu_node}; wall ~{est['wall_hours']} h with {est['assumptions']['gpus_in_flight']} GPUs in flight")
    print(f"cost: ~${est['usd_on_demand']:.0f} on-demand, ~${est['usd_spot']:.0f} with spot workers")
    if args.markdown:
        print(markdown_table(est))
    if args.out:
        Path(args.out).write_text(json.dumps(est, indent=1))
    return 0


def markdown_table(est: dict) -> str:
    """The per-model table of cluster/README.md (measured rows marked)."""
    lines = ["| model | train samples/s | GPU-h per run | runs | GPU-hours | throughput |", "|---|---:|---:|---:|---:|---|"]
    for r in est["models"]:
        lines.append(f"| {r['model']} | {r['train_samples_per_s']:,.0f} | {r['hours_per_run']:.2f} | {r['runs']} | "
                     f"{r['gpu_hours']:.1f} | {'**' + r['how'] + '**' if r['measured'] else 'derived: ' + r['how']} |")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
