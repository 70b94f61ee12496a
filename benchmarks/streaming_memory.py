"""Memory of the streamed train ingest at LSSED's shape: is it bounded over an epoch?

1. Writes (once; cached under .benchout/streaming/) a synthetic feature set in the preprocess
   stage's exact shard layout (SHARD_SCHEMA, zstd, preprocess.rows_per_shard rows per file,
   preprocess.batch_size rows per row group, _SUCCESS.json) shaped like LSSED: 147,025
   utterances of 206 h 25 min (mean 5.05 s), scaled down by --fraction in ROWS only: every
   row has LSSED's true size (16 kHz int16 waveform + 128-mel float32 log-mel at hop 512,
   ~157 frames at the mean) and lengths are drawn from a gamma distribution (shape 2, mean
   5.05 s, clipped to 0.5-30 s). Speakers scale with the rows (820 at full size), 80/10/10
   by speaker; 10% of rows fall outside the four classes. Values are noise, which zstd cannot
   compress, so the on-disk size errs high.
2. Streams --epochs epochs of its train split through the REAL ingest: the TorchTrainer's
   datasets and DataConfig come from ``lssed.train.trainer.make_trainer`` (with
   ``train.materialize_mb=0``: streamed), and its one worker iterates
   ``RayContext.train_batches`` (the same ``iter_torch_batches`` + TrainCollate + seeded local
   shuffle + prefetch that training workers use), with no model: ingest alone.
3. Every --interval s samples, from /proc, the resident memory of the driver, the Ray Train
   worker, Ray Data's processes (read/filter tasks, the split coordinator, its stats actor), the
   Train controller, idle pool workers, other Ray tasks and Ray's own daemons -- each as RssAnon (private heap) and
   RssShmem (object-store pages mapped in: shared, not owned) -- and the object store's used
   bytes from the raylet's node stats (what ``ray memory --stats-only`` prints).

Writes a JSON time series and prints per-epoch samples/s, samples per CPU-second (all Ray
processes' CPU, benchmarks/cputree.py), and per process group the peak and the slope (MB per
minute, least squares over each epoch) of its private memory: flat = bounded.

    python benchmarks/streaming_memory.py                      # 6% of LSSED's rows, 10 epochs
    python benchmarks/streaming_memory.py --fraction 0.02 --epochs 1 --out /tmp/s.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

LSSED_UTTERANCES = 147_025
LSSED_SPEAKERS = 820
LSSED_MEAN_S = (206 * 3600 + 25 * 60) / LSSED_UTTERANCES  # 5.05 s
SAMPLE_RATE, HOP, N_MELS = 16_000, 512, 128
MB = 2**20


# --------------------------------------------------------------------------- the synthetic feature set


def lengths_s(rows: int, rng: np.random.Generator) -> np.ndarray:
    return np.clip(rng.gamma(2.0, LSSED_MEAN_S / 2.0, size=rows), 0.5, 30.0)


def _list_array(flat: np.ndarray, lengths: np.ndarray, value_type: Any) -> Any:
    import pyarrow as pa

    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int32)
    return pa.ListArray.from_arrays(pa.array(offsets), pa.array(flat, type=value_type))


def write_lssed_like(cache: Path, rows: int, *, seed: int = 0, rows_per_shard: int = 256,
                     row_group: int = 16) -> str:
    """``<cache>/features/<digest>`` with ``rows`` LSSED-shaped rows; reused when committed."""
    import pyarrow as pa

    from lssed.config import FeatureConfig, config_to_dict
    from lssed.preprocess.shards import write_table_atomic
    from lssed.schema import SHARD_SCHEMA
    from lssed.storage import SUCCESS_MARKER, Storage

    digest = f"lssedlike-{rows}-s{seed}"
    out = Storage(str(cache)).child("features", digest)
    if out.exists(SUCCESS_MARKER):
        return out.uri
    out.delete_dir()
    rng = np.random.default_rng(seed)
    seconds = lengths_s(rows, rng)
    n_samples = (seconds * SAMPLE_RATE).astype(np.int64)
    n_frames = 1 + n_samples // HOP
    speakers = max(10, round(LSSED_SPEAKERS * rows / LSSED_UTTERANCES))
    speaker = rng.integers(0, speakers, size=rows)
    split_of = np.where(speaker < 0.8 * speakers, "train", np.where(speaker < 0.9 * speakers, "val", "test"))
    label4 = rng.integers(0, 4, size=rows)
    other = rng.random(rows) < 0.1
    classes = ("neutral", "happy", "angry", "sad")
    for k, lo in enumerate(range(0, rows, rows_per_shard)):
        idx = np.arange(lo, min(rows, lo + rows_per_shard))
        wave = (rng.standard_normal(int(n_samples[idx].sum()), dtype=np.float32) * 2000).astype(np.int16)
        mel = rng.standard_normal(int((N_MELS * n_frames[idx]).sum()), dtype=np.float32) * 3 - 6
        table = pa.table({
            "utt_id": [f"lssedlike_{i:07d}" for i in idx],
            "corpus": ["lssedlike"] * len(idx),
            "speaker": [f"spk{speaker[i]:04d}" for i in idx],
            "gender": ["F" if speaker[i] % 2 else "M" for i in idx],
            "age": [None] * len(idx),
            "session": [None] * len(idx),
            "label": ["other" if other[i] else classes[label4[i]] for i in idx],
            "label4": pa.array([None if other[i] else int(label4[i]) for i in idx], pa.int8()),
            "split": [str(split_of[i]) for i in idx],
            "fold": pa.array([None] * len(idx), pa.int8()),
            "score": pa.array([None] * len(idx), pa.float32()),
            "start_s": pa.array([0.0] * len(idx), pa.float64()),
            "end_s": pa.array(seconds[idx], pa.float64()),
            "sample_rate": pa.array([SAMPLE_RATE] * len(idx), pa.int32()),
            "n_mels": pa.array([N_MELS] * len(idx), pa.int32()),
            "n_frames": pa.array(n_frames[idx], pa.int32()),
            "logmel": _list_array(mel, N_MELS * n_frames[idx], pa.float32()),
            "waveform": _list_array(wave, n_samples[idx], pa.int16()),
            "clipped_samples": pa.array([0] * len(idx), pa.int32()),
        })
        table = table.select([f.name for f in SHARD_SCHEMA if f.name in table.column_names]).cast(
            pa.schema([f for f in SHARD_SCHEMA if f.name in table.column_names]))
        write_table_atomic(out, table, "shards", f"part-{k:05d}.parquet", row_group_size=row_group)
    out.write_json({
        "digest": digest,
        "config": {"features": config_to_dict(FeatureConfig())},
        "counts": {"rows_in": rows, "rows_out": rows, "rows_quarantined": 0},
        "stats": {"labelled": int((~other).sum()), "mean_s": float(seconds.mean()), "speakers": speakers,
                  "synthetic": "benchmarks/streaming_memory.py"},
    }, SUCCESS_MARKER)
    return out.uri


# --------------------------------------------------------------------------- sampling memory


_KB = re.compile(r"^(\w+):\s+(\d+) kB")


def _status(pid: int) -> dict[str, int] | None:
    try:
        with open(f"/proc/{pid}/status") as fh:
            text = fh.read()
    except OSError:
        return None
    out = {}
    for line in text.splitlines():
        m = _KB.match(line)
        if m and m.group(1) in ("VmRSS", "RssAnon", "RssFile", "RssShmem"):
            out[m.group(1)] = int(m.group(2)) * 1024
    return out


def _title(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as fh:
            return fh.read().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return ""


def _descendants(root: int) -> list[int]:
    parents: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat", "rb") as fh:
                    raw = fh.read().decode(errors="replace")
            except OSError:
                continue
            ppid = int(raw[raw.rfind(")") + 2:].split()[1])
            parents.setdefault(ppid, []).append(int(entry))
    out, todo = [], [root]
    while todo:
        for child in parents.get(todo.pop(), ()):
            out.append(child)
            todo.append(child)
    return out


GROUPS = ("driver", "train_worker", "ray_data", "train_control", "idle_workers", "ray_other", "ray_daemons")
_DATA = ("SplitCoordinator", "ReadParquet", "Filter", "MapBatches", "_StatsActor", "ReadFiles", "Map(",
         "AutoscalingRequester", "_AutoscalingCoordinatorActor", "ActorLocationTracker", "block_metadata")


def role(title: str) -> str | None:
    """A Ray process's group from its process title (Ray sets ``ray::<task or actor>``)."""
    if "RayTrainWorker" in title:
        return "train_worker"
    if any(k in title for k in _DATA):
        return "ray_data"
    if any(k in title for k in ("TrainController", "TrainStateActor", "SynchronizationActor", "PreemptionWatcher")):
        return "train_control"
    if "ray::IDLE" in title:
        return None  # keeps the role it had (a pool worker that ran a read task still holds its memory)
    if "Agent" in title or not title.startswith("ray::"):
        return "ray_daemons"  # raylet, gcs_server, dashboard and its agents, log monitor
    return "ray_other"  # e.g. Ray Train's PlacementGroupCleaner


