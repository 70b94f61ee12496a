"""The outputs of `lssed predict`: the timeline, its per-media summary, plots, quarantine.

- ``timeline.parquet`` / ``timeline.csv``: one row per window the model labelled (media,
  start_s, end_s, label, confidence, ``p_<class>`` per class, flags, region).
- ``summary.csv``: per media, the speech time its windows cover and each class's share of
  it. Windows overlap, so the covered time is cut at every window edge and each piece takes
  the class of its windows' mean probabilities: every second of speech counts once and the
  shares of a media with speech add up to 1.
- ``plots/<media>.png``: the class probabilities over time (same pieces), speech regions
  shaded.
- ``quarantine.parquet``: media that could not be used (media, stage, code, reason).

Everything is written through a :class:`~lssed.storage.Storage`, so local and s3 outputs
are the same code.
"""

from __future__ import annotations

import hashlib
import io
import logging
import re
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pyarrow as pa

log = logging.getLogger(__name__)

QUARANTINE_SCHEMA = pa.schema([
    pa.field("media", pa.string()),
    pa.field("stage", pa.string()),  # which step gave up: decode, vad, model, ...
    pa.field("code", pa.string()),  # countable reason, e.g. open_failed
    pa.field("reason", pa.string()),  # the message, for a person
])


def prob_column(name: str) -> str:
    return f"p_{name}"


def share_column(name: str) -> str:
    return f"share_{name}"


def timeline_schema(class_names: Sequence[str]) -> pa.Schema:
    return pa.schema(
        [pa.field("media", pa.string()), pa.field("start_s", pa.float64()), pa.field("end_s", pa.float64()),
         pa.field("label", pa.string()), pa.field("confidence", pa.float32())]
        + [pa.field(prob_column(c), pa.float32()) for c in class_names]
        + [pa.field("flags", pa.string()), pa.field("region", pa.int32())]
    )


def timeline_table(rows: Sequence[Mapping[str, Any]], class_names: Sequence[str]) -> pa.Table:
    """Rows -> the timeline, sorted by media and start.

    Each row has ``media``, ``start_s``, ``end_s``, ``region``, ``flags`` (a sequence of
    strings, or one ``;``-joined string) and the class probabilities, either as ``probs`` (a
    sequence in ``class_names`` order) or as ``p_<class>`` keys. ``label`` and
    ``confidence`` are the most probable class and its probability.
    """
    classes = list(class_names)
    if not classes:
        raise ValueError("timeline_table needs the model's class names")
    probs = np.zeros((len(rows), len(classes)), np.float32)
    for i, row in enumerate(rows):
        if "probs" in row:
            p = np.asarray(row["probs"], np.float32).reshape(-1)
            if p.size != len(classes):
                raise ValueError(f"row {i} of {row.get('media')!r} has {p.size} probabilities for {len(classes)} "
                                 f"classes {classes}")
            probs[i] = p
        else:
            probs[i] = [row[prob_column(c)] for c in classes]
    order = sorted(range(len(rows)), key=lambda i: (str(rows[i]["media"]), float(rows[i]["start_s"]),
                                                    float(rows[i]["end_s"])))
    probs = probs[order]
    best = probs.argmax(axis=1) if len(rows) else np.zeros(0, np.int64)
    columns: dict[str, Any] = {
        "media": [str(rows[i]["media"]) for i in order],
        "start_s": [float(rows[i]["start_s"]) for i in order],
        "end_s": [float(rows[i]["end_s"]) for i in order],
        "label": [classes[int(b)] for b in best],
        "confidence": probs[np.arange(len(rows)), best] if len(rows) else np.zeros(0, np.float32),
    }
    for j, c in enumerate(classes):
        columns[prob_column(c)] = probs[:, j]
    columns["flags"] = [_flags(rows[i].get("flags")) for i in order]
    columns["region"] = [int(rows[i].get("region", 0)) for i in order]
    return pa.table(columns, schema=timeline_schema(classes))


def _flags(flags: Any) -> str:
    if flags is None:
        return ""
    if isinstance(flags, str):
        return flags
    return ";".join(str(f) for f in flags)


def quarantine_table(rows: Sequence[Mapping[str, Any]] = ()) -> pa.Table:
    """Rows of (media, stage, code, reason) -> the quarantine table (possibly empty)."""
    return pa.Table.from_pylist([{k: (None if r.get(k) is None else str(r.get(k))) for k in QUARANTINE_SCHEMA.names}
                                 for r in rows], schema=QUARANTINE_SCHEMA)


# --------------------------------------------------------------------------- pieces of covered time


