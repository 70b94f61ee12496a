"""Emotion timelines of new media with a trained model (Ray Data; docs/predict.md).

  lssed predict INPUT... (--run RUN_URI | --checkpoint FILE) --out DIR [--segments CSV]
                [--vad silero|energy|none] [--config YAML] [--set KEY=VALUE ...]

INPUT: media files (any container FFmpeg reads, video or audio), folders (searched
recursively for predict.extensions), or CSVs of segments (path,start,end; paths relative to
the CSV's folder), local or s3://. Media named in a segments CSV (an INPUT or --segments)
are cut at those segments; all others are segmented by voice activity detection (--vad
silero, the default; energy: no model; none: fixed windows over the whole file). Long
regions are cut into windows of predict.max_segment_s overlapping by predict.overlap_s.

The model: --run, a finished run (its validation-selected best_model.pt; classes, feature and
preprocessing settings read from the run; a workflow's storage root, e.g. runs/demo, means its
run with the best validation UA), or --checkpoint: a state_dict from `lssed models
import` (classes with --classes, default angry,neutral,happy,sad; feature/preprocess settings
from --config/--set, default the paper's) or an .onnx / TorchScript file from `lssed models
export` (everything from its metadata).

Writes under --out: timeline.parquet, timeline.csv, summary.csv, plots/<media>.png and
quarantine.parquet (media that could not be used, with the reason; the rest goes on).
Example:
  lssed predict interviews/ --run runs/demo/runs/resnet18-... --out predictions/
"""

from __future__ import annotations

import argparse

from lssed.cliutil import add_config_arguments


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("inputs", nargs="*", metavar="INPUT",
                        help="media files, folders or segment CSVs (local or s3://)")
    model = parser.add_mutually_exclusive_group()
    model.add_argument("--run", metavar="RUN_URI",
                       help="a finished run directory, or a workflow's storage root (its best run by validation UA); "
                       "local or s3://")
    model.add_argument("--checkpoint", metavar="FILE",
                       help="a state_dict (.pt, `lssed models import`) or an export (.onnx / TorchScript)")
    parser.add_argument("--out", metavar="DIR", help="where to write the timeline (local path or s3://BUCKET/PREFIX)")
    parser.add_argument("--segments", metavar="CSV", help="a CSV of segments path,start,end to predict on")
    parser.add_argument("--vad", choices=["silero", "energy", "none"], default=None,
                        help="segmentation of media without given segments (default predict.vad: silero)")
    parser.add_argument("--classes", "--class-names", dest="classes", metavar="A,B,...", default=None,
                        help="--checkpoint state_dict: its classes in output order (default angry,neutral,happy,sad)")
    parser.add_argument("--model", default=None,
                        help="--checkpoint state_dict: the zoo model it fits (default: inferred from its tensors)")
    parser.add_argument("--trust-pickle", action="store_true",
                        help="--checkpoint that is a whole pickled model: allow unpickling (runs code from the file)")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    add_config_arguments(parser)


def main(args: argparse.Namespace) -> int:
    import json

    from lssed.cliutil import config_from_args
    from lssed.errors import UserError
    from lssed.predict.pipeline import predict
    from lssed.storage import storage_from_config
    from lssed.validate import validate_config

    if not args.out:
        raise UserError("--out DIR is required: where to write timeline.parquet, summary.csv and the plots")
    if not args.inputs and not args.segments:
        raise UserError("nothing to predict on: give media files, folders or a segments CSV (INPUT or --segments)")
    extra = [f"predict.vad={args.vad}"] if args.vad else []
    # --out names the output folder, not a storage root: keep it out of the config
    cfg = config_from_args(argparse.Namespace(config=args.config, overrides=args.overrides), extra)
    cfg = validate_config(cfg, "predict")
    classes = tuple(c.strip() for c in args.classes.split(",") if c.strip()) if args.classes else None
    out = storage_from_config(cfg.storage, args.out)
    res = predict(cfg, args.inputs, out=out, run=args.run, checkpoint=args.checkpoint, segments=args.segments,
                  classes=classes, model=args.model, trust_pickle=args.trust_pickle)
    if args.json:
        print(json.dumps({"out": res.out, "media": res.media, "done": res.done, "quarantined": res.quarantined,
                          "windows": res.windows, "quarantine_rows": res.quarantine_rows}, indent=2))
        return 0
    print(res.out)
    print(f"media: {res.media} in, {res.done} predicted, {res.quarantined} quarantined; {res.windows} windows"
          + (f"; {res.quarantine_rows} quarantine rows (quarantine.parquet)" if res.quarantine_rows else ""))
    return 0
