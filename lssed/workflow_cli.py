"""Run the whole benchmark from one config: corpus -> preprocess -> train -> tune -> report.

With no --config this is the embedded demo (the shipped config `demo`): a small synthetic
corpus is generated into storage, preprocessed, every model in train.models is trained for
every seed in train.seeds, a small sweep runs and the report is written into storage.
--config lssed (or a YAML path) is the paper-scale benchmark (the whole zoo, 60 epochs,
GPU workers, S3 storage). --out URI sets storage.root.

Committed stages are skipped, so running the same config again (e.g. re-submitting a job
that failed half-way) picks up where it stopped; --force redoes everything. The exit status
is 0 only when every stage succeeded; <storage>/workflow.json lists what failed. Same as
`python workflows/full.py`.
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from lssed.cliutil import add_config_arguments, add_out_argument, config_from_args
from lssed.config import Config, replace_section

if TYPE_CHECKING:
    from lssed.workflow import WorkflowResult

# What `lssed run` / `workflows/full.py` run without --config: the shipped demo config (package
# data, so an installed lssed finds it from any directory; workflows/configs/demo.yaml links to it).
DEMO_CONFIG = "demo"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_out_argument(parser, "storage root for every stage's output")
    parser.add_argument("--force", action="store_true", help="redo committed stages (same as --set stages.force=true)")
    add_config_arguments(parser)


def config_from_cli(args: argparse.Namespace) -> Config:
    """--config (default: the demo config when it exists) + --set + --out + --force."""
    if getattr(args, "config", None) is None:
        args = argparse.Namespace(**{**vars(args), "config": DEMO_CONFIG})
    cfg = config_from_args(args)
    if getattr(args, "force", False):
        cfg = replace_section(cfg, "stages", force=True)
    return cfg


def format_summary(res: WorkflowResult) -> str:
    """The lines `lssed run` prints at the end."""
    lines = [f"storage: {res.storage_uri}"]
    if res.corpus:
        lines.append(f"manifest: {res.corpus.manifest_uri} ({res.corpus.rows} utterances, {res.corpus.rejected} rejected)")
    if res.features is not None:
        lines.append(f"features: {res.features.uri} ({res.features.rows_out} rows, "
                     f"{res.features.rows_quarantined} quarantined)")
    for r in res.runs:
        test = r.evaluations.get("test")
        lines.append(f"run {r.run_name}: val UA {r.val.ua:.3f}" + (f", test UA {test.ua:.3f} WA {test.wa:.3f}" if test else ""))
    if res.sweep is not None:
        lines.append(f"sweep {res.sweep.sweep_name}: best {res.sweep.best_run_name} -> {res.sweep.experiment_uri}")
    if res.skipped:
        lines.append("skipped (committed): " + ", ".join(res.skipped))
    for f in res.failures:
        lines.append(f"FAILED {f.stage} {f.name}: {f.error}")
    if res.report_uri:
        lines.append(f"report: {res.report_uri}")
    lines.append(f"{'ok' if res.ok else 'FAILED'} in {res.seconds:.1f} s")
    return "\n".join(lines)


def main(args: argparse.Namespace) -> int:
    from lssed.workflow import run_workflow

    res = run_workflow(config_from_cli(args))
    print(format_summary(res), flush=True)
    return 0 if res.ok else 1
