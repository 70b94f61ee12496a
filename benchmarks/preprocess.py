"""Preprocessing throughput: audio-seconds per CPU-second, Ray pipeline vs plain loop vs denoiser.

(a) the Ray Data pipeline end to end (``lssed.preprocess.stage.preprocess`` on an already
    started local Ray: planning, actor start-up, decode/denoise/gain/log-mel, Parquet writes,
    the final row check and the commit). Its cost is the CPU time of every process of the
    local Ray session while it runs (this driver with Ray Data's executor, GCS, raylet, the
    dashboard, Ray Data's helper actors and the preprocessing actors), read from /proc by
    ``cputree.CpuTree``: audio / that CPU time is audio-seconds per core-second used, and it
    does not depend on other load of a shared machine. Also shown: audio / (wall x actors);
(b) the same functions in a plain single-process loop: the stage's chunks through
    ``process_chunk`` and ``write_chunk`` (shards on local disk), audio / CPU seconds;
(c) noisereduce alone on the same decoded utterances, audio / CPU seconds.
Targets (ratios within one run): (a) >= 0.8 (b) and (b) >= 0.8 (c).

The run's CPU is split into the chunks' own work (measured inside the actors), the actors'
start-up (worker boot, imports of torch/scipy/noisereduce), Ray Data's helper actors, the
driver and Ray's core processes: everything but the work is a fixed cost per run, so the
table also gives the ratio of the work alone (the marginal cost of one more hour of audio).

The demo corpus (lssed.corpora.demo) is synthesised once into --work and reused; sizes are
chosen to give at least 30 minutes of audio. Prints a table and writes JSON.

    PYTHONPATH=. python benchmarks/preprocess.py --actors 2 --out .benchout/preprocess.json
    PYTHONPATH=. python benchmarks/preprocess.py --speakers 24 --per-class 32   # ~2 h of audio
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import time
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from cputree import CpuTree  # noqa: E402

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("RAY_AUTH_MODE", "disabled")

log = logging.getLogger("bench.preprocess")


def build_manifest(work: Path, speakers: int, per_class: int, seed: int) -> Path:
    from lssed.corpora import prepare, write_manifest
    from lssed.corpora.demo import make_demo_corpus

    manifest = work / f"manifest-{speakers}x{per_class}-{seed}.parquet"
    if manifest.exists():
        return manifest
    corpus = work / f"corpus-{speakers}x{per_class}-{seed}"
    t = time.perf_counter()
    csv = corpus / "corpus.csv"
    if not csv.exists():
        csv = make_demo_corpus(corpus, speakers=speakers, per_class=per_class, seed=seed)
    log.info("demo corpus ready in %.0f s", time.perf_counter() - t)
    write_manifest(prepare("demo", csv), manifest)
    return manifest


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--work", default=".benchout/preprocess", help="corpus cache and feature output folder")
    p.add_argument("--speakers", type=int, default=12)
    p.add_argument("--per-class", type=int, default=16)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--actors", type=int, default=os.cpu_count() or 1, help="Ray actors = cores used by (a)")
    p.add_argument("--denoise", default="noisereduce")
    p.add_argument("--min-minutes", type=float, default=30.0, help="refuse smaller corpora (0: no check)")
    p.add_argument("--out", default=".benchout/preprocess.json", help="JSON results")
    p.add_argument("--allocator", choices=("tuned", "default"), default="tuned",
                   help="tuned: keep freed memory (preprocess.keep_freed_memory, every path); default: glibc as is")
    p.add_argument("--settle-s", type=float, default=5.0, help="wait after starting Ray, before (a)")
    args = p.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    for noisy in ("ray", "urllib3"):
        logging.getLogger(noisy).setLevel(logging.WARNING)

    import numpy as np
    import torch

    torch.set_num_threads(1)
    from lssed.config import load_config
    from lssed.preprocess.allocator import keep_freed_memory
    from lssed.preprocess.chain import merge_stats, process_chunk
    from lssed.preprocess.decode import Segment, decode_file
    from lssed.preprocess.denoise import denoise
    from lssed.preprocess.pipeline import CHUNK_COLUMN, warm_up
    from lssed.preprocess.shards import write_chunk
    from lssed.preprocess.stage import plan_chunks, preprocess, read_manifest
    from lssed.runtime import init_ray
    from lssed.storage import Storage

    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    manifest_path = build_manifest(work, args.speakers, args.per_class, args.seed)
    manifest = read_manifest(str(manifest_path))
    tuned = args.allocator == "tuned"
    cfg = load_config(None, [f"preprocess.denoise={args.denoise}", f"preprocess.num_actors={args.actors}",
                             f"ray.num_cpus={max(args.actors, 2)}", f"preprocess.keep_freed_memory={tuned}"])
    if tuned:
        keep_freed_memory()  # (b) and (c) run here; the actors of (a) do the same from the config

    # (c) noisereduce alone, on decoded utterances (decoding untimed)
    rows = manifest.to_pylist()
    by_media: dict[str, list[dict]] = {}
    for r in rows:
        by_media.setdefault(r["media_uri"], []).append(r)
    clips = []
    for media, rs in by_media.items():
        for x in decode_file(media, [Segment(r["start_s"], r["end_s"]) for r in rs]):
            if isinstance(x, np.ndarray):
                clips.append(x)
    audio_s = sum(c.size for c in clips) / 16000
    log.info("%d utterances, %.1f min of audio in %d files", len(clips), audio_s / 60, len(by_media))
    if args.min_minutes and audio_s < args.min_minutes * 60:
        raise SystemExit(f"only {audio_s / 60:.1f} min of audio; raise --speakers/--per-class")
    warm_up(cfg)
    c0, w0 = time.process_time(), time.perf_counter()
    for x in clips:
        denoise(x, 16000, args.denoise)
    c_cpu, c_wall = time.process_time() - c0, time.perf_counter() - w0

    # (b) the same functions in a plain loop, one process: the stage's chunks, each processed
    # and written as a shard (zstd Parquet) to local disk, as the actors do
    plain = Storage(str(work / "plain-loop"))
    plain.delete_dir()
    chunks = plan_chunks(manifest, cfg.preprocess)
    c0, w0 = time.process_time(), time.perf_counter()
    per_chunk = []
    for chunk_id, chunk in enumerate(chunks):
        res = process_chunk(chunk.drop_columns([CHUNK_COLUMN]), cfg)
        per_chunk.append(write_chunk(plain, chunk_id, res.shard, res.quarantine, res.stats,
                                     row_group_size=cfg.preprocess.batch_size))
    b_cpu, b_wall = time.process_time() - c0, time.perf_counter() - w0
    b_stats = merge_stats(per_chunk)
    b_audio = b_stats["decoded_audio_s"]

    results = {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, {platform.python_version()}",
        "corpus": {"utterances": len(clips), "audio_min": audio_s / 60, "files": len(by_media),
                   "speakers": args.speakers, "per_class": args.per_class},
        "denoise": args.denoise,
        "allocator": args.allocator,
        "c_noisereduce": {"audio_s": audio_s, "cpu_s": c_cpu, "wall_s": c_wall, "audio_per_cpu_s": audio_s / c_cpu},
        "b_plain_loop": {"audio_s": b_audio, "cpu_s": b_cpu, "wall_s": b_wall, "audio_per_cpu_s": b_audio / b_cpu,
                         "cpu_by_step": b_stats["cpu_s"]},
        "load_avg_after_b": os.getloadavg(),
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(results, indent=2))  # partial: (b) and (c) until (a) is done
    log.info("(b) %.1f, (c) %.1f audio-s per CPU-s", b_audio / b_cpu, audio_s / c_cpu)

    # (a) the Ray pipeline, end to end, on a started Ray (let its start-up settle first)
    init_ray(cfg.ray)
    time.sleep(args.settle_s)
    with CpuTree() as tree:
        fs = preprocess(cfg, str(manifest_path), out=Storage(str(work / "out")), force=True)
    a_audio = fs.stats["decoded_audio_s"]
    a_work_cpu = fs.stats["cpu_s"]["total"]
    cost = split_costs(tree, a_work_cpu)

    results.update({
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "load_avg_at_end": os.getloadavg(),
        "actors": args.actors,
        "a_ray": {"audio_s": a_audio, "wall_s": tree.wall_s, "actors": args.actors, "cpu_s": tree.cpu_s,
                  "audio_per_cpu_s": a_audio / tree.cpu_s,
                  "audio_per_core_wall_s": a_audio / (tree.wall_s * args.actors),
                  "work_cpu_s": a_work_cpu, "audio_per_work_cpu_s": a_audio / a_work_cpu if a_work_cpu else 0.0,
                  "cpu_by_part": cost, "cpu_by_process": tree.by_name(),
                  "rows_out": fs.rows_out, "rows_quarantined": fs.rows_quarantined},
    })
    a = results["a_ray"]["audio_per_cpu_s"]
    a_wall = results["a_ray"]["audio_per_core_wall_s"]
    a_work = results["a_ray"]["audio_per_work_cpu_s"]
    b = results["b_plain_loop"]["audio_per_cpu_s"]
    c = results["c_noisereduce"]["audio_per_cpu_s"]
    results["ratios"] = {"a_over_b": a / b, "a_wall_over_b": a_wall / b, "a_work_over_b": a_work / b, "b_over_c": b / c}
    Path(args.out).write_text(json.dumps(results, indent=2))

    print(f"\nPreprocessing throughput ({results['date']}, {results['machine']}, load avg {results['load_avg_at_end'][0]:.1f})")
    print(f"corpus: {len(clips)} utterances, {audio_s / 60:.1f} min, {len(by_media)} files; denoise={args.denoise}; allocator {args.allocator}\n")
    print("| path | audio s | time s | audio-s per CPU-s |")
    print("|---|---:|---:|---:|")
    print(f"| (a) Ray pipeline end to end, {args.actors} actors: CPU of all Ray processes | {a_audio:.0f} | "
          f"{tree.cpu_s:.1f} CPU | {a:.1f} |")
    print(f"| (a) same run, per core by wall time (wall x actors) | {a_audio:.0f} | {tree.wall_s:.1f} wall | {a_wall:.1f} |")
    print(f"| (a) same run, the chunks' work alone (CPU inside the actors) | {a_audio:.0f} | {a_work_cpu:.1f} CPU | "
          f"{a_work:.1f} |")
    print(f"| (b) plain loop in one process (same chunks and shard writes) | {b_audio:.0f} | {b_cpu:.1f} CPU | {b:.1f} |")
    print(f"| (c) noisereduce alone | {audio_s:.0f} | {c_cpu:.1f} CPU | {c:.1f} |")
    print("\nCPU seconds of run (a) by part:")
    print("| part | CPU s | share |")
    print("|---|---:|---:|")
    for part, sec in cost.items():
        print(f"| {part} | {sec:.1f} | {sec / tree.cpu_s:.0%} |")
    print(f"\n(a)/(b) = {a / b:.2f} (target >= 0.8; by wall x actors {a_wall / b:.2f}, work alone {a_work / b:.2f}); "
          f"(b)/(c) = {b / c:.2f} (target >= 0.8)")
    print(f"JSON: {args.out}")
    return 0


def split_costs(tree: CpuTree, work_cpu_s: float) -> dict[str, float]:
    """The run's CPU seconds by part: chunk work, actor start-up, Ray Data helpers, driver, Ray core."""
    me = os.getpid()
    parts = {"chunk work (inside the actors)": work_cpu_s, "preprocessing actors' start-up and idle": 0.0,
             "Ray Data helper actors and idle workers": 0.0, "driver (stage + Ray Data executor)": 0.0,
             "Ray core (GCS, raylet, dashboard, agents)": 0.0}
    for pid, (name, cpu) in tree.by_pid().items():
        if pid == me:
            parts["driver (stage + Ray Data executor)"] += cpu
        elif name.startswith("ray::MapWorker"):
            parts["preprocessing actors' start-up and idle"] += cpu
        elif name.startswith("ray::"):
            parts["Ray Data helper actors and idle workers"] += cpu
        else:
            parts["Ray core (GCS, raylet, dashboard, agents)"] += cpu
    parts["preprocessing actors' start-up and idle"] -= work_cpu_s
    return parts


if __name__ == "__main__":
    raise SystemExit(main())
