"""``build_report``: the benchmark report from what is in storage.

Reads every run's ``results.json`` / ``predictions.parquet`` and the features'
``_SUCCESS.json`` + shard metadata (lssed.report.load), builds the tables (tables.py) and the
figures (plots.py), and writes ``report.md``, ``index.html`` (self-contained), ``tables/*.csv``,
``figures/*.png`` and ``report.json`` into a local directory. Partial results are reported,
not fatal: ``Report.missing`` lists what is absent.
"""

from __future__ import annotations

import json
import logging
import re
import shutil
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from lssed.report import html as html_mod
from lssed.report import plots, tables
from lssed.report.load import LoadedRuns, load_runs
from lssed.report.table6 import table6_transfer
from lssed.report.tables import Table

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Report:
    out_dir: Path
    index_html: Path
    report_md: Path
    report_json: Path
    csvs: tuple[Path, ...]
    pngs: tuple[Path, ...]
    missing: tuple[str, ...]
    tables: tuple[Table, ...] = ()
    figures: tuple[plots.Figure, ...] = ()
    runs: int = 0

    def table(self, key: str) -> Table:
        for t in self.tables:
            if t.key == key:
                return t
        raise KeyError(f"no table {key!r}; have {[t.key for t in self.tables]}")


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("_")[:120] or "x"


def _corpus_split(corpus: dict) -> str | None:
    """The split protocol a feature set's corpus section used (unset: the corpus's default)."""
    from lssed.corpora import default_split

    if corpus.get("split"):
        return str(corpus["split"])
    return default_split(str(corpus["name"])) if corpus.get("name") else None


def _split_protocol(loaded: LoadedRuns) -> str | None:
    found = set()
    for feats in loaded.features.values():
        corpus = (feats.marker.get("config") or {}).get("corpus") or {}
        if _corpus_split(corpus):
            found.add(f"{_corpus_split(corpus)}" + (f" (val {corpus.get('val_fraction')}, test {corpus.get('test_fraction')})"
                                              if "val_fraction" in corpus else ""))
    return ", ".join(sorted(found)) or None


def _setting_title(s: tables.Setting) -> str:
    bits = [s.model, s.corpus]
    if s.window is not None:
        bits.append(f"win {s.window}")
    if s.hop is not None:
        bits.append(f"hop {s.hop}")
    if s.lr is not None:
        bits.append(f"lr {s.lr:g}")
    if s.crop is not None:
        bits.append(f"crop {s.crop}")
    return " ".join(bits)


def _dataset_tables(loaded: LoadedRuns) -> list[Table]:
    out: list[Table] = []
    multi = len(loaded.features) > 1
    for uri, feats in loaded.features.items():
        marker = feats.marker or {}
        digest = marker.get("digest") or uri.rstrip("/").rsplit("/", 1)[-1]
        cfg = marker.get("config") or {}
        corpus = cfg.get("corpus") or {}
        protocol = (f"features {digest} at {uri}; corpus: {corpus.get('name', 'see runs')}; "
                    f"split: {_corpus_split(corpus) or 'as in the manifest'}; counts from the shards' metadata")
        ts = [tables.label_split_table(feats.shard_meta, protocol=protocol),
              tables.age_gender_table(feats.shard_meta, protocol=protocol),
              tables.hours_table(feats.shard_meta, marker, protocol=protocol)]
        if multi:
            ts = [Table(f"{t.key}_{_slug(digest)}", f"{t.title} — features {digest}", t.columns, t.rows,
                        t.protocol, t.notes) for t in ts]
        out += ts
    return out


def _transfer_tables(loaded: LoadedRuns, storage_cfg: Any | None, missing: list[str]) -> list[Table]:
    """Table 6 from ``<root>/transfer/*/results.json`` beside ``runs/`` (none there: no table)."""
    import posixpath

    from lssed.storage import storage_from_config
    from lssed.transfer.stage import load_transfer_results

    runs_dir = storage_from_config(storage_cfg, loaded.runs_uri)
    root = runs_dir.at(posixpath.dirname(loaded.runs_uri.rstrip("/"))) if posixpath.basename(
        loaded.runs_uri.rstrip("/")) == "runs" else runs_dir
    try:
        found, problems = load_transfer_results(root)
    except OSError as exc:
        missing.append(f"transfer results unreadable under {root.uri} ({exc})")
        return []
    missing += problems
    return [table6_transfer(found)] if found else []


