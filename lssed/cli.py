"""The ``lssed`` command line. Each subcommand lives beside its stage (``<stage>/cli.py``).

Exit status: 0 done; 1 a stage failed, or an unexpected error (a bug: logged with its
traceback); 2 a usage error (bad arguments or settings, a missing input: one line saying
what to fix); 130 interrupted.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from typing import Sequence

from lssed import __version__

log = logging.getLogger("lssed")

# name -> (module with add_arguments(parser) and main(args) -> int, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "demo-corpus": ("lssed.corpora.demo_cli", "synthesise the embedded demo corpus (speech + noise in video/audio files)"),
    "prepare": ("lssed.corpora.cli", "read a corpus (generic|iemocap|meld|ravdess|cremad|daicwoz) into a manifest"),
    "preprocess": ("lssed.preprocess.cli", "manifest -> 16 kHz -> denoise -> gain -> log-mel Parquet shards (Ray Data)"),
    "import-features": ("lssed.preprocess.import_cli", "turn precomputed spectrograms (LSSED's release) into shards"),
    "train": ("lssed.train.cli", "train one model on the shards (Ray Train); writes results.json + predictions"),
    "tune": ("lssed.tune.cli", "sweep models x STFT windows x optimiser settings (Ray Tune, ASHA)"),
    "evaluate": ("lssed.evaluate.cli", "score a finished run (or an imported checkpoint) on another feature set (Table 4)"),
    "report": ("lssed.report.cli", "benchmark tables, plots and an HTML page from the runs in storage"),
    "models": ("lssed.models.cli", "list the model zoo (--table: parameters and GFLOPs); import checkpoints"),
    "embed": ("lssed.embed.cli", "one embedding per utterance of a feature set from a run or checkpoint (Ray Data)"),
    "predict": ("lssed.predict.cli", "emotion timelines of new media with a run or model file (Ray Data)"),
    "transfer": ("lssed.transfer.cli", "depression detection from utterance embeddings: SER runs vs baselines (Table 6)"),
    "run": ("lssed.workflow_cli", "the whole workflow from one config (same as workflows/full.py)"),
}

EPILOG = """\
Typical use:
  lssed demo-corpus demo/                         # a small synthetic corpus
  lssed prepare generic demo/corpus.csv --out demo/manifest.parquet
  lssed preprocess demo/manifest.parquet --out runs/demo
  lssed train runs/demo/features/<digest> --model resnet18 --out runs/demo
  lssed report runs/demo                          # -> runs/demo/report/index.html
  lssed run                                       # all of it on the demo corpus
Commands that write into storage take --out URI (default: storage.root from the config): a
local path or s3://bucket/prefix (set storage.endpoint_url for S3-compatible servers);
credentials come from the standard AWS chain. Logging: INFO by default, -v debug, -q warnings.
"""


def _add_logging_arguments(parser: argparse.ArgumentParser, suffix: str = "") -> None:
    # Accepted before and after the subcommand (`lssed -v run`, `lssed run -v`); the counts add up.
    parser.add_argument("-v", "--verbose", dest="verbose" + suffix, action="count", default=0,
                        help="more logging: -v debug (-vv: also Ray's and the S3 clients' INFO lines)")
    parser.add_argument("-q", "--quiet", dest="quiet" + suffix, action="count", default=0,
                        help="less logging: warnings and errors only")


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The parser; only ``command``'s module is imported (all of them when None), so that
    ``lssed --help`` and each subcommand start without importing torch or Ray needlessly."""
    parser = argparse.ArgumentParser(
        prog="lssed",
        description="Speech emotion recognition benchmark (LSSED, Fan et al. ICASSP 2021) on Ray.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"lssed {__version__}")
    _add_logging_arguments(parser)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (module, help_text) in COMMANDS.items():
        if command not in (None, name):
            sub.add_parser(name, help=help_text)
            continue
        impl = importlib.import_module(module)
        p = sub.add_parser(name, help=help_text, description=(impl.__doc__ or help_text).strip(),
                           formatter_class=argparse.RawDescriptionHelpFormatter)
        impl.add_arguments(p)
        _add_logging_arguments(p, "_sub")
        p.set_defaults(_impl=impl)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    from lssed.errors import is_user_error
    from lssed.logs import configure_logging

    argv = list(sys.argv[1:] if argv is None else argv)
    command = next((a for a in argv if a in COMMANDS), None)
    parser = build_parser(command if command is not None else "")
    args = parser.parse_args(argv)
    if not args.command:
        parser.print_help()
        return 2
    configure_logging(args.verbose + args.verbose_sub - args.quiet - args.quiet_sub)
    try:
        return int(args._impl.main(args) or 0)
    except KeyboardInterrupt:
        log.error("interrupted")
        return 130
    except Exception as exc:  # noqa: BLE001 - every error ends here, classified
        if is_user_error(exc):
            log.error("%s", exc)
            return 2
        log.exception("lssed %s failed with an unexpected error (a bug: please report it with this traceback)",
                      args.command)
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
