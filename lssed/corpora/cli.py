"""Read a corpus into a manifest of utterances with train/val/test splits.

CORPUS is one of generic, demo, iemocap, meld, ravdess, cremad, daicwoz; ROOT is the corpus's
root directory (for generic and demo: the CSV). Rows that cannot be used (missing media,
end <= start, unknown label, duplicate id, unparsable line, a path outside the root, ...) go
to MANIFEST.rejects.parquet beside the manifest with their reason and line; --strict fails on
the first instead. The rejects file is always written; when every row is rejected the
command exits with status 2. See docs/corpora.md for each corpus's layout, label mapping,
official split and the reject codes."""

from __future__ import annotations

import argparse
import logging
from collections import Counter

log = logging.getLogger(__name__)


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
    parser.add_argument("--encoding", default="auto",
                        help="generic/demo: the CSV's encoding (default auto: UTF-8, else Windows-1252/Latin-1 "
                             "with a warning)")
    parser.add_argument("--allow-outside-root", action="store_true",
                        help="generic/demo: accept media paths outside the CSV's folder (.. or absolute)")


def main(args: argparse.Namespace) -> int:
    from lssed.corpora import prepare, reject_summary, write_manifest

    options = {}
    if args.test_session is not None:
        if args.corpus != "iemocap":
            raise ValueError("--test-session only applies to iemocap")
        options["test_session"] = args.test_session
    prepared = prepare(args.corpus, args.root, strict=args.strict, split=args.split, seed=args.seed,
                       val_fraction=args.val_fraction, test_fraction=args.test_fraction, encoding=args.encoding,
                       allow_outside_root=args.allow_outside_root, **options)
    manifest, rejects = write_manifest(prepared, args.out)
    m = prepared.manifest
    print(f"manifest: {manifest} ({m.num_rows} utterances)")
    print(f"rejects:  {rejects} ({prepared.rejects.num_rows} rows)")
    print(f"input rows: {prepared.input_rows} = {m.num_rows} kept + {prepared.rejects.num_rows} rejected")
    reasons = reject_summary(prepared.rejects.column("reason").to_pylist())
    if m.num_rows == 0:
        log.error("%s: all %d rows were rejected (%s); the reasons, with their lines, are in %s", args.corpus,
                  prepared.input_rows, reasons, rejects)
        return 2
    splits = prepared.split_counts()
    speakers = {s: len({sp for sp, x in zip(m.column("speaker").to_pylist(), m.column("split").to_pylist()) if x == s})
                for s in splits}
    print("splits (" + prepared.split_protocol + "): " + ", ".join(
        f"{s} {splits.get(s, 0)} utts / {speakers.get(s, 0)} speakers" for s in ("train", "val", "test")))
    print("labels: " + ", ".join(f"{k} {v}" for k, v in sorted(Counter(m.column("label").to_pylist()).items())))
    if prepared.rejects.num_rows:
        print(f"reject reasons: {reasons} (each with its line in {rejects})")
    return 0