def build_report(runs_uri: str, out_dir: str | Path, *, storage_cfg: Any | None = None) -> Report:
    """Write the report for the runs under ``runs_uri`` (storage root or its ``runs/``) to ``out_dir``."""
    loaded = load_runs(runs_uri, storage_cfg)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    for sub in ("tables", "figures"):  # ours alone: clear what an earlier build wrote
        shutil.rmtree(out / sub, ignore_errors=True)
        (out / sub).mkdir()

    results = [r.results for r in loaded.runs]
    split = _split_protocol(loaded)
    missing = list(loaded.missing)

    bench = [tables.model_table(results, split=split), tables.window_table(results, split=split),
             tables.cross_corpus_table(results, split=split), tables.table4(results, split=split)]
    for t in bench:
        missing += [n for n in t.notes if n.startswith("run ")]
    data_tables = _dataset_tables(loaded)
    transfer = _transfer_tables(loaded, storage_cfg, missing)
    inventory = tables.runs_table(loaded.runs, loaded.incomplete_runs)

    # figures: one confusion matrix per setting and evaluation set (counts summed over seeds)
    conf_figs: list[plots.Figure] = []
    for setting, group in tables.group_settings(results).items():
        keys = sorted(set.intersection(*[set(r.evaluations) for r in group])) if group else []
        for key in keys:
            import numpy as np

            counts = np.sum([np.asarray(r.evaluations[key].confusion) for r in group], axis=0)
            seeds = ",".join(str(r.seed) for r in group)
            title = f"{_setting_title(setting)} — {key} (seeds {seeds})"
            path = out / "figures" / f"confusion_{_slug(_setting_title(setting))}_{_slug(key)}.png"
            conf_figs.append(plots.confusion_png(counts, group[0].class_names, title, path))
    curve_figs = []
    for model in sorted({r.model for r in results}):
        model_runs = sorted((r for r in results if r.model == model), key=lambda r: r.run_name)
        if any(r.history for r in model_runs):
            curve_figs.append(plots.curves_png(model_runs, f"learning curves — {model}",
                                               out / "figures" / f"curves_{_slug(model)}.png"))

    all_tables = [*bench, *transfer, *data_tables, inventory]
    csvs = []
    for t in all_tables:
        path = out / "tables" / f"{t.key}.csv"
        path.write_text(tables.to_csv(t))
        csvs.append(path)

    stamp = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    intro = (f"{len(loaded.runs)} complete run(s) and {len(loaded.incomplete_runs)} incomplete under "
             f"{loaded.runs_uri}; generated {stamp}. Metrics in %; checkpoints selected on validation UA.")
    md = [f"# lssed benchmark report", "", intro, ""]
    if missing:
        md += ["**Missing or incomplete:**", ""] + [f"- {m}" for m in missing] + [""]
    md += ["# Benchmark", ""] + [tables.to_markdown(t) for t in bench]
    md += ["# Transfer to depression detection", ""] + [tables.to_markdown(t) for t in transfer]
    md += ["# Figures", ""] + [f"![{f.title}](figures/{f.path.name})" for f in conf_figs + curve_figs] + [""]
    md += ["# Dataset statistics", ""] + [tables.to_markdown(t) for t in data_tables]
    md += ["# Runs", "", tables.to_markdown(inventory)]
    report_md = out / "report.md"
    report_md.write_text("\n".join(md))

    page = html_mod.render_page(
        "lssed benchmark report", intro,
        [("Benchmark", bench, []), ("Transfer to depression detection", transfer, []),
         ("Confusion matrices (row-normalised)", [], conf_figs),
         ("Learning curves", [], curve_figs), ("Dataset statistics", data_tables, []), ("Runs", [inventory], [])],
        missing)
    index_html = out / "index.html"
    index_html.write_text(page)

    pngs = tuple(f.path for f in conf_figs + curve_figs)
    report_json = out / "report.json"
    report_json.write_text(json.dumps({
        "runs_uri": loaded.runs_uri, "runs": len(loaded.runs), "incomplete_runs": list(loaded.incomplete_runs),
        "missing": missing, "index_html": str(index_html), "report_md": str(report_md),
        "csvs": [str(p) for p in csvs], "pngs": [str(p) for p in pngs], "generated": stamp,
    }, indent=2))
    log.info("report written to %s (%d runs, %d missing item(s))", index_html, len(loaded.runs), len(missing))
    return Report(out, index_html, report_md, report_json, tuple(csvs), pngs, tuple(missing),
                  tuple(all_tables), tuple(conf_figs + curve_figs), len(loaded.runs))
