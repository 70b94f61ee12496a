"""Training throughput: Ray Data ingest, the Ray Train loop vs a bare loop, the worker function on GPU.

(a) ingest: samples/s that Ray Data delivers to one Ray Train worker from Parquet shards
    (read, filter to the split, crop/pad, collate, to tensor), no model: once from a
    materialized split (what the trainer does for splits up to train.materialize_mb) and once
    read from Parquet every epoch (larger splits);
(b) loop: samples/s of the full Ray Train loop (1 worker) against a bare single-process loop
    over in-memory tensors, same model, batch, threads and device (CPU here);
(c) gpu: samples/s of the per-worker training function (lssed.train.loop.run_training) called
    without Ray through LocalContext (the GPU machine has torch but no Ray).

    python benchmarks/train_ray.py --out bench-train.json             # (a) + (b) on CPU
    python benchmarks/train_ray.py --gpu-only --out gpu.json          # (c): needs only torch + numpy

Prints a table and writes JSON. Shards are the synthetic feature set of lssed.train.synthetic
(its tone "utterances" have realistic lengths and the exact shard layout).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

# The recipe (TrainConfig defaults), written out so that --gpu-only needs neither lssed.config
# (PyYAML) nor Ray.
RECIPE = {"epochs": 2, "batch_size": 256, "eval_batch_size": 64, "lr": 0.01, "momentum": 0.9,
          "weight_decay": 1e-3, "lr_step_epochs": 20, "lr_gamma": 0.1, "crop_frames": 160,
          "class_weighted": False, "seed": 0, "amp": True, "cpus_per_worker": 1}


def _machine() -> dict[str, Any]:
    import torch

    info = {"python": platform.python_version(), "torch": torch.__version__, "cpus": os.cpu_count(),
            "platform": platform.platform()}
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
    return info


# --------------------------------------------------------------------------- (c) GPU, no Ray


def bench_gpu(models: list[str], *, samples: int, batch_size: int, n_mels: int, crop: int, epochs: int,
              wave: bool) -> list[dict[str, Any]]:
    import numpy as np
    import torch

    from lssed.train.local import LocalContext, run_local
    from lssed.train.types import Utterance

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    torch.backends.cudnn.benchmark = True
    g = torch.Generator().manual_seed(0)
    y = torch.randint(0, 4, (samples,), generator=g)
    hop = 512
    rows = []
    for name in models:
        if wave:
            x = torch.randn(samples, (crop - 1) * hop, generator=g) * 0.1
        else:
            x = torch.randn(samples, 1, n_mels, crop, generator=g)
        evals = {s: [Utterance(f"{s}{i}", i % 4, s,
                               (np.random.default_rng(i).standard_normal((crop - 1) * hop) * 0.1).astype(np.float32)
                               if wave else np.random.default_rng(i).standard_normal((n_mels, crop)).astype(np.float32),
                               wave) for i in range(8)] for s in ("val", "test")}
        features = {"sample_rate": 16000, "n_fft": 1024, "win_length": 1024, "hop_length": hop, "n_mels": n_mels,
                    "f_min": 0.0, "f_max": None, "log": "log", "log_offset": 1e-6}
        config = {"model": name, "model_kwargs": {}, "num_classes": 4, "train": {**RECIPE, "epochs": epochs,
                  "batch_size": batch_size}, "features": features, "recompute": wave, "class_counts": [1, 1, 1, 1],
                  "run_name": f"bench-{name}"}
        ctx = _WaveLocalContext((x, y), evals, device=device) if wave else LocalContext((x, y), evals, device=device)
        t0 = time.perf_counter()
        run_local(config, ctx)
        wall = time.perf_counter() - t0
        per_epoch = [r["samples_per_s"] for r in ctx.reports]
        rows.append({"part": "c", "what": f"run_training {name} ({'wave->logmel on device' if wave else 'log-mel'})",
                     "device": str(device), "batch_size": batch_size, "input": [n_mels, crop],
                     "samples_per_epoch": samples, "epochs": epochs,
                     "samples_per_s": per_epoch[-1], "samples_per_s_epochs": per_epoch, "wall_s": wall,
                     "peak_mem_gb": (torch.cuda.max_memory_allocated() / 2**30) if device.type == "cuda" else None})
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats()
    return rows


class _WaveLocalContext:  # LocalContext yielding waveform batches (log-mel on the device)
    def __new__(cls, data, evals, device):
        from lssed.train.local import LocalContext

        class Ctx(LocalContext):
            def train_batches(self, epoch, batch_size):
                for b in super().train_batches(epoch, batch_size):
                    yield {"wave": b["x"], "y": b["y"]}

        return Ctx(data, evals, device=device)


# --------------------------------------------------------------------------- (a), (b) with Ray


def _ingest_worker(config: dict[str, Any]) -> list[dict[str, Any]]:
    import ray.train

    from lssed.train.data import TrainCollate

    sys.path.insert(0, config["bench_dir"])
    from cputree import tree_cpu_s  # the CPU of every process of the local Ray session

    shard = ray.train.get_dataset_shard("train")
    epochs: list[dict[str, Any]] = []
    for epoch in range(1, config["epochs"] + 1):
        collate = TrainCollate(recompute=False, n_mels=config["n_mels"], crop_frames=config["crop"],
                               hop_length=512, pad_value=-13.8, seed=0, epoch=epoch)
        n, t0, cpu0 = 0, time.perf_counter(), tree_cpu_s(config["ray_root_pid"])
        for batch in shard.iter_torch_batches(batch_size=config["batch_size"], collate_fn=collate,
                                              local_shuffle_buffer_size=4 * config["batch_size"],
                                              local_shuffle_seed=epoch, prefetch_batches=config["prefetch"]):
            n += int(batch["y"].numel())
        dt, cpu = time.perf_counter() - t0, tree_cpu_s(config["ray_root_pid"]) - cpu0
        epochs.append({"epoch": epoch, "samples": n, "seconds": dt, "samples_per_s": n / dt, "cpu_s": cpu,
                       "samples_per_cpu_s": n / cpu if cpu > 0 else None})
        ray.train.report(epochs[-1])
    return epochs  # Train V2 runs callbacks in its controller actor: the numbers come back this way


def bench_ingest(features_uri: str, *, batch_size: int, crop: int, n_mels: int, epochs: int,
                 prefetch: int, materialize: bool) -> dict[str, Any]:
    from ray.train import DataConfig, RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer

    from lssed.config import load_config
    from lssed.train.data import describe_features, split_datasets

    cfg = load_config(None, [f"features.n_mels={n_mels}"])
    source = describe_features(cfg, features_uri)
    ds = split_datasets(source, ("train",))
    if materialize:  # what make_trainer does for train splits up to train.materialize_mb
        ds["train"] = ds["train"].materialize()
    opts = DataConfig.default_ingest_options()
    opts.preserve_order = True
    trainer = TorchTrainer(
        _ingest_worker,
        train_loop_config={"epochs": epochs, "batch_size": batch_size, "crop": crop, "n_mels": n_mels,
                           "prefetch": prefetch, "bench_dir": str(Path(__file__).resolve().parent),
                           "ray_root_pid": os.getpid()},
        scaling_config=ScalingConfig(num_workers=1, resources_per_worker={"CPU": 1}),
        run_config=RunConfig(name="ingest", storage_path=tempfile.mkdtemp(prefix="lssed-bench-")),
        datasets=ds,
        dataset_config=DataConfig(datasets_to_split=["train"], execution_options={"train": opts}),
    )
    result = trainer.fit()
    reports = result.return_value  # rank 0's return value
    per_epoch = [r["samples_per_s"] for r in reports]
    best = max(range(1, len(reports)) or range(len(reports)), key=lambda i: per_epoch[i])
    how = "materialized split" if materialize else "read from Parquet every epoch"
    return {"part": "a", "what": f"Ray Data ingest -> 1 worker ({how})", "device": "cpu",
            "batch_size": batch_size, "input": [n_mels, crop], "samples_per_epoch": reports[-1]["samples"] if reports
            else None, "epochs": epochs, "samples_per_s": per_epoch[best], "samples_per_s_epochs": per_epoch,
            # what ingest costs, whatever the machine: samples per CPU-second of all Ray processes
            "samples_per_cpu_s": reports[best]["samples_per_cpu_s"],
            "samples_per_cpu_s_epochs": [r["samples_per_cpu_s"] for r in reports]}


def bench_loop(features_uri: str, out_root: str, *, model: str, batch_size: int, crop: int, n_mels: int,
               epochs: int) -> list[dict[str, Any]]:
    import torch
    from torch import nn

    from lssed.config import load_config
    from lssed.models import create_model
    from lssed.storage import Storage
    from lssed.train.data import collate_logmel_crops, describe_features, shard_tables, silence_value
    from lssed.train.loop import eager_train_step, seed_everything, train_one_epoch
    from lssed.train.outputs import read_results
    from lssed.train.trainer import make_trainer

    overrides = [f"features.n_mels={n_mels}", f"train.epochs={epochs}", f"train.batch_size={batch_size}",
                 f"train.crop_frames={crop}", "train.cpus_per_worker=1", "train.max_failures=0"]
    cfg = load_config(None, overrides)
    out = Storage(out_root)
    trainer = make_trainer(cfg, features_uri, out=out, model=model, run_name=f"bench-{model}")
    t0 = time.perf_counter()
    trainer.fit()
    ray_wall = time.perf_counter() - t0
    res = read_results(out.child("runs", f"bench-{model}"))
    n_train = describe_features(cfg, features_uri).split_counts["train"]
    ray_sps = [h.samples / h.seconds for h in res.history]  # whole epoch incl. validation
    # training steps only, data waits included (what the bare loop measures)
    ray_train_sps = [h.samples / h.train_seconds for h in res.history]

    # bare loop: the same crops as tensors in memory, one process, the same threads
    src = describe_features(cfg, features_uri)
    table = shard_tables(src, "train")
    crops = collate_logmel_crops(table, n_mels=n_mels, crop_frames=crop, seed=0, epoch=1,
                                 pad_value=silence_value(src.features))
    x, y = torch.from_numpy(crops["x"]), torch.from_numpy(crops["y"])
    torch.set_num_threads(1)
    seed_everything(0)
    net = create_model(model, num_classes=4)
    opt = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9, weight_decay=1e-3)
    step = eager_train_step(net, opt, nn.CrossEntropyLoss(), torch.device("cpu"), amp=False)
    bare = []
    for epoch in range(epochs):
        order = torch.randperm(len(y))
        batches = ({"x": x[order[i:i + batch_size]], "y": y[order[i:i + batch_size]]}
                   for i in range(0, len(y), batch_size))
        t = time.perf_counter()
        _, seen = train_one_epoch(net, batches, step, torch.device("cpu"))
        bare.append(seen / (time.perf_counter() - t))
    return [
        {"part": "b", "what": f"Ray Train loop {model} (1 worker, training steps)", "device": "cpu",
         "batch_size": batch_size, "input": [n_mels, crop], "samples_per_epoch": n_train, "epochs": epochs,
         "samples_per_s": max(ray_train_sps[1:] or ray_train_sps), "samples_per_s_epochs": ray_train_sps,
         "wall_s": ray_wall, "with_validation_samples_per_s_epochs": ray_sps},
        {"part": "b", "what": f"bare loop {model} (in-memory tensors)", "device": "cpu", "batch_size": batch_size,
         "input": [n_mels, crop], "samples_per_epoch": int(len(y)), "epochs": epochs,
         "samples_per_s": max(bare[1:] or bare), "samples_per_s_epochs": bare},
    ]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default="bench-train-ray.json", help="JSON results file")
    p.add_argument("--gpu-only", action="store_true", help="only (c): the worker function without Ray")
    p.add_argument("--models", default="resnet18,pyresnet152", help="(c) models, comma-separated")
    p.add_argument("--gpu-samples", type=int, default=4096, help="(c) samples per epoch")
    p.add_argument("--gpu-batch", type=int, default=256)
    p.add_argument("--gpu-epochs", type=int, default=2, help="(c) epochs; the last one is reported")
    p.add_argument("--wave", action="store_true", help="(c) also time log-mel computed on the device")
    p.add_argument("--rows", type=int, default=3000, help="(a,b) synthetic utterances (4 of 6 speakers train)")
    p.add_argument("--rows-per-shard", type=int, default=256,
                   help="(a,b) rows per shard file (preprocess.rows_per_shard's default)")
    p.add_argument("--model", default="resnet18", help="(b) model")
    p.add_argument("--batch-size", type=int, default=64, help="(a,b) batch size")
    p.add_argument("--crop-frames", type=int, default=64, help="(a,b) crop length")
    p.add_argument("--n-mels", type=int, default=64, help="(a,b) mel bands of the synthetic shards")
    p.add_argument("--epochs", type=int, default=3, help="(a,b) epochs; the first is warm-up")
    p.add_argument("--prefetch", type=int, default=2, help="(a) prefetch_batches")
    args = p.parse_args(argv)

    rows: list[dict[str, Any]] = []
    if args.gpu_only:
        rows += bench_gpu(args.models.split(","), samples=args.gpu_samples, batch_size=args.gpu_batch,
                          n_mels=128, crop=160, epochs=args.gpu_epochs, wave=False)
        if args.wave:
            rows += bench_gpu(args.models.split(","), samples=args.gpu_samples, batch_size=args.gpu_batch,
                              n_mels=128, crop=160, epochs=args.gpu_epochs, wave=True)
    else:
        os.environ.setdefault("RAY_DATA_DISABLE_PROGRESS_BARS", "1")
        from lssed.config import FeatureConfig
        from lssed.runtime import init_ray
        from lssed.storage import Storage
        from lssed.train.synthetic import write_synthetic_features

        work = tempfile.mkdtemp(prefix="lssed-bench-train-")
        per_class = max(1, args.rows // (6 * 4))
        t = time.perf_counter()
        uri = write_synthetic_features(Storage(work), speakers=6, per_class=per_class, unlabelled=0, min_s=1.0,
                                       max_s=6.0, features=FeatureConfig(n_mels=args.n_mels),
                                       rows_per_shard=args.rows_per_shard)
        print(f"synthetic shards: {6 * 4 * per_class} rows in {time.perf_counter() - t:.1f} s -> {uri}")
        init_ray(None)
        for materialize in (True, False):
            rows.append(bench_ingest(uri, batch_size=args.batch_size, crop=args.crop_frames, n_mels=args.n_mels,
                                     epochs=args.epochs, prefetch=args.prefetch, materialize=materialize))
        rows += bench_loop(uri, work, model=args.model, batch_size=args.batch_size, crop=args.crop_frames,
                           n_mels=args.n_mels, epochs=args.epochs)
        ray_row = next(r for r in rows if r["what"].startswith("Ray Train loop"))
        bare_row = next(r for r in rows if r["what"].startswith("bare loop"))
        rows.append({"part": "b", "what": "ratio Ray Train / bare", "device": "cpu",
                     "samples_per_s": ray_row["samples_per_s"] / bare_row["samples_per_s"]})

    print()
    print(f"{'part':<5} {'what':<62} {'device':<8} {'samples/s':>10} {'per CPU-s':>10}")
    for r in rows:
        per_cpu = f"{r['samples_per_cpu_s']:>10.0f}" if r.get("samples_per_cpu_s") else f"{'':>10}"
        print(f"{r['part']:<5} {r['what']:<62} {r['device']:<8} {r['samples_per_s']:>10.2f} {per_cpu}")
    payload = {"date": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()), "machine": _machine(),
               "args": vars(args), "rows": rows}
    Path(args.out).write_text(json.dumps(payload, indent=2, default=str))
    print(f"\nwrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