class Sampler:
    """Every ``interval`` s: memory per process group and the object store's used bytes."""

    def __init__(self, interval: float = 1.0) -> None:
        self.interval = interval
        self.samples: list[dict[str, Any]] = []
        self._roles: dict[int, str] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._node: tuple[str, int] | None = None

    def _store(self) -> dict[str, int] | None:
        try:  # the raylet's node stats (a private Ray API: what `ray memory --stats-only` reads)
            import ray
            from ray._private.internal_api import node_stats

            if self._node is None:
                node = next(n for n in ray.nodes() if n["Alive"])
                self._node = (node["NodeManagerAddress"], int(node["NodeManagerPort"]))
            s = node_stats(*self._node, include_memory_info=False).store_stats
            return {"used": int(s.object_store_bytes_used), "avail": int(s.object_store_bytes_avail),
                    "spilled_total": int(s.spilled_bytes_total), "objects": int(s.num_local_objects),
                    "fallback": int(s.object_store_bytes_fallback)}
        except Exception:  # noqa: BLE001 - a missing sample, not a failed benchmark
            return None

    def sample(self) -> dict[str, Any]:
        me = os.getpid()
        groups = {g: {"rss": 0, "anon": 0, "shmem": 0, "procs": 0} for g in GROUPS}
        for pid in [me, *_descendants(me)]:
            st = _status(pid)
            if not st:
                continue
            if pid == me:
                g = "driver"
            else:
                r = role(_title(pid))
                g = self._roles.setdefault(pid, r or "idle_workers") if r is None else r
                if r is not None:
                    self._roles[pid] = r
            groups[g]["rss"] += st.get("VmRSS", 0)
            groups[g]["anon"] += st.get("RssAnon", 0)
            groups[g]["shmem"] += st.get("RssShmem", 0)
            groups[g]["procs"] += 1
        return {"t": time.time(), "groups": groups, "store": self._store()}

    def _run(self) -> None:
        while not self._stop.is_set():
            self.samples.append(self.sample())
            self._stop.wait(self.interval)

    def __enter__(self) -> "Sampler":
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        self._thread.join()


