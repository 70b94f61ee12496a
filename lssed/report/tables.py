"""Benchmark tables as pure functions of :class:`~lssed.train.results.RunResults`.

- :func:`model_table` — the paper's Table 5 analogue: per setting (corpus, model, STFT window,
  hop, lr, crop), test WA / UA / macro-F1 as mean and sample std (ddof=1) over seeds,
  parameters, training time. Checkpoints are selected on validation UA by training; the
  test split only reports.
- :func:`window_table` — window x model x test UA (the paper's 25 ms vs 64 ms study).
- :func:`cross_corpus_table` — Table 4 analogue: train-on-A / test-on-B UA matrix from the
  runs' ``test`` and ``test@<corpus>`` evaluations (4 shared classes).
- :func:`label_split_table`, :func:`age_gender_table`, :func:`hours_table` — Tables 2/3
  analogues from the shards' metadata columns and the features' ``_SUCCESS.json``.

Metric values are percentages. Where several settings share a cell (a sweep over lr or
hop), the one with the best mean validation UA is shown, so the test split never selects.
"""

from __future__ import annotations

import csv
import io
import math
import statistics
from collections import defaultdict
from dataclasses import dataclass
from typing import Any, Iterable, Sequence

from lssed.train.results import Metrics, RunResults

ABSENT = "—"


@dataclass(frozen=True)
class Table:
    """A flat table; ``<x>_mean``/``<x>_std`` column pairs render as one ``mean ± std`` cell."""

    key: str  # file stem of its CSV
    title: str
    columns: tuple[str, ...]
    rows: tuple[tuple[Any, ...], ...]
    protocol: str = ""
    notes: tuple[str, ...] = ()

    def column(self, name: str) -> tuple[Any, ...]:
        i = self.columns.index(name)
        return tuple(r[i] for r in self.rows)

    def cell(self, row_match: dict[str, Any], column: str) -> Any:
        """The value in ``column`` of the one row whose columns equal ``row_match``."""
        idx = {c: i for i, c in enumerate(self.columns)}
        hits = [r for r in self.rows if all(r[idx[k]] == v for k, v in row_match.items())]
        if len(hits) != 1:
            raise KeyError(f"{len(hits)} rows of {self.key} match {row_match}")
        return hits[0][idx[column]]


@dataclass(frozen=True)
class Setting:
    """Everything that distinguishes runs except the seed."""

    corpus: str
    model: str
    window: int | None
    hop: int | None
    n_fft: int | None
    lr: float | None
    crop: int | None
    epochs: int | None


def setting_of(r: RunResults) -> Setting:
    f, t = r.feature_config or {}, r.train_config or {}
    return Setting(r.train_corpus, r.model, f.get("win_length"), f.get("hop_length"), f.get("n_fft"),
                   t.get("lr"), t.get("crop_frames"), t.get("epochs"))


def _sort_key(s: Setting) -> tuple:
    return tuple((v is None, v if v is not None else 0) for v in
                 (s.corpus, s.model, s.window, s.hop, s.n_fft, s.lr, s.crop, s.epochs))


def mean_std(values: Sequence[float]) -> tuple[float | None, float | None]:
    """Mean and sample standard deviation (ddof=1); std is None for a single value."""
    if not values:
        return None, None
    m = statistics.fmean(values)
    return m, (statistics.stdev(values) if len(values) > 1 else None)


def _pct(values: Iterable[float]) -> list[float]:
    return [100.0 * v for v in values]


def group_settings(runs: Sequence[RunResults]) -> dict[Setting, list[RunResults]]:
    groups: dict[Setting, list[RunResults]] = defaultdict(list)
    for r in runs:
        groups[setting_of(r)].append(r)
    return {k: sorted(groups[k], key=lambda r: (r.seed, r.run_name)) for k in sorted(groups, key=_sort_key)}


def _val_ua(runs: Sequence[RunResults]) -> float:
    return statistics.fmean(r.val.ua for r in runs)


