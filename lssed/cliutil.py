"""Shared pieces of the subcommands' argument parsing (kept free of heavy imports).

One rule for outputs: every command that writes into storage takes ``--out URI`` (a local
path, file://... or s3://BUCKET/PREFIX), defaulting to ``storage.root`` from the config, and
prints where it wrote.
"""

from __future__ import annotations

import argparse
from typing import Sequence

from lssed.config import Config, load_config, replace_section


def add_config_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config",
        metavar="YAML",
        help="a YAML config file, or a shipped config by name: demo, lssed (paper scale), quality, "
        "crosscorpus, transfer_demo (lssed/configs/, also workflows/configs/); --set overrides are applied on top",
    )
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override one config key, e.g. --set train.lr=0.02 --set 'tune.models=[resnet18,vgg11]'"
        " (values are YAML)",
    )


def add_out_argument(parser: argparse.ArgumentParser, what: str = "storage root") -> None:
    parser.add_argument("--out", default=None, metavar="URI",
                        help=f"{what}: a local path or s3://BUCKET/PREFIX; default storage.root from the config")


def add_force_argument(parser: argparse.ArgumentParser, what: str) -> None:
    parser.add_argument("--force", action="store_true", help=f"delete and redo {what}")


def config_from_args(args: argparse.Namespace, extra: Sequence[str] = ()) -> Config:
    """The config from --config/--set, with ``extra`` overrides first; ``--out`` (when the
    command has one and it is given) becomes ``storage.root``."""
    cfg = load_config(getattr(args, "config", None), [*extra, *getattr(args, "overrides", [])])
    out = getattr(args, "out", None)
    if out:  # set directly, not as a --set text: a path is not YAML
        cfg = replace_section(cfg, "storage", root=str(out))
    return cfg
