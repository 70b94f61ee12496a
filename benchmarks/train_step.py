"""Training throughput of the model zoo: samples/s of one SGD step (forward, backward, update).

Every step is built by the training loop's own builder (:func:`lssed.train.steps.build_train_step`,
what ``train.compile`` / ``train.cuda_graph`` select), so a variant times the trainer's step.

Paper recipe sizes on a GPU: batch 256, 128 mel bands x 160 frames, SGD (momentum 0.9,
weight decay 1e-3), bf16 autocast and channels_last, cuDNN autotuning on. Prints one table and
writes JSON (``--out``). On a CPU use small sizes, e.g. ``--batch 4 --steps 2 --frames 32``.

Variants are ``model[:impl[:plan]][@graph]``, e.g. ``pyresnet152:reference``,
``pyresnet152:fast``, ``pyresnet152:fast:merged,merged,grouped,grouped``; ``@graph`` replays
the whole step as one CUDA graph (:class:`lssed.models.fast.GraphedTrainStep`; ``train.cuda_graph``),
``@compile`` wraps the model in default ``torch.compile`` first (``train.compile``),
``@compile+graph`` does both. ``--stage-bench`` times every PyResNet
stage's forward+backward under each pyramid mode and adds the variant that uses the fastest
mode per stage (``pyresnet152:fast:auto``). ``--profile DIR`` writes the top CUDA kernels of
the first two variants. ``--check-all`` runs every registered model forward+backward on the
device under the same autocast/memory format and compares the fast and reference PyResNet.

    PYTHONPATH=. python benchmarks/train_step.py --device cuda --out train_step.json
    PYTHONPATH=. python benchmarks/train_step.py --device cpu --batch 4 --steps 2 --frames 32 --out x.json
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import platform
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from lssed.models import create_model, list_models  # noqa: E402
from lssed.models.pyresnet import PYRAMID_MODES, PyConv, PyResNet  # noqa: E402
from lssed.train.evaluate import autocast as _train_autocast  # noqa: E402
from lssed.train.steps import build_train_step  # noqa: E402

DEFAULT_VARIANTS = ("pyresnet152:reference", "pyresnet152:fast", "resnet152", "vgg16")


def parse_variant(spec: str) -> tuple[str, dict]:
    parts = spec.split("@")[0].split(":")
    kw: dict = {}
    if len(parts) > 1 and parts[1]:
        kw["impl"] = parts[1]
    if len(parts) > 2 and parts[2] and parts[2] != "auto":
        kw["plan"] = tuple(parts[2].split(","))
    return parts[0], kw


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def autocast(device: torch.device, amp: bool):
    """The training loop's autocast (bf16 on CUDA when ``amp``), so every timing uses the same precision."""
    return _train_autocast(device, amp)


def make_step(model: torch.nn.Module, device: torch.device, amp: bool, graph: bool = False, compile: bool = False):
    """The training loop's step for ``train.compile=compile``, ``train.cuda_graph=graph`` (one worker)."""
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=1e-3)
    loss_fn = torch.nn.CrossEntropyLoss()
    if graph and device.type != "cuda":
        raise ValueError("@graph variants need --device cuda")
    return build_train_step(model, opt, loss_fn, device, amp=amp, compile=compile, cuda_graph=graph)


def time_steps(step, x, y, device, warmup: int, steps: int) -> float:
    for _ in range(warmup):
        step(x, y)
    sync(device)
    t0 = time.perf_counter()
    for _ in range(steps):
        loss = step(x, y)
    sync(device)
    elapsed = time.perf_counter() - t0
    if not torch.isfinite(loss.detach()).item():
        raise RuntimeError("the loss is not finite")
    return elapsed


