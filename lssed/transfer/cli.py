"""Depression detection from utterance embeddings (the paper's Table 6): SER runs vs baselines.

FEATURES_URI is a committed feature set of a depression corpus (DAIC-WOZ, or the synthetic
`lssed demo-corpus --kind daicwoz` interviews) with the participant in `speaker`, PHQ-8 binary
in `label` and the PHQ-8 score in `score`. Each --run (a finished SER run) embeds every
utterance (the pooled penultimate features, `lssed embed`); each baseline embeds the same
shards' waveforms. Per participant: mean and std of its embeddings (+ its utterance count);
logistic regression and a linear SVM (PHQ-8 binary) and ridge (PHQ-8 score) with
hyperparameters chosen by participant-grouped CV on the training participants, scored once on
dev with bootstrap 95% intervals. Writes <out>/transfer/<name>/results.json (the report's
Table 6) and the embedding tables under <out>/embeddings/.

  lssed transfer runs/daic/features/<digest> --run runs/demo/runs/resnet18-ab12cd34-0123 --out runs/daic
  lssed transfer runs/daic/features/<digest> --run RUN --baselines mfcc,wav2vec2 --set transfer.wav2vec2_weights=w.pth
"""

from __future__ import annotations

import argparse

from lssed.cliutil import add_config_arguments, add_out_argument, config_from_args


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("features_uri", metavar="FEATURES_URI", help="a committed feature set (local or s3://)")
    parser.add_argument("--run", dest="run_uris", action="append", default=[], metavar="RUN_URI",
                        help="a finished SER run directory (<out>/runs/<name>); repeat for several")
    parser.add_argument("--baselines", default=None, metavar="LIST",
                        help="comma-separated baselines out of mfcc,wav2vec2,egemaps ('' for none; default "
                             "transfer.baselines from the config: mfcc)")
    parser.add_argument("--name", default=None, help="transfer/<name>/ (default: <corpus>-<digest of the settings>)")
    add_out_argument(parser, "where transfer/<name>/ and embeddings/ are written")
    parser.add_argument("--force", action="store_true", help="recompute embeddings already in storage")
    add_config_arguments(parser)


def main(args: argparse.Namespace) -> int:
    from lssed.config import replace_section
    from lssed.storage import storage_from_config
    from lssed.transfer.stage import run_transfer

    cfg = config_from_args(args)
    changes: dict = {}
    if args.baselines is not None:
        changes["baselines"] = [b.strip() for b in args.baselines.split(",") if b.strip()]
    if args.name:
        changes["name"] = args.name
    if args.force:
        changes["force"] = True
    if changes:
        cfg = replace_section(cfg, "transfer", **changes)
    res = run_transfer(cfg, args.features_uri, args.run_uris, storage_from_config(cfg.storage))
    print(f"on       {res.corpus} ({res.features_uri}): {res.n_train} training, {res.n_dev} dev participants "
          f"(dev = split {res.dev_split})")
    for s in res.sets:
        for row in s.scores:
            m = row["metrics"]
            cells = "  ".join(f"{k} {m[k]:.3f}" for k in ("f1_depressed", "macro_f1", "ua", "mae", "rmse")
                              if m.get(k) is not None)
            print(f"{s.features + (' (untrained)' if s.untrained else ''):<40} {row['classifier']:<7} {cells}")
    print(f"wrote    {res.results_uri}")
    return 0