def slope_mb_per_min(ts: list[float], values: list[float]) -> float | None:
    if len(ts) < 3:
        return None
    t = np.asarray(ts) - ts[0]
    return float(np.polyfit(t / 60.0, np.asarray(values) / MB, 1)[0])


# --------------------------------------------------------------------------- the streamed ingest


def _ingest_worker(config: dict[str, Any]) -> None:
    """The training worker's data path (RayContext.train_batches) with the model left out."""
    import torch

    sys.path.insert(0, config["bench_dir"])
    from cputree import tree_cpu_s  # the CPU of every process of the local Ray session
    from lssed.train.trainer import RayContext

    torch.set_num_threads(max(1, int(float(config["train"].get("cpus_per_worker", 1)))))
    ctx = RayContext(config)
    batch_size = int(config["train"]["batch_size"])
    epochs = []
    for epoch in range(1, config["bench_epochs"] + 1):
        n, t0, cpu0 = 0, time.time(), tree_cpu_s(config["bench_root_pid"])
        for batch in ctx.train_batches(epoch, batch_size):
            n += int(batch["y"].numel())
        t1, cpu = time.time(), tree_cpu_s(config["bench_root_pid"]) - cpu0
        epochs.append({"epoch": epoch, "start": t0, "end": t1, "samples": n, "seconds": t1 - t0,
                       "samples_per_s": n / (t1 - t0), "cpu_s": cpu, "samples_per_cpu_s": n / cpu if cpu else None})
        Path(config["bench_report"]).write_text(json.dumps(epochs))


