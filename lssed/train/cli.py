"""Train one model on preprocessed shards with Ray Train (the paper's recipe from train.*).

FEATURES_URI is the directory `lssed preprocess` printed (<out>/features/<digest>). The run
goes to <out>/runs/<run name>/ (results.json, predictions.parquet, checkpoints; --out default
storage.root); rerunning the same run name resumes it, and a finished run is reported, not
retrained (--force deletes it and trains it again).

  lssed train runs/demo/features/<digest> --model resnet18 --out runs/demo --set train.epochs=10
"""

from __future__ import annotations

import argparse

from lssed.cliutil import add_config_arguments, add_force_argument, add_out_argument, config_from_args


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("features_uri", metavar="FEATURES_URI", help="a committed feature set (local path or s3://)")
    parser.add_argument("--model", default=None, help="a zoo model (see `lssed models`); default train.model")
    add_out_argument(parser, "storage root for runs/")
    parser.add_argument("--run-name", default=None, help="default: <model>-<features>-<settings digest>")
    add_force_argument(parser, "a finished (or interrupted) run of the same name")
    add_config_arguments(parser)


def main(args: argparse.Namespace) -> int:
    from lssed.storage import storage_from_config
    from lssed.train.stage import train
    from lssed.validate import validate_config

    model = args.model or None
    cfg = validate_config(config_from_args(args), "train", models=[model] if model else None)
    out = storage_from_config(cfg.storage)
    results = train(cfg, args.features_uri, out=out, model=model, run_name=args.run_name, force=args.force)
    test = results.evaluations["test"]
    print(f"run      {out.join_uri('runs', results.run_name)}")
    print(f"model    {results.model} ({results.num_params:,} parameters), {results.epochs_completed} epochs, "
          f"best epoch {results.best_epoch} (validation UA)")
    print(f"{'split':<6} {'n':>6} {'WA':>7} {'UA':>7} {'F1':>7}")
    for name, m in (("val", results.val), ("test", test)):
        print(f"{name:<6} {m.n:>6} {m.wa:>7.4f} {m.ua:>7.4f} {m.macro_f1:>7.4f}")
    return 0
