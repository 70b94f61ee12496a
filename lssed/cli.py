"""The ``lssed`` command line. Each subcommand lives beside its stage (``<stage>/cli.py``)."""

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
    "report": ("lssed.report.cli", "benchmark tables, plots and an HTML page from the runs in storage"),
    "models": ("lssed.models.cli", "list the model zoo (--table: parameters and GFLOPs); import checkpoints"),
    "run": ("lssed.workflow", "the whole workflow from one config (same as workflows/full.py)"),
}

EPILOG = """\
Typical use:
  lssed demo-corpus demo/                         # a small synthetic corpus
  lssed prepare generic demo/corpus.csv --out demo/manifest.parquet
  lssed preprocess demo/manifest.parquet --out runs/demo
  lssed train runs/demo/features/<digest> --model resnet18 --out runs/demo
  lssed run                                       # all of it on the demo corpus
Storage URIs may be local paths or s3://bucket/prefix (set storage.endpoint_url for
S3-compatible servers); credentials come from the standard AWS chain.
"""


class _Unavailable:
    def __init__(self, module: str, reason: str) -> None:
        self.module, self.reason = module, reason

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("rest", nargs=argparse.REMAINDER)

    def main(self, args: argparse.Namespace) -> int:
        log.error("this subcommand is not available in this build (%s: %s)", self.module, self.reason)
        return 2


def _load(module: str):
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as exc:
        if exc.name and (exc.name == module or module.startswith(exc.name + ".")):
            return _Unavailable(module, "not implemented yet")
        raise


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
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more logging (-vv: debug)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (module, help_text) in COMMANDS.items():
        if command not in (None, name):
            sub.add_parser(name, help=help_text)
            continue
        impl = _load(module)
        p = sub.add_parser(name, help=help_text, description=(getattr(impl, "__doc__", None) or help_text).strip(),
                           formatter_class=argparse.RawDescriptionHelpFormatter)
        impl.add_arguments(p)
        p.set_defaults(_impl=impl)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    from lssed.config import ConfigError
    from lssed.logs import configure_logging
    from lssed.storage import StorageError

    argv = list(sys.argv[1:] if argv is None else argv)
    command = next((a for a in argv if a in COMMANDS), None)
    parser = build_parser(command if command is not None else "")
    args = parser.parse_args(argv)
    if not args.command:
        parser.print_help()
        return 2
    configure_logging(args.verbose)
    try:
        return int(args._impl.main(args) or 0)
    except (ConfigError, StorageError, FileNotFoundError, ValueError) as exc:
        log.error("%s", exc)
        return 2
    except KeyboardInterrupt:
        log.error("interrupted")
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