def stream(features_uri: str, *, epochs: int, object_store_mb: int, interval: float,
           overrides: list[str]) -> dict[str, Any]:
    import ray
    from ray.train.torch import TorchTrainer

    from lssed.config import load_config
    from lssed.runtime import init_ray
    from lssed.storage import Storage
    from lssed.train.data import describe_features
    from lssed.train.ingest_plan import plan_ingest, split_bytes
    from lssed.train.trainer import make_trainer

    cfg = load_config(None, ["train.materialize_mb=0", f"ray.object_store_memory_mb={object_store_mb}",
                             "train.max_failures=0", *overrides])
    init_ray(cfg.ray)
    source = describe_features(cfg, features_uri)
    store = float(ray.cluster_resources().get("object_store_memory", 0))
    auto = plan_ingest("auto", split_bytes(source.shards_bytes, source.split_counts["train"], source.rows_total),
                       object_store_bytes=store)  # what the default would have chosen here
    work = Path(tempfile.mkdtemp(prefix="lssed-bench-stream-"))
    base = make_trainer(cfg, features_uri, out=Storage(str(work)), model=cfg.train.model, run_name="stream")
    size = split_bytes(source.shards_bytes, source.split_counts["train"], source.rows_total)
    plan = plan_ingest(cfg.train.materialize_mb, size)  # what make_trainer just decided (and logged)
    report = work / "epochs.json"
    loop_cfg = dict(base.train_loop_config, bench_epochs=epochs, bench_root_pid=os.getpid(),
                    bench_dir=str(REPO / "benchmarks"),
                    bench_report=str(report))
    trainer = TorchTrainer(_ingest_worker, train_loop_config=loop_cfg, scaling_config=base.scaling_config,
                           run_config=base.run_config, datasets=base.datasets, dataset_config=base.data_config)
    with Sampler(interval) as sampler:
        time.sleep(interval)  # a baseline sample before the trainer starts
        trainer.fit()
        time.sleep(2 * interval)
    return {"source": {"uri": features_uri, "rows": source.rows_total, "split_counts": source.split_counts,
                       "shards_bytes": source.shards_bytes, "shard_files": source.shard_files},
            "object_store_bytes": store, "plan": plan.__dict__, "auto_would": auto.__dict__,
            "train_batch_size": cfg.train.batch_size, "crop_frames": base.train_loop_config["train"]["crop_frames"],
            "epochs": json.loads(report.read_text()), "samples": sampler.samples}


def summarize(res: dict[str, Any]) -> list[dict[str, Any]]:
    """Per epoch and group: peak and slope of private memory (RssAnon), RSS peak; object store."""
    rows = []
    for ep in res["epochs"]:
        inside = [s for s in res["samples"] if ep["start"] <= s["t"] <= ep["end"]]
        ts = [s["t"] for s in inside]
        for g in GROUPS:
            anon = [s["groups"][g]["anon"] for s in inside]
            rss = [s["groups"][g]["rss"] for s in inside]
            if not any(rss):
                continue
            half = len(ts) // 2  # the second half: after the epoch's processes have started
            rows.append({"epoch": ep["epoch"], "what": g, "peak_rss_mb": max(rss) / MB,
                         "peak_private_mb": max(anon) / MB, "start_private_mb": anon[0] / MB,
                         "slope_private_mb_per_min": slope_mb_per_min(ts, anon),
                         "late_slope_private_mb_per_min": slope_mb_per_min(ts[half:], anon[half:]),
                         "samples": len(inside),
                         "procs_max": max(s["groups"][g]["procs"] for s in inside)})
        used = [(s["t"], s["store"]["used"]) for s in inside if s.get("store")]
        if used:
            half = len(used) // 2
            rows.append({"epoch": ep["epoch"], "what": "object_store_used", "peak_rss_mb": max(u for _, u in used) / MB,
                         "peak_private_mb": None, "start_private_mb": used[0][1] / MB,
                         "slope_private_mb_per_min": slope_mb_per_min([t for t, _ in used], [u for _, u in used]),
                         "late_slope_private_mb_per_min": slope_mb_per_min([t for t, _ in used[half:]],
                                                                           [u for _, u in used[half:]]),
                         "samples": len(used), "procs_max": None})
    return rows


def epoch_peaks(table: list[dict[str, Any]]) -> dict[str, list[float]]:
    """Group -> its peak private memory (object store: used bytes) in each epoch, in MB."""
    out: dict[str, list[float]] = {}
    for r in table:
        out.setdefault(r["what"], []).append(r["peak_private_mb"] if r["peak_private_mb"] is not None
                                             else r["peak_rss_mb"])
    return out


