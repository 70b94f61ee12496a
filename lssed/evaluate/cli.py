"""Score a finished run (or an imported checkpoint) on another feature set: cross-corpus evaluation.

RUN_URI is a run directory (<out>/runs/<run name>); FEATURES_URI a committed feature set
(<out>/features/<digest>), e.g. another corpus's. The run's STFT settings are used (log-mel
is recomputed from the stored waveforms where the feature set's differ). Writes
<run>/evaluations/<corpus>.json and <corpus>.predictions.parquet; the report shows them as
test@<corpus> (Table 4).

  lssed evaluate runs/x/runs/resnet18-ab12cd34-0123456789 runs/y/features/<digest>
  lssed evaluate runs/x/runs/pyresnet-import imported/features --checkpoint pyresnet.pt --model pyresnet
"""

from __future__ import annotations

import argparse

from lssed.cliutil import add_config_arguments, config_from_args


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run_uri", metavar="RUN_URI", help="a run directory (<out>/runs/<name>), local or s3://")
    parser.add_argument("features_uri", metavar="FEATURES_URI", help="a committed feature set (local or s3://)")
    parser.add_argument("--split", default="test", choices=("train", "val", "test"),
                        help="which split of FEATURES_URI to score (default test)")
    parser.add_argument("--checkpoint", default=None, metavar="FILE",
                        help="score this imported checkpoint (`lssed models import`) instead of the run's selected one")
    parser.add_argument("--model", default=None, help="the architecture of --checkpoint (default: the run's, else inferred)")
    parser.add_argument("--corpus", default=None, metavar="NAME",
                        help="the test corpus's name in file names and tables (default: the shards' corpus value)")
    add_config_arguments(parser)


def main(args: argparse.Namespace) -> int:
    from lssed.evaluate.scoring import evaluate_on

    cfg = config_from_args(args)
    res = evaluate_on(args.run_uri, args.features_uri, split=args.split, checkpoint=args.checkpoint,
                      model=args.model, corpus=args.corpus, storage_cfg=cfg.storage, use_gpu=cfg.train.use_gpu,
                      amp=cfg.train.amp)
    m = res.metrics
    print(f"run      {res.run_name} ({res.model}, trained on {res.train_corpus or 'unknown'})")
    print(f"on       {res.corpus} {res.split} ({m.n} utterances{', log-mel recomputed' if res.features_recomputed else ''})")
    print(f"WA {m.wa:.4f}  UA {m.ua:.4f}  macro-F1 {m.macro_f1:.4f}")
    print(f"wrote    {res.json_uri}")
    return 0
