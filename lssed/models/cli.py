"""List the model zoo, or import a checkpoint.

  lssed models                  model names, one per line
  lssed models --table          parameters and forward GFLOPs at input (1, 1, 128, 160)
  lssed models import PATH --out STATE.pt [--model NAME] [--num-classes N] [--trust-pickle]

`import` reads a state_dict, a training checkpoint or a whole pickled model (the LSSED
authors' release format), checks it against a zoo model (names and shapes, strict) and writes
a plain state_dict that loads with weights_only=True. Whole pickled models are refused unless
--trust-pickle is given: unpickling runs code from the file.
"""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("action", nargs="?", choices=["list", "import"], default="list",
                        help="list (default) or import a checkpoint")
    parser.add_argument("path", nargs="?", help="import: the checkpoint file to read")
    parser.add_argument("--table", action="store_true", help="list: parameters and GFLOPs per model")
    parser.add_argument("--input", default="1,1,128,160", metavar="B,C,F,T",
                        help="list --table: input shape for the FLOP count (default 1,1,128,160)")
    parser.add_argument("--out", help="import: where to write the state_dict (.pt)")
    parser.add_argument("--model", help="import: the zoo model it should fit (default: inferred from its tensors)")
    parser.add_argument("--num-classes", type=int, help="import: number of classes (default: from fc.weight)")
    parser.add_argument("--trust-pickle", action="store_true",
                        help="import: allow unpickling a whole saved model; this runs code from the file, "
                             "so only use it for files you trust")


def main(args: argparse.Namespace) -> int:
    if args.action == "import":
        return _import(args)
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
