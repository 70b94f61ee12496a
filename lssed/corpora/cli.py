"""Read a corpus into a manifest of utterances with train/val/test splits.

CORPUS is one of generic, demo, iemocap, meld, ravdess, cremad, daicwoz; ROOT is the corpus's
root directory (for generic and demo: the CSV). Rows that cannot be used (missing media,
end <= start, unknown label, duplicate id, unparsable line) go to MANIFEST.rejects.parquet
beside the manifest with their reason; --strict fails on the first instead. See
docs/corpora.md for each corpus's layout, label mapping and official split."""

from __future__ import annotations

import argparse
from collections import Counter


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from lssed.corpora import ADAPTERS

    parser.add_argument("corpus", metavar="CORPUS", choices=list(ADAPTERS), help=f"one of {', '.join(ADAPTERS)}")
    parser.add_argument("root", metavar="ROOT", help="corpus root directory (generic/demo: the CSV file)")
    parser.add_argument("--out", required=True, metavar="MANIFEST.parquet", help="manifest to write")
    parser.add_argument("--strict", action="store_true", help="fail on the first unusable row instead of rejecting it")
    parser.add_argument("--split", choices=("speaker", "official"), default="speaker",
                        help="speaker: speaker-independent, label-stratified (default); official: the corpus's own")
    parser.add_argument("--seed", type=int, default=0, help="seed of the speaker split (default 0)")
    parser.add_argument("--val-fraction", type=float, default=0.15, help="share of utterances in val (default 0.15)")
    parser.add_argument("--test-fraction", type=float, default=0.2, help="share of utterances in test (default 0.2)")
    parser.add_argument("--test-session", type=int, default=None,
                        help="iemocap --split official: the held-out session (default 5)")


def main(args: argparse.Namespace) -> int:
    from lssed.corpora import prepare, write_manifest

    options = {}
    if args.test_session is not None:
        if args.corpus != "iemocap":
            raise ValueError("--test-session only applies to iemocap")
        options["test_session"] = args.test_session
    prepared = prepare(args.corpus, args.root, strict=args.strict, split=args.split, seed=args.seed,
                       val_fraction=args.val_fraction, test_fraction=args.test_fraction, **options)
    manifest, rejects = write_manifest(prepared, args.out)
    m = prepared.manifest
    print(f"manifest: {manifest} ({m.num_rows} utterances)")
    print(f"rejects:  {rejects} ({prepared.rejects.num_rows} rows)")
    print(f"input rows: {prepared.input_rows} = {m.num_rows} kept + {prepared.rejects.num_rows} rejected")
    splits = prepared.split_counts()
    speakers = {s: len({sp for sp, x in zip(m.column("speaker").to_pylist(), m.column("split").to_pylist()) if x == s})
                for s in splits}
    print("splits (" + prepared.split_protocol + "): " + ", ".join(
        f"{s} {splits.get(s, 0)} utts / {speakers.get(s, 0)} speakers" for s in ("train", "val", "test")))
    print("labels: " + ", ".join(f"{k} {v}" for k, v in sorted(Counter(m.column("label").to_pylist()).items())))
    if prepared.rejects.num_rows:
        reasons = Counter(r.split(":")[0] for r in prepared.rejects.column("reason").to_pylist())
        print("reject reasons: " + "; ".join(f"{k} ({v})" for k, v in reasons.most_common(5)))
    return 0