def best_by_val(groups: dict[Setting, list[RunResults]]) -> tuple[Setting, list[RunResults]]:
    """The setting with the highest mean validation UA (ties: the first in sort order)."""
    top = max(_val_ua(v) for v in groups.values())
    return next((k, v) for k, v in groups.items() if _val_ua(v) == top)


def protocol_text(runs: Sequence[RunResults], *, split: str | None = None, evaluation: str = "test") -> str:
    """The protocol line printed beside every table."""
    if not runs:
        return "no complete runs"
    corpora = sorted({r.train_corpus for r in runs})
    seeds = sorted({r.seed for r in runs})
    feats = sorted({r.features_digest for r in runs})
    epochs = sorted({r.epochs_completed for r in runs})
    return (f"corpora: {', '.join(corpora)}; split: {split or 'as in the manifest (speaker-independent by default)'}; "
            f"seeds: {', '.join(map(str, seeds))}; features: {', '.join(feats)}; "
            f"epochs: {', '.join(map(str, epochs))}; checkpoint selected on validation UA, "
            f"metrics on the {evaluation} split; {len(runs)} run(s)")


def model_table(runs: Sequence[RunResults], *, split: str | None = None) -> Table:
    """Table 5 analogue: one row per setting, mean ± std over seeds of test WA / UA / macro-F1."""
    usable = [r for r in runs if "test" in r.evaluations]
    notes = tuple(f"run {r.run_name}: no test evaluation; left out" for r in runs if "test" not in r.evaluations)
    rows = []
    for s, group in group_settings(usable).items():
        tests = [r.evaluations["test"] for r in group]
        wa = mean_std(_pct(m.wa for m in tests))
        ua = mean_std(_pct(m.ua for m in tests))
        f1 = mean_std(_pct(m.macro_f1 for m in tests))
        val = mean_std(_pct(r.val.ua for r in group))
        rows.append((s.corpus, s.model, s.window, s.hop, s.lr, s.crop, len(group),
                     " ".join(str(r.seed) for r in group), _folds_text(group),
                     *wa, *ua, *f1, *val,
                     group[0].num_params, statistics.fmean(r.train_seconds for r in group)))
    columns = ("corpus", "model", "window", "hop", "lr", "crop_frames", "n_seeds", "seeds", "folds",
               "wa_mean", "wa_std", "ua_mean", "ua_std", "macro_f1_mean", "macro_f1_std",
               "val_ua_mean", "val_ua_std", "params", "train_seconds")
    return Table("models", "Models (Table 5 analogue): test WA / UA / macro-F1 (%), mean ± std over seeds "
                 "(and folds, k-fold protocol)",
                 columns, tuple(rows), protocol_text(usable, split=split), notes)


def fold_of(r: RunResults) -> int | None:
    """The run's test fold under the k-fold protocol (train.fold), else None."""
    fold = (r.train_config or {}).get("fold")
    return int(fold) if fold is not None else None


def _folds_text(group: Sequence[RunResults]) -> str:
    """The folds a group's runs tested (empty without the k-fold protocol): n_seeds counts runs."""
    folds = sorted({f for r in group if (f := fold_of(r)) is not None})
    return " ".join(map(str, folds))


