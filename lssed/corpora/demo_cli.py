"""Synthesise the embedded demo corpus: espeak-ng speech whose emotion (angry, neutral, happy,
sad, plus a few surprised/bored) is carried by prosody, several speakers, stationary noise,
sessions as mp4/mkv/wav/webm/flac files; writes OUT/corpus.csv in the generic layout
(read it with `lssed prepare demo OUT/corpus.csv --out OUT/manifest.parquet`).

--kind daicwoz writes a DAIC-WOZ-layout corpus instead: synthesized interviews (an interviewer
voice, each participant's own voice, the same words for everyone) in which depression is carried
by prosody only, scaled by each participant's PHQ-8 score, with the AVEC 2017 split lists
(read it with `lssed prepare daicwoz OUT --split official --out OUT/manifest.parquet`)."""

from __future__ import annotations

import argparse
import time


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("out", metavar="OUT", help="directory to write (created; files are overwritten)")
    parser.add_argument("--kind", choices=("emotion", "daicwoz"), default="emotion",
                        help="emotion: the SER demo in the generic CSV layout (default); daicwoz: synthesized "
                             "depression interviews in the DAIC-WOZ layout")
    parser.add_argument("--speakers", type=int, default=6, help="number of speakers (default 6; >= 3 for train/val/test)")
    parser.add_argument("--per-class", type=int, default=6, help="utterances per speaker and benchmark emotion (default 6)")
    parser.add_argument("--seed", type=int, default=0, help="random seed; the same seed gives the same corpus (default 0)")
    parser.add_argument("--participants", type=int, default=24,
                        help="daicwoz: number of interviews (default 24; >= 6, >= 8 with --test-split)")
    parser.add_argument("--turns", type=int, default=6, help="daicwoz: questions per interview (default 6)")
    parser.add_argument("--test-split", action="store_true",
                        help="daicwoz: also write full_test_split.csv (a quarter of the participants; default: "
                             "train and dev lists only, as AVEC 2017 published them)")


def main(args: argparse.Namespace) -> int:
    if args.kind == "daicwoz":
        return _daicwoz(args)
    from lssed.corpora.demo import build_demo_corpus

    t0 = time.perf_counter()
    corpus = build_demo_corpus(args.out, speakers=args.speakers, per_class=args.per_class, seed=args.seed)
    print(f"wrote {corpus.csv}")
    print(f"  {corpus.utterances} utterances, {corpus.speakers} speakers, {corpus.files} media files, "
          f"{corpus.duration_s / 60:.1f} min of audio, built in {time.perf_counter() - t0:.1f} s")
    print("  labels: " + ", ".join(f"{k} {v}" for k, v in corpus.labels.items()))
    print("  files: " + ", ".join(f"{k} {v}" for k, v in corpus.containers.items()))
    return 0


def _daicwoz(args: argparse.Namespace) -> int:
    from lssed.corpora.demo_daicwoz import build_daicwoz_demo
    from lssed.errors import UserError

    t0 = time.perf_counter()
    try:
        corpus = build_daicwoz_demo(args.out, participants=args.participants, turns=args.turns, seed=args.seed,
                                    test_split=args.test_split)
    except ValueError as exc:
        raise UserError(str(exc)) from exc
    print(f"wrote {corpus.root}")
    print(f"  {len(corpus.participants)} interviews x {corpus.turns} turns, {corpus.duration_s / 60:.1f} min of audio, "
          f"built in {time.perf_counter() - t0:.1f} s")
    for part in ("train", "dev", "test"):
        if corpus.count(part):
            print(f"  {part}: {corpus.count(part)} participants, {corpus.count(part, 1)} depressed (PHQ-8 >= 10)")
    return 0