def covered_pieces(starts: np.ndarray, ends: np.ndarray,
                   probs: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Cut the time the windows cover at every window edge.

    Returns ``(piece_starts, piece_ends, mean_probs)``: the pieces covered by at least one
    window and the mean probabilities of the windows covering each. A sweep over the edges
    (O(n log n)), so an hour of overlapping windows is cheap.
    """
    starts, ends = np.asarray(starts, np.float64), np.asarray(ends, np.float64)
    probs = np.asarray(probs, np.float64)
    probs = probs[:, None] if probs.ndim == 1 else probs
    if len(starts) == 0:
        return np.zeros(0), np.zeros(0), np.zeros((0, probs.shape[1]))
    bounds = np.unique(np.concatenate([starts, ends]))
    first, last = np.searchsorted(bounds, starts), np.searchsorted(bounds, ends)
    delta = np.zeros((bounds.size, probs.shape[1] + 1))
    np.add.at(delta, first, np.column_stack([probs, np.ones(len(starts))]))
    np.add.at(delta, last, -np.column_stack([probs, np.ones(len(starts))]))
    active = np.cumsum(delta, axis=0)[:-1]  # piece i runs from bounds[i] to bounds[i + 1]
    count = np.rint(active[:, -1])
    keep = count > 0
    mean = active[keep, :-1] / count[keep, None]
    return bounds[:-1][keep], bounds[1:][keep], mean


def summary_table(timeline: pa.Table, class_names: Sequence[str], media: Sequence[str] | None = None) -> pa.Table:
    """Per media: ``speech_s`` (time its windows cover), ``share_<class>`` (the part of that
    time whose mean probabilities pick the class; they add up to 1) and ``dominant`` (the
    class with the largest share). ``media``: list these too (in this order, then any other
    of the timeline); one without windows gets speech_s 0 and null shares."""
    classes = list(class_names)
    names = list(dict.fromkeys(list(media or []) + sorted(set(timeline.column("media").to_pylist()))))
    data = timeline.to_pydict()
    by_media: dict[str, list[int]] = {}
    for i, m in enumerate(data["media"]):
        by_media.setdefault(m, []).append(i)
    probs = np.column_stack([np.asarray(data[prob_column(c)], np.float64) for c in classes]) if data["media"] \
        else np.zeros((0, len(classes)))
    starts, ends = np.asarray(data["start_s"], np.float64), np.asarray(data["end_s"], np.float64)
    out: dict[str, list[Any]] = {"media": [], "speech_s": [], **{share_column(c): [] for c in classes},
                                 "dominant": []}
    for m in names:
        idx = by_media.get(m, [])
        s, e, mean = covered_pieces(starts[idx], ends[idx], probs[idx])
        length = e - s
        speech = float(length.sum())
        out["media"].append(m)
        out["speech_s"].append(round(speech, 4))
        if speech > 0:
            time = np.bincount(mean.argmax(axis=1), weights=length, minlength=len(classes))
            shares = time / speech
            for j, c in enumerate(classes):
                out[share_column(c)].append(float(shares[j]))
            out["dominant"].append(classes[int(shares.argmax())])
        else:
            for c in classes:
                out[share_column(c)].append(None)
            out["dominant"].append(None)
    schema = pa.schema([pa.field("media", pa.string()), pa.field("speech_s", pa.float64())]
                       + [pa.field(share_column(c), pa.float64()) for c in classes]
                       + [pa.field("dominant", pa.string())])
    return pa.table(out, schema=schema)


# --------------------------------------------------------------------------- plots


def plot_timeline(timeline: pa.Table, class_names: Sequence[str], *, title: str,
                  regions: Sequence[tuple[float, float]] = (), duration_s: float | None = None) -> bytes:
    """One media's timeline as a PNG: the class probabilities over time as stacked areas
    (mean over overlapping windows; gaps without windows left empty), speech regions shaded
    and drawn as a bar below."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    classes = list(class_names)
    data = timeline.to_pydict()
    probs = np.column_stack([np.asarray(data[prob_column(c)], np.float64) for c in classes]) if data["media"] \
        else np.zeros((0, len(classes)))
    s, e, mean = covered_pieces(np.asarray(data["start_s"]), np.asarray(data["end_s"]), probs)
    end = duration_s or max([float(e.max()) if e.size else 0.0] + [r[1] for r in regions] + [1.0])
    fig = Figure(figsize=(10, 3), dpi=100)
    FigureCanvasAgg(fig)  # Figure + Agg canvas, not pyplot: no global state, safe in threads and actors
    ax = fig.add_subplot(1, 1, 1)
    # speech regions: shaded behind the areas (visible where no window is) and as a bar
    # below them (visible everywhere)
    for a, b in regions:
        ax.axvspan(a, b, color="0.9", zorder=0, lw=0)
    if regions:
        ax.broken_barh([(a, b - a) for a, b in regions], (-0.11, 0.07), color="0.35", label="speech")
    # each piece as two points then a NaN, which ends the polygon: gaps stay empty
    x = np.column_stack([s, e, e]).reshape(-1)
    base = np.zeros(len(s))
    for j, c in enumerate(classes):
        top = base + mean[:, j]
        ax.fill_between(x, _steps(base), _steps(top), color=f"C{j}", lw=0, label=c)
        base = top
    ax.set_xlim(0, end)
    ax.set_ylim(-0.13, 1.0)
    ax.set_yticks([0, 0.25, 0.5, 0.75, 1.0])
    ax.set_xlabel("time (s)")
    ax.set_ylabel("probability")
    ax.set_title(title)
    if len(s) or regions:
        ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize="small", frameon=False)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