def bench_variant(spec: str, args, device: torch.device, memfmt) -> dict:
    name, kw = parse_variant(spec)
    model = create_model(name, num_classes=4, **kw)
    if spec.split("@")[0].endswith(":auto") and getattr(args, "auto_plan", None):
        model.set_plan(args.auto_plan)
    model = model.to(device).train().to(memory_format=memfmt)
    suffix = spec.split("@")[1] if "@" in spec else ""
    x = torch.randn(args.batch, 1, args.mels, args.frames, device=device).to(memory_format=memfmt)
    y = torch.randint(0, 4, (args.batch,), device=device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    step = make_step(model, device, args.amp, graph="graph" in suffix, compile="compile" in suffix)
    elapsed = time_steps(step, x, y, device, args.warmup, args.steps)
    row = {
        "variant": spec, "model": name, "impl": getattr(model, "impl", None),
        "plan": list(getattr(model, "plan", ())) or None,
        "params_m": round(sum(p.numel() for p in model.parameters()) / 1e6, 2),
        "step_ms": round(1000 * elapsed / args.steps, 2),
        "samples_per_s": round(args.batch * args.steps / elapsed, 1),
    }
    if device.type == "cuda":
        row["peak_mem_gb"] = round(torch.cuda.max_memory_allocated(device) / 2**30, 2)
    if args.profile and device.type == "cuda" and spec in args.profile_variants:
        profile(step, x, y, device, Path(args.profile) / f"profile_{spec.replace(':', '_').replace(',', '-')}.txt")
    del model, step
    if device.type == "cuda":
        torch.cuda.empty_cache()
    return row


def profile(step, x, y, device, path: Path) -> None:
    from torch.profiler import ProfilerActivity, profile as tprofile

    path.parent.mkdir(parents=True, exist_ok=True)
    with tprofile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
        for _ in range(2):
            step(x, y)
        sync(device)
    ka = prof.key_averages()
    text = ka.table(sort_by="cuda_time_total", row_limit=40, max_name_column_width=90)
    path.write_text(text)


def stage_bench(args, device: torch.device, memfmt) -> tuple[list[dict], tuple[str, ...]]:
    """Forward+backward time of each PyResNet-152 stage under each pyramid mode."""
    model = create_model("pyresnet152", num_classes=4).to(device).train().to(memory_format=memfmt)
    rows, best = [], []
    shape = (args.batch, 64, (args.mels + 1) // 2, (args.frames + 1) // 2)  # after the stem
    for stage in range(1, 5):
        layer = getattr(model, f"layer{stage}")
        x = torch.randn(*shape, device=device).to(memory_format=memfmt).requires_grad_(True)
        with torch.no_grad(), autocast(device, args.amp):
            out_shape = tuple(layer(x).shape)
        modes = PYRAMID_MODES if stage < 4 else ("grouped",)
        timings = {}
        for mode in modes:
            for m in layer.modules():
                if isinstance(m, PyConv):
                    m.mode = mode

            def fb():
                with autocast(device, args.amp):
                    out = layer(x)
                out.float().sum().backward()

            for _ in range(max(1, args.warmup)):
                fb()
            sync(device)
            t0 = time.perf_counter()
            reps = max(1, args.steps)
            for _ in range(reps):
                fb()
            sync(device)
            ms = 1000 * (time.perf_counter() - t0) / reps
            timings[mode] = ms
            rows.append({"stage": stage, "mode": mode, "fwd_bwd_ms": round(ms, 3), "input": list(shape)})
        best.append(min(timings, key=timings.get))
        shape = out_shape
    # the stem (1-channel 7x7 conv), which no pyramid mode changes: both memory formats
    for fmt_name, fmt in (("channels_last", torch.channels_last), ("nchw", torch.contiguous_format)):
        stem = torch.nn.Sequential(model.conv1, model.bn1, model.relu).to(memory_format=fmt)
        x = torch.randn(args.batch, 1, args.mels, args.frames, device=device).to(memory_format=fmt)

        def fb_stem():
            with autocast(device, args.amp):
                out = stem(x)
            out.float().sum().backward()

        for _ in range(max(1, args.warmup)):
            fb_stem()
        sync(device)
        t0 = time.perf_counter()
        for _ in range(max(1, args.steps)):
            fb_stem()
        sync(device)
        rows.append({"stage": 0, "mode": f"stem-{fmt_name}", "fwd_bwd_ms": round(1000 * (time.perf_counter() - t0) / max(1, args.steps), 3),
                     "input": list(x.shape)})
    del model
    return rows, tuple(best)


def check_all(args, device: torch.device, memfmt) -> list[dict]:
    """Every model: forward+backward on the device (autocast, memory format), finite outputs."""
    out = []
    for name in list_models():
        model = create_model(name).to(device).train().to(memory_format=memfmt)
        ok, err = True, ""
        try:
            for frames in (args.frames, 7):
                x = torch.randn(4, 1, args.mels, frames, device=device).to(memory_format=memfmt)
                with autocast(device, args.amp):
                    y = model(x)
                y.float().sum().backward()
                ok = ok and y.shape == (4, 4) and bool(torch.isfinite(y).all())
        except Exception as exc:  # noqa: BLE001 - reported, not raised
            ok, err = False, f"{type(exc).__name__}: {exc}"[:300]
        out.append({"model": name, "ok": ok, "error": err})
        del model
    # fast vs reference PyResNet on the device, same weights; train-mode BN (batch statistics)
    # keeps a randomly initialised 152-layer net's activations in range, unlike eval mode
    torch.manual_seed(0)
    ref = create_model("pyresnet152").to(device).train().to(memory_format=memfmt)
    fast = create_model("pyresnet152", impl="fast", plan=getattr(args, "auto_plan", None)).to(device).train()
    fast.load_state_dict(ref.state_dict())
    fast = fast.to(memory_format=memfmt)
    x = torch.randn(8, 1, args.mels, args.frames, device=device).to(memory_format=memfmt)
    with torch.no_grad():
        a32 = ref(x).float()
        b32 = fast(x).float()
        with autocast(device, args.amp):
            a16 = ref(x).float()
            b16 = fast(x).float()
    out.append({"model": "pyresnet152 fast vs reference", "ok": True, "error": "",
                "max_abs_diff_fp32": float((a32 - b32).abs().max()),
                "max_abs_diff_bf16": float((a16 - b16).abs().max()),
                "max_abs_diff_bf16_vs_fp32_reference": float((a16 - a32).abs().max()),
                "max_abs_logit": float(a32.abs().max())})
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--batch", type=int, default=None, help="default: 256 on GPU, 4 on CPU")
    p.add_argument("--mels", type=int, default=128)
    p.add_argument("--frames", type=int, default=160)
    p.add_argument("--steps", type=int, default=None, help="timed steps (default: 12 on GPU, 2 on CPU)")
    p.add_argument("--warmup", type=int, default=None, help="untimed steps first (default: 4 on GPU, 1 on CPU)")
    p.add_argument("--variants", nargs="+", default=list(DEFAULT_VARIANTS))
    p.add_argument("--no-amp", dest="amp", action="store_false", help="no bf16 autocast on GPU")
    p.add_argument("--no-channels-last", dest="channels_last", action="store_false")
    p.add_argument("--no-cudnn-benchmark", dest="cudnn_benchmark", action="store_false")
    p.add_argument("--stage-bench", action="store_true", help="per-stage pyramid-mode timings (+ the auto plan)")
    p.add_argument("--check-all", action="store_true", help="every model forward+backward on the device")
    p.add_argument("--profile", metavar="DIR", help="write top-CUDA-kernel tables of each variant here")
    p.add_argument("--profile-variants", nargs="+",
                   default=["pyresnet152:reference", "pyresnet152:fast:auto", "resnet152"])
    p.add_argument("--out", help="write the results as JSON here (rewritten after every phase)")
    args = p.parse_args(argv)
    device = torch.device(args.device)
    gpu = device.type == "cuda"
    args.batch = args.batch or (256 if gpu else 4)
    args.steps = args.steps or (12 if gpu else 2)
    args.warmup = args.warmup if args.warmup is not None else (4 if gpu else 1)
    args.auto_plan = None
    if gpu:
        torch.backends.cudnn.benchmark = args.cudnn_benchmark
    memfmt = torch.channels_last if args.channels_last else torch.contiguous_format
    torch.manual_seed(0)

    result: dict = {
        "benchmark": "train_step",
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "device": torch.cuda.get_device_name(device) if gpu else platform.processor() or platform.machine(),
        "torch": torch.__version__, "cuda": torch.version.cuda if gpu else None,
        "cudnn": torch.backends.cudnn.version() if gpu else None,
        "config": {"batch": args.batch, "mels": args.mels, "frames": args.frames, "steps": args.steps,
                   "warmup": args.warmup, "amp_bf16": bool(args.amp and gpu), "channels_last": args.channels_last,
                   "cudnn_benchmark": bool(gpu and args.cudnn_benchmark),
                   "optimizer": "SGD(lr=0.01, momentum=0.9, weight_decay=1e-3)"},
    }
    def save() -> None:
        if args.out:
            Path(args.out).parent.mkdir(parents=True, exist_ok=True)
            Path(args.out).write_text(json.dumps(result, indent=2))

    variants = list(args.variants)
    if args.stage_bench:
        rows, best = stage_bench(args, device, memfmt)
        args.auto_plan = best
        result["stage_bench"], result["auto_plan"] = rows, list(best)
        print(f"{'stage':>5} {'mode':<22} {'fwd+bwd ms':>11}")
        for r in rows:
            print(f"{r['stage']:>5} {r['mode']:<22} {r['fwd_bwd_ms']:>11.2f}")
        print(f"auto plan (fastest mode per stage): {','.join(best)}")
        if "pyresnet152:fast:auto" not in variants:
            variants.append("pyresnet152:fast:auto")
        save()
    rows = []
    result["results"] = rows
    for spec in variants:
        try:
            row = bench_variant(spec, args, device, memfmt)
        except Exception as exc:  # noqa: BLE001 - one failing variant must not lose the others
            row = {"variant": spec, "error": f"{type(exc).__name__}: {exc}"[:500]}
        if spec.split("@")[0].endswith(":auto"):
            row["plan"] = list(args.auto_plan or ())
        rows.append(row)
        print(json.dumps(row), flush=True)
        save()
    by = {r["variant"]: r for r in rows if "samples_per_s" in r}
    ref = by.get("pyresnet152:reference")
    if ref:
        result["speedup_vs_reference"] = {
            v: round(r["samples_per_s"] / ref["samples_per_s"], 3) for v, r in by.items() if v.startswith("pyresnet152")}
    save()
    if args.check_all:
        result["check_all"] = check_all(args, device, memfmt)

    print()
    print(f"train step: {result['device']}, batch {args.batch}, {args.mels}x{args.frames}, "
          f"bf16={result['config']['amp_bf16']}, channels_last={args.channels_last}")
    print(f"{'variant':<48} {'samples/s':>10} {'step ms':>9} {'vs ref':>7}")
    for r in rows:
        if "samples_per_s" not in r:
            print(f"{r['variant']:<48} {'FAILED':>10}  {r['error'][:60]}")
            continue
        rel = result.get("speedup_vs_reference", {}).get(r["variant"])
        plan = f" [{','.join(r['plan'])}]" if r.get("plan") and r["variant"].startswith("pyresnet152:fast") else ""
        print(f"{(r['variant'] + plan)[:48]:<48} {r['samples_per_s']:>10.1f} {r['step_ms']:>9.1f} "
              f"{(f'{rel:.2f}x' if rel else ''):>7}")
    if args.check_all:
        bad = [c for c in result["check_all"] if not c["ok"]]
        print(f"check-all: {len(result['check_all']) - len(bad)} ok, {len(bad)} failed "
              + "; ".join(f"{c['model']}: {c['error']}" for c in bad))
        print(json.dumps(result["check_all"][-1]))
    save()
    return 1 if any("error" in r for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