def window_table(runs: Sequence[RunResults], *, split: str | None = None,
                 sample_rate: int = 16000) -> Table:
    """Window study: rows (corpus, window), one ``<model>`` column of test UA mean ± std.

    A (window, model) cell with several settings (hops, lrs) shows the best by validation UA.
    The notes state what every shown trial held equal (hop, crop, lr, epochs...) and what
    varied besides the window, so a confounded study says so.
    """
    usable = [r for r in runs if "test" in r.evaluations]
    shown: list[RunResults] = []
    models = sorted({r.model for r in usable})
    cells: dict[tuple[str, int | None], dict[str, tuple[float | None, float | None]]] = defaultdict(dict)
    for corpus in sorted({r.train_corpus for r in usable}):
        for window in sorted({setting_of(r).window for r in usable if r.train_corpus == corpus},
                             key=lambda w: (w is None, w or 0)):
            for model in models:
                subset = [r for r in usable if r.train_corpus == corpus and r.model == model
                          and setting_of(r).window == window]
                if not subset:
                    continue
                _, best = best_by_val(group_settings(subset))
                shown.extend(best)
                cells[(corpus, window)][model] = mean_std(_pct(r.evaluations["test"].ua for r in best))
    rows = []
    for (corpus, window), by_model in cells.items():
        ms = round(1000.0 * window / sample_rate, 1) if window else None
        values: list[Any] = []
        for model in models:
            values.extend(by_model.get(model, (None, None)))
        rows.append((corpus, window, ms, *values))
    columns = ("corpus", "window", "window_ms", *[c for m in models for c in (f"{m}_mean", f"{m}_std")])
    return Table("windows", "STFT window study: test UA (%) by window and model",
                 columns, tuple(rows), protocol_text(usable, split=split), notes=window_study_notes(shown))


# what a window-study trial could vary besides the window: (label, its value from (features, train) config)
_STUDY_SETTINGS: tuple[tuple[str, Any], ...] = (
    ("hop", lambda f, t: f.get("hop_length")),
    ("n_fft", lambda f, t: f.get("n_fft")),
    ("mel bands", lambda f, t: f.get("n_mels")),
    ("crop (frames)", lambda f, t: t.get("crop_frames")),
    ("crop (s)", lambda f, t: _crop_seconds(f, t)),
    ("lr", lambda f, t: t.get("lr")),
    ("epochs", lambda f, t: t.get("epochs")),
    ("lr step (epochs)", lambda f, t: t.get("lr_step_epochs")),
    ("batch", lambda f, t: t.get("batch_size")),
)


def _crop_seconds(f: dict[str, Any], t: dict[str, Any]) -> float | None:
    """The audio a crop of ``crop_frames`` frames covers: (frames - 1) * hop / sample rate."""
    frames, hop, sr = t.get("crop_frames"), f.get("hop_length"), f.get("sample_rate")
    if not (frames and hop and sr):
        return None
    return round((int(frames) - 1) * int(hop) / float(sr), 2)


def window_study_notes(runs: Sequence[RunResults]) -> tuple[str, ...]:
    """"Held equal in every trial: ..." and, when any, "Also varied besides the window: ..."."""
    if not runs:
        return ()
    equal, varied = [], []
    for label, get in _STUDY_SETTINGS:
        values = {get(r.feature_config or {}, r.train_config or {}) for r in runs}
        values.discard(None)
        if len(values) == 1:
            equal.append(f"{label} {_fmt_setting(next(iter(values)))}")
        elif len(values) > 1:
            varied.append(f"{label} {{{', '.join(_fmt_setting(v) for v in sorted(values))}}}")
    notes = [f"Held equal in every trial shown: {', '.join(equal)}." if equal else "No setting was held equal."]
    if varied:
        notes.append(f"Also varied besides the window (the comparison is confounded by these): {', '.join(varied)}.")
    return tuple(notes)


def _fmt_setting(v: Any) -> str:
    return f"{v:g}" if isinstance(v, float) else str(v)


def _eval_corpus(r: RunResults, key: str) -> str | None:
    if key == "test":
        return r.train_corpus
    if key.startswith("test@"):
        return key.split("@", 1)[1]
    return None


