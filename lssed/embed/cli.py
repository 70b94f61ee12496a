"""One embedding per utterance of a feature set, from a trained SER model (Ray Data).

FEATURES_URI is a committed feature set (<out>/features/<digest>); the model is a finished run
(--run <out>/runs/<name>: its selected weights and STFT settings; log-mel is recomputed from
the stored waveforms where the feature set's settings differ) or an imported checkpoint
(--checkpoint FILE from `lssed models import`: it sees the stored log-mel as it is). The
vector is the input of the model's classifier `fc` (the pooled penultimate features) unless
--layer names another module, whose output is averaged over time and frequency.
Writes <out>/embeddings/<name>/part-*.parquet (utt_id, corpus, speaker, session, split, label,
score, start_s, end_s, embedding) and _SUCCESS.json (source, model, layer, dim, settings).

  lssed embed runs/daic/features/<digest> --run runs/demo/runs/resnet18-ab12cd34-0123 --out runs/daic
  lssed embed runs/daic/features/<digest> --checkpoint pyresnet152.pt --out runs/daic --layer layer3
"""

from __future__ import annotations

import argparse

from lssed.cliutil import add_config_arguments, add_out_argument, config_from_args


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("features_uri", metavar="FEATURES_URI", help="a committed feature set (local or s3://)")
    which = parser.add_mutually_exclusive_group(required=True)
    which.add_argument("--run", dest="run_uri", metavar="RUN_URI", help="a finished run directory (<out>/runs/<name>)")
    which.add_argument("--checkpoint", metavar="FILE", help="an imported checkpoint (`lssed models import`)")
    parser.add_argument("--model", default=None, help="the architecture of --checkpoint (default: inferred)")
    add_out_argument(parser, "where embeddings/<name>/ is written")
    parser.add_argument("--layer", default=None, metavar="NAME",
                        help="a module of the model (e.g. layer3, layer4.1.conv2) whose output is pooled over time "
                             "and frequency (default: the classifier fc's input, the penultimate features)")
    parser.add_argument("--name", default=None,
                        help="the embedding set's name (default: the run's or checkpoint's name, plus .LAYER)")
    parser.add_argument("--actors", type=int, default=None,
                        help="model actors (default: one per GPU of the cluster, else one per free CPU but one)")
    add_config_arguments(parser)


def main(args: argparse.Namespace) -> int:
    from lssed.embed.compute import embed_features
    from lssed.storage import storage_from_config

    cfg = config_from_args(args)
    if args.actors is not None and args.actors < 1:
        from lssed.errors import UserError

        raise UserError(f"--actors must be >= 1, got {args.actors}")
    out = storage_from_config(cfg.storage)
    res = embed_features(cfg, args.features_uri, run_uri=args.run_uri, checkpoint=args.checkpoint, out=out,
                         layer=args.layer, name=args.name, model=args.model, actors=args.actors)
    m = res.meta
    print(f"model    {m['model']} ({m['source_kind']} {m['source']}), layer {m['layer']}")
    print(f"on       {m['features_uri']} ({res.rows} utterances"
          f"{', log-mel recomputed with the model settings' if m['features_recomputed'] else ''}; "
          f"window {m['window_ms']:g} ms, hop {m['hop_ms']:g} ms)")
    print(f"wrote    {res.rows} x {res.dim} embeddings to {res.uri}")
    return 0
