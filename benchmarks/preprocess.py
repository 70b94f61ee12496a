"""Preprocessing throughput: audio-seconds per CPU-second, Ray pipeline vs plain loop vs denoiser.

(a) the Ray Data pipeline end to end (``lssed.preprocess.stage.preprocess`` on an already
    started local Ray: planning, actor start-up, decode/denoise/gain/log-mel, Parquet writes,
    the final row check and the commit), counted per core used: audio / (wall x actors);
(b) the same chain in a plain single-process loop (``process_chunk`` over the manifest),
    audio / CPU seconds of the process;
(c) noisereduce alone on the same decoded utterances, audio / CPU seconds.
Targets (ratios within one run): (a) >= 0.8 (b) and (b) >= 0.8 (c).

The demo corpus (lssed.corpora.demo) is synthesised once into --work and reused; sizes are
chosen to give at least 30 minutes of audio. Prints a table and writes JSON.

    PYTHONPATH=. python benchmarks/preprocess.py --actors 2 --out .benchout/preprocess.json
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import time
from pathlib import Path

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
    args = p.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    for noisy in ("ray", "urllib3"):
        logging.getLogger(noisy).setLevel(logging.WARNING)

    import numpy as np
    import torch

    torch.set_num_threads(1)
    from lssed.config import load_config
    from lssed.preprocess.chain import process_chunk
    from lssed.preprocess.decode import Segment, decode_file
    from lssed.preprocess.denoise import denoise
    from lssed.preprocess.pipeline import warm_up
    from lssed.preprocess.stage import preprocess, read_manifest
    from lssed.runtime import init_ray
    from lssed.storage import Storage

    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    manifest_path = build_manifest(work, args.speakers, args.per_class, args.seed)
    manifest = read_manifest(str(manifest_path))
    cfg = load_config(None, [f"preprocess.denoise={args.denoise}", f"preprocess.num_actors={args.actors}",
                             f"ray.num_cpus={max(args.actors, 2)}"])

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

    # (b) the same chain, plain loop, one process
    c0, w0 = time.process_time(), time.perf_counter()
    res = process_chunk(manifest, cfg)
    b_cpu, b_wall = time.process_time() - c0, time.perf_counter() - w0
    b_audio = res.stats["decoded_audio_s"]

    results = {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, {platform.python_version()}",
        "corpus": {"utterances": len(clips), "audio_min": audio_s / 60, "files": len(by_media),
                   "speakers": args.speakers, "per_class": args.per_class},
        "denoise": args.denoise,
        "c_noisereduce": {"audio_s": audio_s, "cpu_s": c_cpu, "wall_s": c_wall, "audio_per_cpu_s": audio_s / c_cpu},
        "b_plain_loop": {"audio_s": b_audio, "cpu_s": b_cpu, "wall_s": b_wall, "audio_per_cpu_s": b_audio / b_cpu,
                         "cpu_by_step": res.stats["cpu_s"]},
        "load_avg_after_b": os.getloadavg(),
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(results, indent=2))  # partial: (b) and (c)
    log.info("(b) %.1f, (c) %.1f audio-s per CPU-s", b_audio / b_cpu, audio_s / c_cpu)

    # (a) the Ray pipeline, end to end, on a started Ray
    init_ray(cfg.ray)
    w0 = time.perf_counter()
    fs = preprocess(cfg, str(manifest_path), out=Storage(str(work / "out")), force=True)
    a_wall = time.perf_counter() - w0
    a_audio = fs.stats["decoded_audio_s"]
    a_actor_cpu = fs.stats["cpu_s"]["total"]

    results = {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, {platform.python_version()}",
        "load_avg_at_end": os.getloadavg(),
        "corpus": {"utterances": len(clips), "audio_min": audio_s / 60, "files": len(by_media),
                   "speakers": args.speakers, "per_class": args.per_class},
        "denoise": args.denoise,
        "actors": args.actors,
        "c_noisereduce": {"audio_s": audio_s, "cpu_s": c_cpu, "wall_s": c_wall, "audio_per_cpu_s": audio_s / c_cpu},
        "b_plain_loop": {"audio_s": b_audio, "cpu_s": b_cpu, "wall_s": b_wall, "audio_per_cpu_s": b_audio / b_cpu,
                         "cpu_by_step": res.stats["cpu_s"]},
        "a_ray": {"audio_s": a_audio, "wall_s": a_wall, "actors": args.actors,
                  "audio_per_core_s": a_audio / (a_wall * args.actors),
                  "actor_cpu_s": a_actor_cpu, "audio_per_actor_cpu_s": a_audio / a_actor_cpu if a_actor_cpu else 0.0,
                  "rows_out": fs.rows_out, "rows_quarantined": fs.rows_quarantined},
    }
    a = results["a_ray"]["audio_per_core_s"]
    b = results["b_plain_loop"]["audio_per_cpu_s"]
    c = results["c_noisereduce"]["audio_per_cpu_s"]
    results["ratios"] = {"a_over_b": a / b, "b_over_c": b / c, "a_actor_cpu_over_b": results["a_ray"]["audio_per_actor_cpu_s"] / b}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(results, indent=2))

    print(f"\nPreprocessing throughput ({results['date']}, {results['machine']}, load avg {results['load_avg_at_end'][0]:.1f})")
    print(f"corpus: {len(clips)} utterances, {audio_s / 60:.1f} min, {len(by_media)} files; denoise={args.denoise}\n")
    print("| path | audio s | time s | audio-s per CPU-s |")
    print("|---|---:|---:|---:|")
    print(f"| (a) Ray pipeline end to end, {args.actors} actors (per core: wall x actors) | {a_audio:.0f} | "
          f"{a_wall:.1f} wall | {a:.1f} |")
    print(f"| (a') same run, CPU measured inside the actors | {a_audio:.0f} | {a_actor_cpu:.1f} CPU | "
          f"{results['a_ray']['audio_per_actor_cpu_s']:.1f} |")
    print(f"| (b) plain single-process loop | {b_audio:.0f} | {b_cpu:.1f} CPU | {b:.1f} |")
    print(f"| (c) noisereduce alone | {audio_s:.0f} | {c_cpu:.1f} CPU | {c:.1f} |")
    print(f"\n(a)/(b) = {a / b:.2f} (target >= 0.8); (b)/(c) = {b / c:.2f} (target >= 0.8); "
          f"(a')/(b) = {results['ratios']['a_actor_cpu_over_b']:.2f}")
    print(f"JSON: {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