def cross_corpus_table(runs: Sequence[RunResults], *, split: str | None = None) -> Table:
    """Table 4 analogue: rows (model, train corpus), a column per test corpus, test UA mean ± std.

    Each cell shows, among the settings evaluated on that test corpus, the one with the best
    mean validation UA (on the training corpus).
    """
    usable = [r for r in runs if any(_eval_corpus(r, k) for k in r.evaluations)]
    test_corpora = sorted({c for r in usable for k in r.evaluations if (c := _eval_corpus(r, k))})
    rows = []
    for model in sorted({r.model for r in usable}):
        for train in sorted({r.train_corpus for r in usable if r.model == model}):
            values: list[Any] = []
            for test in test_corpora:
                key = "test" if test == train else f"test@{test}"
                # per cell: among the settings evaluated on this corpus, the best by validation UA
                subset = [r for r in usable if r.model == model and r.train_corpus == train and key in r.evaluations]
                if not subset:
                    values.extend((None, None))
                    continue
                _, best = best_by_val(group_settings(subset))
                values.extend(mean_std(_pct(r.evaluations[key].ua for r in best)))
            rows.append((model, train, *values))
    columns = ("model", "train_on", *[c for t in test_corpora for c in (f"{t}_mean", f"{t}_std")])
    notes = []
    trains = sorted({r.train_corpus for r in usable})
    if len(set(test_corpora) | set(trains)) <= 1:
        notes.append("only one corpus is present, so this is a 1x1 matrix; train on another corpus or "
                     "evaluate on one (evaluations 'test@<corpus>') to fill it")
    return Table("cross_corpus", "Cross-corpus (Table 4 analogue): test UA (%), rows train on, columns test on",
                 columns, tuple(rows), protocol_text(usable, split=split), tuple(notes))


def table4(runs: Sequence[RunResults], *, split: str | None = None) -> Table:
    """Table 4 (long form): per (train corpus, test corpus, model) WA and UA, and the drop from the diagonal.

    The diagonal cell is the run's own test split (``test``), an off-diagonal one its
    ``test@<corpus>`` evaluation. Values are means over the seeds/folds of the setting with
    the best mean validation UA (as in the ``cross_corpus`` matrix); ``ua_drop_pct`` is the
    paper's relative drop, 100 x (diagonal UA - cell UA) / diagonal UA (WA alike), empty on
    the diagonal or without one.
    """
    usable = [r for r in runs if any(_eval_corpus(r, k) for k in r.evaluations)]
    cells: dict[tuple[str, str, str], tuple[float, float, int, int]] = {}
    for model in sorted({r.model for r in usable}):
        for train in sorted({r.train_corpus for r in usable if r.model == model}):
            subset = [r for r in usable if r.model == model and r.train_corpus == train]
            for test in sorted({c for r in subset for k in r.evaluations if (c := _eval_corpus(r, k))}):
                key = "test" if test == train else f"test@{test}"
                have = [r for r in subset if key in r.evaluations]
                _, best = best_by_val(group_settings(have))
                ms = [r.evaluations[key] for r in best]
                cells[(train, test, model)] = (statistics.fmean(100.0 * m.wa for m in ms),
                                               statistics.fmean(100.0 * m.ua for m in ms),
                                               int(round(statistics.fmean(m.n for m in ms))), len(ms))
    rows = []
    for (train, test, model), (wa, ua, n, k) in sorted(cells.items()):
        diag = cells.get((train, train, model))
        off = test != train
        wa_drop = 100.0 * (diag[0] - wa) / diag[0] if off and diag and diag[0] else None
        ua_drop = 100.0 * (diag[1] - ua) / diag[1] if off and diag and diag[1] else None
        rows.append((train, test, model, "off-diagonal" if off else "diagonal", wa, ua, n, k, wa_drop, ua_drop))
    notes = []
    if not any(r[3] == "off-diagonal" for r in rows):
        notes.append("no run was evaluated on another corpus: run the workflow with `corpora:` and "
                     "`crosscorpus: true`, or `lssed evaluate RUN FEATURES`")
    columns = ("train_corpus", "test_corpus", "model", "cell", "wa", "ua", "n", "runs", "wa_drop_pct", "ua_drop_pct")
    return Table("table4_cross_corpus", "Table 4: cross-corpus WA / UA (%) and the relative drop from the "
                 "diagonal (train and test on the same corpus)", columns, tuple(rows),
                 protocol_text(usable, split=split), tuple(notes))