def slope_per_epoch(peaks: list[float]) -> float | None:
    """MB per epoch of the peaks after the first epoch (which includes Ray Data's start-up)."""
    later = peaks[1:]
    if len(later) < 3:
        return None
    return float(np.polyfit(np.arange(len(later)), np.asarray(later), 1)[0])


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--fraction", type=float, default=0.06, help="share of LSSED's 147,025 rows to write")
    p.add_argument("--epochs", type=int, default=10, help="the first one includes Ray Data's start-up")
    p.add_argument("--object-store-mb", type=int, default=256,
                   help="the local Ray's object store: below the train split's in-memory size, so an epoch "
                        "must cycle its blocks through the store (the case streaming exists for)")
    p.add_argument("--interval", type=float, default=1.0, help="seconds between memory samples")
    p.add_argument("--cache", default=str(REPO / ".benchout" / "streaming"))
    p.add_argument("--out", default=str(REPO / ".benchout" / "streaming" / "streaming_memory.json"))
    p.add_argument("--set", action="append", default=[], help="config overrides (key=value), e.g. "
                   "train.batch_size=128")
    args = p.parse_args(argv)
    os.environ.setdefault("RAY_DATA_DISABLE_PROGRESS_BARS", "1")
    import logging

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    rows = max(64, int(round(LSSED_UTTERANCES * args.fraction)))
    t = time.perf_counter()
    uri = write_lssed_like(Path(args.cache), rows)
    print(f"feature set: {rows} rows ({args.fraction:g} of LSSED) at {uri} ({time.perf_counter() - t:.1f} s, "
          "cached for reruns)")
    load = os.getloadavg()
    res = stream(uri, epochs=args.epochs, object_store_mb=args.object_store_mb, interval=args.interval,
                 overrides=args.set)
    table = summarize(res)
    payload = {"date": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
               "machine": {"python": platform.python_version(), "cpus": os.cpu_count(), "platform": platform.platform(),
                           "loadavg_at_start": load, "loadavg_at_end": os.getloadavg()},
               "args": vars(args), **res, "summary": table,
               "epoch_peaks_mb": {g: {"peaks": v, "growth_mb_per_epoch": slope_per_epoch(v)}
                                  for g, v in epoch_peaks(table).items()}}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(payload, indent=1, default=str))

    src = res["source"]
    print(f"\nshards {src['shards_bytes'] / MB:.0f} MB in {src['shard_files']} files, {src['rows']} rows "
          f"{src['split_counts']}; object store {res['object_store_bytes'] / MB:.0f} MB; "
          f"ingest: {'materialized' if res['plan']['materialize'] else 'streamed'}; "
          f"auto would {'materialize' if res['auto_would']['materialize'] else 'stream'} "
          f"({res['auto_would']['reason']})")
    print(f"load average at start {load[0]:.1f}, at end {payload['machine']['loadavg_at_end'][0]:.1f}")
    for ep in res["epochs"]:
        per_cpu = f"{ep['samples_per_cpu_s']:.0f}" if ep["samples_per_cpu_s"] else "-"
        print(f"epoch {ep['epoch']}: {ep['samples']} samples in {ep['seconds']:.1f} s = {ep['samples_per_s']:.0f}/s, "
              f"{per_cpu} per CPU-s (all Ray processes)")
    print(f"\n{'epoch':>5} {'group':<18} {'peak RSS MB':>11} {'private MB start->peak':>23} {'slope MB/min':>12} "
          f"{'2nd half':>9} {'procs':>5}")
    for r in table:
        slope = f"{r['slope_private_mb_per_min']:+.1f}" if r["slope_private_mb_per_min"] is not None else "-"
        late = f"{r['late_slope_private_mb_per_min']:+.1f}" if r["late_slope_private_mb_per_min"] is not None else "-"
        private = (f"{r['start_private_mb']:.0f} -> {r['peak_private_mb']:.0f}" if r["peak_private_mb"] is not None
                   else f"{r['start_private_mb']:.0f} (used)")
        print(f"{r['epoch']:>5} {r['what']:<18} {r['peak_rss_mb']:>11.0f} {private:>23} {slope:>12} {late:>9} "
              f"{r['procs_max'] if r['procs_max'] is not None else '':>5}")
    print(f"\nper-epoch peak private MB (object store: used MB); growth = least-squares MB per epoch over epochs 2..")
    for g, peaks in epoch_peaks(table).items():
        growth = slope_per_epoch(peaks)
        print(f"  {g:<18} {' '.join(f'{v:.0f}' for v in peaks)}   growth "
              f"{'-' if growth is None else f'{growth:+.1f}'}")
    print(f"\nwrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
