"""Preprocess a manifest into log-mel Parquet shards with Ray Data.

Decodes each utterance's segment from its media file (any container or codec, video or
audio) to 16 kHz mono, denoises it (preprocess.denoise: noisereduce | noisereduce-stationary
| torchgate | none), applies the gain (preprocess.gain, default x2, clipping counted) and computes the
log-mel (features.*: Hann 1024, hop 512, 128 slaney mel bands, log). Rows that fail go to a
quarantine table with their reason. Output: <out>/features/<digest>/{shards,quarantine,
_SUCCESS.json}; a rerun with the same manifest and config skips, a killed run resumes.

Settings are checked before Ray starts. --out defaults to storage.root. Example:
  lssed preprocess demo/manifest.parquet --out runs/demo --set preprocess.denoise=none
"""

from __future__ import annotations

import argparse
import json

from lssed.cliutil import add_config_arguments, add_force_argument, add_out_argument, config_from_args


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("manifest", help="manifest parquet (local path, file:// or s3://), from `lssed prepare`")
    add_out_argument(parser, "storage root; features go to URI/features/<digest>")
    add_force_argument(parser, "a committed feature set")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    add_config_arguments(parser)


def main(args: argparse.Namespace) -> int:
    from lssed.preprocess.stage import preprocess
    from lssed.storage import storage_from_config
    from lssed.validate import validate_config

    cfg = validate_config(config_from_args(args), "preprocess")
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
