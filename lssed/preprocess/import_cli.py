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

from lssed.cliutil import add_config_arguments, add_force_argument, add_out_argument, config_from_args


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("feature_dir", help="folder of per-utterance .npy spectrograms")
    parser.add_argument("labels", help="label CSV: utt_id,label[,speaker,gender,age,session,split,corpus,path]")
    add_out_argument(parser, "storage root; features go to URI/features/<digest>")
    parser.add_argument("--transposed", action="store_true", help="arrays are (frames, n_mels) instead of (n_mels, frames)")
    add_force_argument(parser, "a committed import")
    add_config_arguments(parser)


def main(args: argparse.Namespace) -> int:
    from lssed.preprocess.import_features import import_features
    from lssed.storage import storage_from_config
    from lssed.validate import validate_config

    cfg = validate_config(config_from_args(args), "import")
    fs = import_features(cfg, args.feature_dir, args.labels, out=storage_from_config(cfg.storage),
                         transposed=args.transposed, force=args.force)
    print(fs.uri)
    print(f"rows: {fs.rows_in} in, {fs.rows_out} in shards, {fs.rows_quarantined} quarantined"
          f"{' (already committed: skipped)' if fs.skipped else ''}")
    reasons = fs.stats.get("quarantined_by_reason") or {}
    if reasons:
        print("quarantined: " + ", ".join(f"{k}={v}" for k, v in sorted(reasons.items())))
    return 0
