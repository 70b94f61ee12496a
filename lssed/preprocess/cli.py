"""Preprocess a manifest into log-mel Parquet shards with Ray Data.

Decodes each utterance's segment from its media file (any container or codec, video or
audio) to 16 kHz mono, denoises it (preprocess.denoise: noisereduce | noisereduce-stationary
| none), applies the gain (preprocess.gain, default x2, clipping counted) and computes the
log-mel (features.*: Hann 1024, hop 512, 128 slaney mel bands, log). Rows that fail go to a
quarantine table with their reason. Output: <out>/features/<digest>/{shards,quarantine,
_SUCCESS.json}; a rerun with the same manifest and config skips, a killed run resumes.

Example:
  lssed preprocess demo/manifest.parquet --out runs/demo --set preprocess.denoise=none
"""

from __future__ import annotations

import argparse
import json

from lssed.cliutil import add_config_arguments, config_from_args


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("manifest", help="manifest parquet (local path, file:// or s3://), from `lssed prepare`")
    parser.add_argument("--out", required=True, metavar="URI",
                        help="storage root (local path, file:// or s3://BUCKET/PREFIX); features go to URI/features/<digest>")
    parser.add_argument("--force", action="store_true", help="redo a committed feature set")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    add_config_arguments(parser)


def main(args: argparse.Namespace) -> int:
    from lssed.preprocess.stage import preprocess
    from lssed.storage import storage_from_config

    cfg = config_from_args(args, [f"storage.root={args.out}"])
    out = storage_from_config(cfg.storage)
    fs = preprocess(cfg, args.manifest, out=out, force=args.force)
    if args.json:
        print(json.dumps({"uri": fs.uri, "digest": fs.digest, "rows_in": fs.rows_in, "rows_out": fs.rows_out,
                          "rows_quarantined": fs.rows_quarantined, "skipped": fs.skipped}, indent=2))
        return 0
    s = fs.stats
    print(fs.uri)
    print(f"rows: {fs.rows_in} in, {fs.rows_out} in shards, {fs.rows_quarantined} quarantined"
          f"{' (already committed: skipped)' if fs.skipped else ''}")
    if s:
        print(f"audio: {s.get('decoded_audio_h', 0):.3f} h decoded, {s.get('output_audio_h', 0):.3f} h in shards; "
              f"clip rate {100 * s.get('clip_rate', 0):.3f}%; {s.get('audio_s_per_cpu_s', 0):.1f} audio-s per CPU-s")
        if s.get("quarantined_by_reason"):
            print("quarantined: " + ", ".join(f"{k}={v}" for k, v in sorted(s["quarantined_by_reason"].items())))
    return 0