# --------------------------------------------------------------------------- dataset statistics


def _meta_rows(meta: Any) -> list[dict[str, Any]]:
    return meta.to_pylist() if meta is not None else []


def label_split_table(meta: Any, *, protocol: str = "") -> Table:
    """Utterances per label (full label set and its benchmark class) and split."""
    from lssed.labels import BENCHMARK_CLASSES

    counts: dict[tuple[str, str], dict[str, int]] = defaultdict(lambda: defaultdict(int))
    splits: set[str] = set()
    for row in _meta_rows(meta):
        l4 = row.get("label4")
        key = (row.get("label") or "unknown", BENCHMARK_CLASSES[l4] if l4 is not None else "-")
        split = row.get("split") or "unknown"
        splits.add(split)
        counts[key][split] += 1
    order = [s for s in ("train", "val", "test") if s in splits] + sorted(splits - {"train", "val", "test"})
    rows = [(label, cls, *[counts[(label, cls)].get(s, 0) for s in order], sum(counts[(label, cls)].values()))
            for (label, cls) in sorted(counts)]
    if rows:
        rows.append(("total", "", *[sum(r[2 + i] for r in rows) for i in range(len(order))],
                     sum(r[-1] for r in rows)))
    return Table("labels_by_split", "Utterances by label and split (Table 2 analogue)",
                 ("label", "class4", *order, "total"), tuple(rows), protocol)


def age_gender_table(meta: Any, *, protocol: str = "") -> Table:
    """Utterances (and speakers) by age group and gender (Table 3 analogue)."""
    counts: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    speakers: dict[str, set] = defaultdict(set)
    genders: set[str] = set()
    for row in _meta_rows(meta):
        age = row.get("age") or "unknown"
        gender = row.get("gender") or "unknown"
        genders.add(gender)
        counts[age][gender] += 1
        speakers[age].add(row.get("speaker"))
    order = [g for g in ("F", "M") if g in genders] + sorted(genders - {"F", "M"})
    rows = [(age, *[counts[age].get(g, 0) for g in order], sum(counts[age].values()), len(speakers[age]))
            for age in sorted(counts)]
    return Table("age_by_gender", "Utterances by age group and gender (Table 3 analogue)",
                 ("age", *order, "total", "speakers"), tuple(rows), protocol)


def _duration_s(row: dict[str, Any], hop: int | None) -> float:
    start, end = row.get("start_s"), row.get("end_s")
    if start is not None and end is not None:
        return max(0.0, float(end) - float(start))
    if row.get("n_frames") and hop and row.get("sample_rate"):
        return (int(row["n_frames"]) - 1) * hop / float(row["sample_rate"])
    return 0.0


def hours_table(meta: Any, marker: dict[str, Any] | None = None, *, protocol: str = "") -> Table:
    """Utterances, speakers and hours per corpus and split, plus the stage's own counts."""
    marker = marker or {}
    hop = ((marker.get("config") or {}).get("features") or {}).get("hop_length")
    acc: dict[tuple[str, str], list[Any]] = {}
    for row in _meta_rows(meta):
        key = (row.get("corpus") or "unknown", row.get("split") or "unknown")
        entry = acc.setdefault(key, [0, set(), 0.0])
        entry[0] += 1
        entry[1].add(row.get("speaker"))
        entry[2] += _duration_s(row, hop)
    rows = [(corpus, split, n, len(spk), secs / 3600.0) for (corpus, split), (n, spk, secs) in sorted(acc.items())]
    notes = []
    stats = marker.get("stats") or {}
    # keys of the preprocess stage's _SUCCESS.json stats (lssed/preprocess/stage.py); any may be absent
    for key in ("hours", "manifest_audio_h", "decoded_audio_h", "output_audio_h", "clip_rate", "clipped_samples",
                "quarantined_by_reason", "audio_s_per_cpu_s"):
        if key in stats:
            value = stats[key]
            text = f"{value:.4g}" if isinstance(value, float) else str(value)
            notes.append(f"preprocess stats: {key} = {text}")
    counts = marker.get("counts") or {k: marker[k] for k in ("rows_in", "rows_out", "rows_quarantined") if k in marker}
    if counts:
        notes.append("preprocess counts: " + ", ".join(f"{k} = {v}" for k, v in sorted(counts.items())))
    return Table("hours", "Utterances, speakers and hours by corpus and split",
                 ("corpus", "split", "utterances", "speakers", "hours"), tuple(rows), protocol, tuple(notes))


