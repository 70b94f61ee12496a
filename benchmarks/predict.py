"""Predict throughput: audio-seconds per CPU-second of `lssed predict` vs the preprocessing chain alone.

On the same demo media files (lssed.corpora.demo, synthesised once into --work), audio
seconds are the files' decoded durations in every row, so the rows compare the cost of one
hour of media:

(c) the preprocessing chain alone, in one process: each file decoded whole to 16 kHz and
    run through ``process_samples`` (denoise -> gain -> log-mel), no VAD, no model;
(p) the whole predict path's work, in one process: ``prepare_media`` (decode, silero VAD on
    the 16 kHz audio before denoising, windows, the chain per window) and the model
    (resnet18, untrained weights: speed does not depend on them) on every window, batched as
    the model actors batch;
(u) the chain as the preprocess stage runs it: the corpus CSV's utterances, each file
    opened once (audio seconds still the files' durations);
(v) the VAD alone on the decoded files;
(r) `lssed predict` on an already started local Ray, end to end (actor start-up, Ray Data,
    outputs and plots), by the CPU time of every process of the Ray session
    (``cputree.CpuTree``); its fixed start-up cost dominates on a few minutes of media.
Goal (issue 14): (p) costs at most 1.5x (c), i.e. (p) / (c) in audio-s per CPU-s >= 0.67.

    PYTHONPATH=. python benchmarks/predict.py --out .benchout/predict.json
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from cputree import CpuTree  # noqa: E402

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("RAY_AUTH_MODE", "disabled")
os.environ.setdefault("RAY_DATA_DISABLE_PROGRESS_BARS", "1")

log = logging.getLogger("bench.predict")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--work", default=".benchout/predict", help="corpus cache and output folder")
    p.add_argument("--speakers", type=int, default=6)
    p.add_argument("--per-class", type=int, default=4)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--vad", default="silero", choices=("silero", "energy", "none"))
    p.add_argument("--actors", type=int, default=2, help="(r): CPU media actors")
    p.add_argument("--skip-ray", action="store_true", help="only (c) and (p)")
    p.add_argument("--out", default=".benchout/predict.json", help="JSON results")
    args = p.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    for noisy in ("ray", "urllib3"):
        logging.getLogger(noisy).setLevel(logging.WARNING)

    import torch

    torch.set_num_threads(1)
    from lssed.config import load_config
    from lssed.corpora.demo import make_demo_corpus
    from lssed.models import create_model
    from lssed.predict.inputs import MediaInput, list_media
    from lssed.predict.model import load_predictor, spec_from_file
    from lssed.predict.pipeline import predict_windows, prepare_media, result_rows, rows_table
    from lssed.preprocess.chain import process_samples
    from lssed.preprocess.decode import Segment, decode_file
    from lssed.preprocess.pipeline import warm_up
    from lssed.storage import Storage

    work = Path(args.work).resolve()
    work.mkdir(parents=True, exist_ok=True)
    corpus = work / f"corpus-{args.speakers}x{args.per_class}-{args.seed}"
    if not (corpus / "corpus.csv").exists():
        make_demo_corpus(corpus, speakers=args.speakers, per_class=args.per_class, seed=args.seed)
    cfg = load_config(None, [f"predict.vad={args.vad}", f"predict.decode_actors={args.actors}",
                             f"ray.num_cpus={args.actors + 1}"])
    media = list_media(Storage(str(corpus)), cfg.predict.extensions)
    checkpoint = work / "resnet18-untrained.pt"
    torch.manual_seed(0)
    torch.save(create_model("resnet18", num_classes=4).state_dict(), checkpoint)
    spec = spec_from_file(str(checkpoint), cfg)
    chain_cfg = spec.chain_config()
    predictor = load_predictor(spec, device="cpu", threads=1)

    decoded = {m: decode_file(m, [Segment(None, None)])[0] for m in media}
    audio_s = sum(x.size for x in decoded.values()) / 16000
    log.info("%d files, %.1f min of audio", len(media), audio_s / 60)
    warm_up(chain_cfg)

    # (c) the chain alone: decode + denoise + gain + log-mel over each whole file
    c0, w0 = time.process_time(), time.perf_counter()
    for m in media:
        (x,) = decode_file(m, [Segment(None, None)])
        process_samples(x, chain_cfg)
    c_cpu, c_wall = time.process_time() - c0, time.perf_counter() - w0

    # (u) the chain as preprocessing runs it: the corpus's labelled utterances, each file opened once
    import csv as _csv

    with open(corpus / "corpus.csv") as fh:
        spans: dict[str, list[Segment]] = {}
        for r in _csv.DictReader(fh):
            media_path = str((corpus / r["path"]).resolve())
            spans.setdefault(media_path, []).append(Segment(float(r["start"]), float(r["end"])))
    c0 = time.process_time()
    for m, segs in spans.items():
        for x in decode_file(m, sorted(segs, key=lambda g: g.start_s)):
            process_samples(x, chain_cfg)
    u_cpu = time.process_time() - c0

    # the predict path's steps apart: VAD on the decoded audio, the model on every window
    from lssed.predict.vad import speech_regions

    c0 = time.process_time()
    for x in decoded.values():
        speech_regions(x, 16000, args.vad, cfg.predict)
    v_cpu = time.process_time() - c0

    # (p) the predict path's work in one process
    predict_windows(predictor, rows_table(result_rows(prepare_media(MediaInput(media[0]), chain_cfg, cfg.predict,
                                                                    method=args.vad))), 32)  # warm-up
    steps = {"prepare": 0.0, "model": 0.0}
    windows = 0
    speech_s = 0.0
    c0, w0 = time.process_time(), time.perf_counter()
    for m in media:
        t = time.process_time()
        res = prepare_media(MediaInput(m), chain_cfg, cfg.predict, method=args.vad)
        steps["prepare"] += time.process_time() - t
        t = time.process_time()
        predict_windows(predictor, rows_table(result_rows(res)), cfg.predict.batch_size)
        steps["model"] += time.process_time() - t
        windows += len(res.windows)
        speech_s += sum(e - s for s, e in res.regions)
    p_cpu, p_wall = time.process_time() - c0, time.perf_counter() - w0

    results = {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, {platform.python_version()}, torch "
                   f"{torch.__version__}",
        "media": {"files": len(media), "audio_min": audio_s / 60, "speech_min": speech_s / 60, "windows": windows},
        "vad": args.vad, "model": "resnet18",
        "c_chain": {"cpu_s": c_cpu, "wall_s": c_wall, "audio_per_cpu_s": audio_s / c_cpu},
        "u_chain_utterances": {"cpu_s": u_cpu, "audio_per_cpu_s": audio_s / u_cpu},
        "vad_alone": {"cpu_s": v_cpu, "audio_per_cpu_s": audio_s / v_cpu if v_cpu else None},
        "p_predict": {"cpu_s": p_cpu, "wall_s": p_wall, "audio_per_cpu_s": audio_s / p_cpu,
                      "cpu_by_step": steps},
    }
    results["p_over_c"] = results["p_predict"]["audio_per_cpu_s"] / results["c_chain"]["audio_per_cpu_s"]

    if not args.skip_ray:
        from lssed.predict.pipeline import run_predict
        from lssed.runtime import init_ray

        init_ray(cfg.ray, include_dashboard=False)
        time.sleep(3.0)
        items = [MediaInput(m) for m in media]
        with CpuTree() as tree:
            res = run_predict(items, spec, cfg.predict, out=Storage(str(work / "out")), use_gpu=False)
        results["r_ray"] = {"cpu_s": tree.cpu_s, "wall_s": tree.wall_s, "audio_per_cpu_s": audio_s / tree.cpu_s,
                            "windows": res.windows, "done": res.done, "quarantined": res.quarantined,
                            "cpu_by_process": tree.by_name()}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(results, indent=2))

    print(f"\nPredict throughput ({results['date']}, {results['machine']})")
    print(f"media: {len(media)} demo files, {audio_s / 60:.1f} min ({speech_s / 60:.1f} min speech by {args.vad} VAD), "
          f"{windows} windows; model resnet18 on CPU, 1 thread\n")
    print("| path | CPU s | audio-s per CPU-s |")
    print("|---|---:|---:|")
    print(f"| (c) chain alone (decode, denoise, gain, log-mel; whole files) | {c_cpu:.1f} | "
          f"{results['c_chain']['audio_per_cpu_s']:.1f} |")
    print(f"| (u) chain as preprocessing runs it (the corpus's utterances) | {u_cpu:.1f} | "
          f"{results['u_chain_utterances']['audio_per_cpu_s']:.1f} |")
    print(f"| (v) {args.vad} VAD alone on the decoded files | {v_cpu:.1f} | "
          f"{audio_s / v_cpu if v_cpu else float('inf'):.1f} |")
    print(f"| (p) predict path, one process (VAD, windows, chain, resnet18) | {p_cpu:.1f} | "
          f"{results['p_predict']['audio_per_cpu_s']:.1f} |")
    if "r_ray" in results:
        r = results["r_ray"]
        print(f"| (r) `lssed predict` on local Ray, {args.actors} media actors, all Ray processes | {r['cpu_s']:.1f} | "
              f"{r['audio_per_cpu_s']:.1f} |")
    print(f"\n(p) by step: prepare (decode, VAD, chain) {steps['prepare']:.1f} CPU s, "
          f"model {steps['model']:.1f} CPU s; "
          f"(p)/(c) = {results['p_over_c']:.2f} (goal >= 0.67: at most 1.5x the chain's cost)")
    print(f"JSON: {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
