"""Synthesise the embedded demo corpus: espeak-ng speech whose emotion (angry, neutral, happy,
sad, plus a few surprised/bored) is carried by prosody, several speakers, stationary noise,
sessions as mp4/mkv/wav/webm/flac files; writes OUT/corpus.csv in the generic layout
(read it with `lssed prepare demo OUT/corpus.csv --out OUT/manifest.parquet`)."""

from __future__ import annotations

import argparse
import time


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("out", metavar="OUT", help="directory to write (created; files are overwritten)")
    parser.add_argument("--speakers", type=int, default=6, help="number of speakers (default 6; >= 3 for train/val/test)")
    parser.add_argument("--per-class", type=int, default=6, help="utterances per speaker and benchmark emotion (default 6)")
    parser.add_argument("--seed", type=int, default=0, help="random seed; the same seed gives the same corpus (default 0)")


def main(args: argparse.Namespace) -> int:
    from lssed.corpora.demo import build_demo_corpus

    t0 = time.perf_counter()
    corpus = build_demo_corpus(args.out, speakers=args.speakers, per_class=args.per_class, seed=args.seed)
    print(f"wrote {corpus.csv}")
    print(f"  {corpus.utterances} utterances, {corpus.speakers} speakers, {corpus.files} media files, "
          f"{corpus.duration_s / 60:.1f} min of audio, built in {time.perf_counter() - t0:.1f} s")
    print("  labels: " + ", ".join(f"{k} {v}" for k, v in corpus.labels.items()))
    print("  files: " + ", ".join(f"{k} {v}" for k, v in corpus.containers.items()))
    return 0