def run_status(r: RunResults) -> str:
    """``stopped early`` for a sweep trial ASHA stopped (evaluated from its last checkpoint), else ``complete``."""
    return "stopped early" if r.stopped_early else "complete"


def runs_table(runs: Sequence[Any], incomplete: Sequence[str] = ()) -> Table:
    """Every run found (loaded or not): the inventory behind the other tables."""
    rows = []
    for lr in runs:
        r: RunResults = lr.results
        s = setting_of(r)
        test: Metrics | None = r.evaluations.get("test")
        rows.append((r.run_name, r.model, r.train_corpus, s.window, s.hop, s.lr, r.seed, r.epochs_completed,
                     r.best_epoch, 100 * r.val.ua, 100 * test.ua if test else None,
                     lr.predictions_rows, r.tune_trial or "", run_status(r), getattr(lr, "model_card", None)))
    for name in incomplete:
        rows.append((name, *([None] * 12), "incomplete", None))
    return Table("runs", "Runs found in storage",
                 ("run", "model", "corpus", "window", "hop", "lr", "seed", "epochs", "best_epoch",
                  "val_ua", "test_ua", "predictions", "tune_trial", "status", "model_card"), tuple(rows))


# --------------------------------------------------------------------------- rendering


def _fmt(v: Any) -> str:
    if v is None:
        return ABSENT
    if isinstance(v, float):
        if math.isnan(v):
            return ABSENT
        return f"{v:.2f}" if abs(v) >= 0.01 or v == 0 else f"{v:.2g}"
    return str(v)


def display(table: Table) -> tuple[tuple[str, ...], list[tuple[str, ...]]]:
    """Headers and string cells with ``x_mean``/``x_std`` pairs merged into ``x``."""
    cols = list(table.columns)
    plan: list[tuple[str, int, int | None]] = []
    i = 0
    while i < len(cols):
        c = cols[i]
        if c.endswith("_mean") and i + 1 < len(cols) and cols[i + 1] == c[:-5] + "_std":
            plan.append((c[:-5], i, i + 1))
            i += 2
        else:
            plan.append((c, i, None))
            i += 1
    rows = []
    for r in table.rows:
        cells = []
        for _, a, b in plan:
            if b is None:
                cells.append(_fmt(r[a]))
            elif r[a] is None:
                cells.append(ABSENT)
            elif r[b] is None:
                cells.append(_fmt(r[a]))
            else:
                cells.append(f"{_fmt(r[a])} ± {_fmt(r[b])}")
        rows.append(tuple(cells))
    return tuple(name for name, _, _ in plan), rows


def to_markdown(table: Table) -> str:
    headers, rows = display(table)
    out = [f"## {table.title}", ""]
    if table.protocol:
        out += [f"*Protocol: {table.protocol}*", ""]
    if rows:
        out.append("| " + " | ".join(headers) + " |")
        out.append("|" + "|".join("---" for _ in headers) + "|")
        out += ["| " + " | ".join(c.replace("|", "\\|") for c in row) + " |" for row in rows]
    else:
        out.append("_no data_")
    out += [""] + [f"- {n}" for n in table.notes] + ([""] if table.notes else [])
    return "\n".join(out)


def to_csv(table: Table) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(table.columns)
    for row in table.rows:
        w.writerow(["" if v is None else v for v in row])
    return buf.getvalue()
