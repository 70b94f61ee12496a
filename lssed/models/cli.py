"""List the model zoo, import a checkpoint, or export a model.

  lssed models                  model names, one per line
  lssed models --table          parameters and forward GFLOPs at input (1, 1, 128, 160)
  lssed models import PATH --out STATE.pt [--model NAME] [--num-classes N] [--trust-pickle]
  lssed models export RUN_URI --format onnx|torchscript --out FILE
  lssed models export STATE.pt --model NAME --format onnx --out FILE [--set features.n_mels=128 ...]

`import` reads a state_dict, a training checkpoint or a whole pickled model (the LSSED
authors' release format), checks it against a zoo model (names and shapes, strict) and writes
a plain state_dict that loads with weights_only=True. Whole pickled models are refused unless
--trust-pickle is given: unpickling runs code from the file.

`export` writes a graph from log-mel (batch, 1, n_mels, frames) to class probabilities, with
class names, feature and preprocessing settings, model, corpora and metrics embedded, and a
model card beside it (FILE.MODEL_CARD.md). From a finished run everything is read from the
run; from a checkpoint the feature/preprocess settings are the config's (--config/--set) and
the classes default to the benchmark's (the authors' PyResNet) order angry,neutral,happy,sad.
"""

from __future__ import annotations

import argparse

from lssed.cliutil import add_config_arguments, config_from_args


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("action", nargs="?", choices=["list", "import", "export"], default="list",
                        help="list (default), import a checkpoint or export a model")
    parser.add_argument("path", nargs="?", help="import: the checkpoint file to read; export: a finished run "
                                                "directory (local or s3://) or a checkpoint file")
    parser.add_argument("--table", action="store_true", help="list: parameters and GFLOPs per model")
    parser.add_argument("--input", default="1,1,128,160", metavar="B,C,F,T",
                        help="list --table: input shape for the FLOP count (default 1,1,128,160)")
    parser.add_argument("--out", help="import: where to write the state_dict (.pt); export: the file to write")
    parser.add_argument("--model", help="import/export of a checkpoint: the zoo model it should fit "
                                        "(default: inferred from its tensors)")
    parser.add_argument("--format", choices=["onnx", "torchscript"], default=None, help="export: the file format")
    parser.add_argument("--class-names", default=None, metavar="A,B,...",
                        help="export of a checkpoint: its classes in output order (default angry,neutral,happy,sad)")
    parser.add_argument("--num-classes", type=int, help="import: number of classes (default: from fc.weight)")
    parser.add_argument("--trust-pickle", action="store_true",
                        help="import: allow unpickling a whole saved model; this runs code from the file, "
                             "so only use it for files you trust")
    add_config_arguments(parser)


def main(args: argparse.Namespace) -> int:
    if args.action == "import":
        return _import(args)
    if args.action == "export":
        return _export(args)
    from lssed.models import list_models

    if not args.table:
        for name in list_models():
            print(name)
        return 0
    from lssed.models.stats import model_stats

    from lssed.errors import UserError

    try:
        shape = tuple(int(v) for v in args.input.split(","))
    except ValueError:
        shape = ()
    if len(shape) != 4:
        raise UserError(f"--input must be four comma-separated sizes B,C,F,T, got {args.input!r}")
    print(f"{'model':<16} {'params (M)':>11} {'GFLOPs':>9}   (forward, input {shape})")
    for name in list_models():
        s = model_stats(name, shape)
        print(f"{name:<16} {s.params / 1e6:>11.2f} {s.gflops:>9.2f}")
    return 0


def _import(args: argparse.Namespace) -> int:
    from lssed.errors import UserError
    from lssed.models import unknown_model_message, unknown_models
    from lssed.models.checkpoints import import_checkpoint

    if not args.path or not args.out:
        raise UserError("usage: lssed models import PATH --out STATE.pt [--model NAME] [--trust-pickle]")
    if args.model and unknown_models([args.model]):
        raise UserError(f"--model: {unknown_model_message([args.model])}")
    res = import_checkpoint(args.path, args.out, model=args.model, num_classes=args.num_classes,
                            trust_pickle=args.trust_pickle)
    print(f"{res.model} ({res.num_classes} classes, {res.num_tensors} tensors, from a {res.source_format}) "
          f"-> {res.out}" + (f" (the same parameters also fit: {', '.join(res.also_fits)})" if res.also_fits else ""))
    return 0


def _export(args: argparse.Namespace) -> int:
    import dataclasses
    from pathlib import Path

    from lssed.errors import UserError
    from lssed.models.export import export_with_card, model_from_checkpoint, model_from_run

    if not args.path or not args.out or not args.format:
        raise UserError("usage: lssed models export (RUN_URI | CHECKPOINT) --format onnx|torchscript --out FILE")
    # --out names the exported file here, not a storage root: keep it out of the config
    cfg = config_from_args(argparse.Namespace(config=args.config, overrides=args.overrides))
    preprocess = dataclasses.asdict(cfg.preprocess)
    is_file = "://" not in args.path and Path(args.path).is_file()
    if is_file:
        names = tuple(n.strip() for n in args.class_names.split(",")) if args.class_names else None
        net, meta = model_from_checkpoint(args.path, features=dataclasses.asdict(cfg.features), preprocess=preprocess,
                                          model=args.model, class_names=names,
                                          model_kwargs=cfg.train.model_kwargs, trust_pickle=args.trust_pickle)
    else:
        if args.model or args.class_names:
            raise UserError("--model and --class-names describe a checkpoint file; a run records its own")
        net, meta = model_from_run(args.path, cfg.storage, preprocess=preprocess)
    res = export_with_card(net, meta, args.format, args.out)
    print(f"{meta['model']} ({', '.join(meta['class_names'])}) -> {res.out} ({args.format}); card {res.card}")
    return 0
