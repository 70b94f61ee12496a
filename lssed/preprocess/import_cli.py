"""Import precomputed spectrograms (e.g. LSSED's released feature set) as feature shards.

FEATURE_DIR holds one .npy array per utterance, <utt_id>.npy, shaped (n_mels, frames), or
(frames, n_mels) with --transposed. LABELS.csv has a header with at least utt_id,label and
optionally speaker,gender,age,session,split,corpus,path (path: the array's file relative to
FEATURE_DIR). The shards get the same schema as `lssed preprocess` with no waveform, under
<out>/features/<digest>; unreadable or misshapen arrays are quarantined with the reason.
Set features.* (e.g. --set features.log=none) to say what the arrays hold.

Example:
  lssed import-features lssed_spectrogram/ labels.csv --out runs/lssed --transposed
"""

from __future__ import annotations

import argparse

from lssed.cliutil import add_config_arguments, config_from_args


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("feature_dir", help="folder of per-utterance .npy spectrograms")
    parser.add_argument("labels", help="label CSV: utt_id,label[,speaker,gender,age,session,split,corpus,path]")
    parser.add_argument("--out", required=True, metavar="URI", help="storage root (local path or s3://BUCKET/PREFIX)")
    parser.add_argument("--transposed", action="store_true", help="arrays are (frames, n_mels) instead of (n_mels, frames)")
    parser.add_argument("--force", action="store_true", help="redo a committed import")
    add_config_arguments(parser)


def main(args: argparse.Namespace) -> int:
    from lssed.preprocess.import_features import import_features
    from lssed.storage import storage_from_config

    cfg = config_from_args(args, [f"storage.root={args.out}"])
    fs = import_features(cfg, args.feature_dir, args.labels, out=storage_from_config(cfg.storage),
                         transposed=args.transposed, force=args.force)
    print(fs.uri)
    print(f"rows: {fs.rows_in} in, {fs.rows_out} in shards, {fs.rows_quarantined} quarantined"
          f"{' (already committed: skipped)' if fs.skipped else ''}")
    reasons = fs.stats.get("quarantined_by_reason") or {}
    if reasons:
        print("quarantined: " + ", ".join(f"{k}={v}" for k, v in sorted(reasons.items())))
    return 0
