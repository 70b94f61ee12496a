"""Denoisers compared: output departure (log-mel) and audio-seconds per CPU-second.

On the demo corpus's decoded utterances (lssed.corpora.demo, synthesised once into --work),
each denoiser of ``preprocess.denoise`` runs on one CPU thread:

- ``noisereduce`` (the default; numpy, non-stationary), one utterance at a time, as lssed
  computes it (``lssed.preprocess.spectralgate``);
- ``noisereduce-library``: ``noisereduce.reduce_noise`` itself with the same defaults (not a
  ``preprocess.denoise`` value): the speed the default had before lssed computed it, and a
  departure that must be float rounding;
- ``noisereduce-stationary`` (numpy), one at a time: the spread between noisereduce's own
  two modes is the scale against which a departure is judged;
- ``torchgate`` batched as ``process_chunk`` runs it (all utterances of a chunk at once),
  and one utterance at a time (``torchgate-single``);
- ``none`` (no denoising), for scale.

Each output goes through the rest of the chain (gain, int16, log-mel, as ``process_samples``)
and is compared with ``noisereduce``'s log-mel per utterance: mean absolute difference of the
log-mels, and their Pearson correlation. Speed is audio-seconds per CPU-second of the denoiser
alone (decoding untimed); ratios within one run are what to read on a shared machine.
Prints a table and writes JSON.

    PYTHONPATH=. python benchmarks/denoise.py --out .benchout/denoise.json
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
os.environ.setdefault("OMP_NUM_THREADS", "1")

log = logging.getLogger("bench.denoise")

REFERENCE = "noisereduce"
METHODS = ("noisereduce", "noisereduce-library", "noisereduce-stationary", "torchgate", "torchgate-single", "none")


def logmel_departure(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    """(mean |a - b|, Pearson correlation) of two log-mels of one utterance."""
    a64, b64 = a.astype(np.float64).ravel(), b.astype(np.float64).ravel()
    return float(np.mean(np.abs(a64 - b64))), float(np.corrcoef(a64, b64)[0, 1])


def chain_logmel(clean: np.ndarray, cfg: Any) -> np.ndarray:
    """The rest of the chain after the denoiser, as process_samples runs it."""
    from lssed.preprocess.chain import apply_gain, compute_logmel, from_int16, to_int16

    gained, _ = apply_gain(clean, cfg.preprocess.gain)
    return compute_logmel(from_int16(to_int16(gained)), cfg.features)


def run_method(method: str, clips: Sequence[np.ndarray], sample_rate: int) -> tuple[list[np.ndarray], float]:
    """(denoised clips, CPU seconds) of one method over all clips."""
    from lssed.preprocess.denoise import denoise, denoise_batch

    t = time.process_time()
    if method == "torchgate":
        out = denoise_batch(list(clips), sample_rate, "torchgate", device="cpu")
    elif method == "torchgate-single":
        out = [denoise_batch([c], sample_rate, "torchgate", device="cpu")[0] for c in clips]
    elif method == "noisereduce-library":
        import noisereduce

        out = [np.asarray(noisereduce.reduce_noise(y=c, sr=sample_rate, n_jobs=1), np.float32) for c in clips]
    else:
        out = [denoise(c, sample_rate, method) for c in clips]
    return out, time.process_time() - t


def summarise(values: Sequence[float]) -> dict[str, float]:
    v = np.asarray(values, dtype=np.float64)
    return {"mean": float(v.mean()), "median": float(np.median(v)), "min": float(v.min()), "max": float(v.max())}


def compare(clips: Sequence[np.ndarray], cfg: Any, methods: Sequence[str] = METHODS, repeats: int = 1) -> dict[str, Any]:
    """Departure from the reference and speed of every method (see the module docstring)."""
    sr = cfg.preprocess.sample_rate
    audio_s = sum(c.size for c in clips) / sr
    for m in methods:  # warm-up: imports, FFT plans, the cached gate
        run_method(m, clips[:2], sr)
    outputs: dict[str, list[np.ndarray]] = {}
    cpu: dict[str, float] = {}
    for _ in range(repeats):  # interleaved, so that load on a shared machine hits all alike
        for m in methods:
            outputs[m], t = run_method(m, clips, sr)
            cpu[m] = min(cpu.get(m, float("inf")), t)
    ref = [chain_logmel(c, cfg) for c in outputs[REFERENCE]]
    results: dict[str, Any] = {}
    for m in methods:
        mels = ref if m == REFERENCE else [chain_logmel(c, cfg) for c in outputs[m]]
        dep = [logmel_departure(r, x) for r, x in zip(ref, mels)]
        results[m] = {
            "cpu_s": cpu[m],
            "audio_s_per_cpu_s": audio_s / max(cpu[m], 1e-9),
            "speed_vs_reference": cpu[REFERENCE] / max(cpu[m], 1e-9),
            "mean_abs_logmel_diff": summarise([d for d, _ in dep]),
            "logmel_correlation": summarise([c for _, c in dep]),
            "finite": bool(all(np.all(np.isfinite(x)) for x in mels)),
        }
    return {"utterances": len(clips), "audio_s": audio_s, "methods": results}


def decode_demo(work: Path, speakers: int, per_class: int, seed: int) -> list[np.ndarray]:
    from preprocess import build_manifest  # benchmarks/preprocess.py

    from lssed.preprocess.decode import Segment, decode_file
    from lssed.preprocess.stage import read_manifest

    rows = read_manifest(str(build_manifest(work, speakers, per_class, seed))).to_pylist()
    by_media: dict[str, list[dict]] = {}
    for r in rows:
        by_media.setdefault(r["media_uri"], []).append(r)
    clips = []
    for media, rs in by_media.items():
        clips += [x for x in decode_file(media, [Segment(r["start_s"], r["end_s"]) for r in rs])
                  if isinstance(x, np.ndarray)]
    return clips


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--work", default=".benchout/preprocess", help="demo corpus cache (shared with preprocess.py)")
    p.add_argument("--speakers", type=int, default=6)
    p.add_argument("--per-class", type=int, default=4)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--repeats", type=int, default=2, help="timed passes per method (the fastest counts)")
    p.add_argument("--out", default=".benchout/denoise.json", help="JSON results")
    args = p.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s", datefmt="%H:%M:%S")

    import torch

    torch.set_num_threads(1)
    from lssed.config import load_config

    cfg = load_config(None, [])
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    clips = decode_demo(work, args.speakers, args.per_class, args.seed)
    res = compare(clips, cfg, repeats=args.repeats)
    res |= {"date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"), "cpu": platform.processor()
            or platform.machine(), "cores": os.cpu_count(), "torch_threads": torch.get_num_threads(),
            "corpus": {"speakers": args.speakers, "per_class": args.per_class, "seed": args.seed}}
    print(f"{res['utterances']} utterances, {res['audio_s']:.1f} s of audio; departure from {REFERENCE} per utterance")
    print(f"{'method':<24}{'audio-s/CPU-s':>14}{'x ref':>9}{'|dlogmel| mean':>16}{'max':>8}"
          f"{'corr median':>13}{'min':>8}")
    for m, r in res["methods"].items():
        d, c = r["mean_abs_logmel_diff"], r["logmel_correlation"]
        print(f"{m:<24}{r['audio_s_per_cpu_s']:>14.4g}{r['speed_vs_reference']:>9.4g}{d['mean']:>16.3f}{d['max']:>8.3f}"
              f"{c['median']:>13.4f}{c['min']:>8.4f}")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(res, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
