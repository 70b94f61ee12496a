"""Shared pieces of the subcommands' argument parsing (kept free of heavy imports)."""

from __future__ import annotations

import argparse
from typing import Sequence

from lssed.config import Config, load_config


def add_config_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config",
        metavar="YAML",
        help="a config file (see workflows/configs/); --set overrides are applied on top",
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


def config_from_args(args: argparse.Namespace, extra: Sequence[str] = ()) -> Config:
    """The config from --config/--set, with ``extra`` overrides (from positional args) first."""
    return load_config(getattr(args, "config", None), [*extra, *getattr(args, "overrides", [])])