def _steps(v: np.ndarray) -> np.ndarray:
    return np.column_stack([v, v, np.full(len(v), np.nan)]).reshape(-1)


def plot_names(media: Sequence[str]) -> dict[str, str]:
    """A file name per media for plots/: its base name made safe, with a short hash of the
    full name where two media share a base name (same file name in two folders)."""
    base = {m: re.sub(r"[^A-Za-z0-9._-]+", "_", m.rstrip("/").rsplit("/", 1)[-1]) or "media" for m in media}
    counts: dict[str, int] = {}
    for b in base.values():
        counts[b] = counts.get(b, 0) + 1
    return {m: (b if counts[b] == 1 else f"{b}-{hashlib.sha256(m.encode()).hexdigest()[:8]}") + ".png"
            for m, b in base.items()}


# --------------------------------------------------------------------------- writing


def write_outputs(out: Any, timeline: pa.Table, quarantine: pa.Table | None, class_names: Sequence[str],
                  regions_by_media: Mapping[str, Sequence[tuple[float, float]]],
                  durations_by_media: Mapping[str, float | None]) -> dict[str, Any]:
    """Write every output below ``out`` (a :class:`~lssed.storage.Storage`, local or s3).

    Returns where each went: ``timeline``, ``timeline_csv``, ``summary``, ``quarantine``
    (URIs), ``plots`` (media -> URI) and counts (``media``, ``windows``, ``quarantined``).
    Media of ``regions_by_media`` / ``durations_by_media`` without windows still get a
    summary row and a plot; quarantined media get neither.
    """
    import pyarrow.compute as pc
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    quarantine = quarantine if quarantine is not None else quarantine_table()
    media = list(dict.fromkeys(list(regions_by_media) + list(durations_by_media)
                               + sorted(set(timeline.column("media").to_pylist()))))
    summary = summary_table(timeline, class_names, media)

    def parquet(table: pa.Table) -> bytes:
        sink = pa.BufferOutputStream()
        pq.write_table(table, sink)
        return sink.getvalue().to_pybytes()

    def csv_bytes(table: pa.Table) -> bytes:
        buf = io.BytesIO()
        pacsv.write_csv(table, buf)
        return buf.getvalue()

    out.write_bytes(parquet(timeline), "timeline.parquet")
    out.write_bytes(csv_bytes(timeline), "timeline.csv")
    out.write_bytes(csv_bytes(summary), "summary.csv")
    out.write_bytes(parquet(quarantine.cast(QUARANTINE_SCHEMA)), "quarantine.parquet")
    names = plot_names(media)
    plots = {}
    for m in media:
        rows = timeline.filter(pc.equal(timeline.column("media"), m))
        png = plot_timeline(rows, class_names, title=m, regions=list(regions_by_media.get(m, ())),
                            duration_s=durations_by_media.get(m))
        out.write_bytes(png, "plots", names[m])
        plots[m] = out.join_uri("plots", names[m])
    log.info("predict outputs: %d windows of %d media, %d quarantined, at %s", timeline.num_rows, len(media),
             quarantine.num_rows, out.uri)
    return {
        "timeline": out.join_uri("timeline.parquet"),
        "timeline_csv": out.join_uri("timeline.csv"),
        "summary": out.join_uri("summary.csv"),
        "quarantine": out.join_uri("quarantine.parquet"),
        "plots": plots,
        "media": len(media),
        "windows": timeline.num_rows,
        "quarantined": quarantine.num_rows,
    }
