"""Sweep models x STFT windows x hops x learning rates x crop lengths with Ray Tune.

Each trial is a normal training run (one TorchTrainer) in <out>/runs/<run name>/, named
tune-<sweep>-<model>-w<win>-h<hop>-lr<lr>-c<crop>-s<seed>; ASHA stops weak trials on
validation UA; the best trial is chosen on validation UA only. The Tune experiment lives in
<out>/tune/<sweep>/ (--out default storage.root): rerunning the same command after an
interruption resumes it; --force deletes the experiment and its trial runs and starts again.
A trial whose training gave up is retried train.max_failures times.

Space: tune.models, tune.windows (samples; paper: 400 = 25 ms, 1024 = 64 ms), tune.hops
(empty: one hop for every window), tune.lrs, tune.crop_seconds / tune.crop_frames, tune.search (grid|random),
tune.num_samples, tune.epochs, tune.max_concurrent_trials (empty: what the cluster fits).
Example: lssed tune runs/demo/features/<digest> --out runs/demo \\
           --set 'tune.models=[resnet18,vgg11]' --set 'tune.windows=[400,1024]' --set tune.epochs=1
"""

from __future__ import annotations

import argparse

from lssed.cliutil import add_config_arguments, add_force_argument, add_out_argument, config_from_args


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("features_uri", metavar="FEATURES_URI", help="<out>/features/<digest> from `lssed preprocess`")
    add_out_argument(parser, "storage root for runs/ and tune/")
    add_force_argument(parser, "the sweep (its Tune experiment and trial runs)")
    add_config_arguments(parser)


def main(args: argparse.Namespace) -> int:
    from lssed.storage import storage_from_config
    from lssed.tune.sweep import tune
    from lssed.validate import validate_config

    cfg = validate_config(config_from_args(args), "tune")
    result = tune(cfg, args.features_uri, out=storage_from_config(cfg.storage), force=args.force)
    print(f"sweep {result.sweep_name}{' (resumed)' if result.resumed else ''}: {len(result.trials)} trial(s), "
          f"{result.max_concurrent_trials} at a time; experiment {result.experiment_uri}")
    print(result.table_markdown())
    if result.best_run_name:
        print(f"best (validation UA): {result.best_run_name} {100 * result.best_val_ua:.2f}")
    for err in result.errors:
        print(f"error: {err}")
    return 0 if result.best_run_name and not result.errors else 1
