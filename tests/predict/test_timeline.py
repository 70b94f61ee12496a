"""Timeline, summary, plots and the written outputs (local and S3)."""

from __future__ import annotations

import io

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest

from lssed.config import PredictConfig
from lssed.predict.segments import plan_windows
from lssed.predict.timeline import (QUARANTINE_SCHEMA, covered_pieces, plot_names, quarantine_table, summary_table,
                                    timeline_table, write_outputs)
from lssed.storage import Storage

CLASSES = ["angry", "happy", "neutral", "sad"]
PNG = b"\x89PNG\r\n\x1a\n"
REGIONS = {
    "videos/talk.mp4": [(0.5, 12.0), (13.0, 13.3), (15.0, 19.0)],
    "other/talk.mp4": [(1.0, 3.0)],  # same base name in another folder
    "s3://bucket/quiet.wav": [],  # no speech found
}
DURATIONS = {"videos/talk.mp4": 20.0, "other/talk.mp4": 4.0, "s3://bucket/quiet.wav": 3.0}


@pytest.fixture(scope="module")
def rows():
    rng = np.random.default_rng(0)
    out = []
    for media, regions in REGIONS.items():
        for w in plan_windows(regions, DURATIONS[media], PredictConfig()):
            out.append(dict(media=media, start_s=w.start_s, end_s=w.end_s, region=w.region, flags=w.flags,
                            probs=rng.dirichlet(np.ones(len(CLASSES)))))
    return out[::-1]  # any order in, sorted out


@pytest.fixture(scope="module")
def timeline(rows):
    return timeline_table(rows, CLASSES)


def test_timeline_columns_labels_and_order(rows, timeline):
    assert timeline.column_names == ["media", "start_s", "end_s", "label", "confidence", "p_angry", "p_happy",
                                     "p_neutral", "p_sad", "flags", "region"]
    assert timeline.num_rows == len(rows) == 6
    data = timeline.to_pydict()
    keys = list(zip(data["media"], data["start_s"]))
    assert keys == sorted(keys)
    probs = np.column_stack([data[f"p_{c}"] for c in CLASSES])
    assert np.allclose(probs.sum(axis=1), 1.0, atol=1e-5)
    assert data["label"] == [CLASSES[i] for i in probs.argmax(axis=1)]
    assert np.allclose(data["confidence"], probs.max(axis=1))
    assert data["flags"].count("short") == 1 and set(data["flags"]) == {"", "short"}
    assert data["region"] == [0, 0, 0, 0, 1, 2]  # other/talk.mp4, then videos/talk.mp4's three regions
    # probabilities may also come as p_<class> keys, and flags as a joined string
    same = timeline_table([{**{k: v for k, v in r.items() if k != "probs"},
                            **{f"p_{c}": float(p) for c, p in zip(CLASSES, r["probs"])},
                            "flags": ";".join(r["flags"])} for r in rows], CLASSES)
    assert same.equals(timeline)
    with pytest.raises(ValueError, match="3 probabilities for 4 classes"):
        timeline_table([dict(rows[0], probs=[0.2, 0.3, 0.5])], CLASSES)


def test_summary_shares_add_up_and_cover_the_windows(timeline):
    summary = summary_table(timeline, CLASSES, list(REGIONS)).to_pydict()
    assert summary["media"] == list(REGIONS)
    by = {m: i for i, m in enumerate(summary["media"])}
    for media in ("videos/talk.mp4", "other/talk.mp4"):
        i = by[media]
        shares = [summary[f"share_{c}"][i] for c in CLASSES]
        assert abs(sum(shares) - 1.0) < 1e-9, (media, shares)
        assert summary["dominant"][i] == CLASSES[int(np.argmax(shares))]
    # speech time = the union of the windows (here the regions themselves), each second once
    assert summary["speech_s"][by["videos/talk.mp4"]] == pytest.approx(11.5 + 0.3 + 4.0)
    assert summary["speech_s"][by["other/talk.mp4"]] == pytest.approx(2.0)
    i = by["s3://bucket/quiet.wav"]
    assert summary["speech_s"][i] == 0 and summary["dominant"][i] is None and summary["share_sad"][i] is None


def test_summary_counts_overlaps_by_their_mean():
    rows = [dict(media="m", start_s=0.0, end_s=4.0, region=0, flags=(), probs=[0.7, 0.1, 0.1, 0.1]),
            dict(media="m", start_s=3.0, end_s=6.0, region=0, flags=(), probs=[0.2, 0.1, 0.0, 0.7])]
    # [3, 4) averages to (0.45, 0.1, 0.05, 0.4): angry; so angry 4 s, sad 2 s
    summary = summary_table(timeline_table(rows, CLASSES), CLASSES).to_pylist()
    assert summary == [dict(media="m", speech_s=6.0, share_angry=pytest.approx(4 / 6), share_happy=0.0,
                            share_neutral=0.0, share_sad=pytest.approx(2 / 6), dominant="angry")]
    s, e, mean = covered_pieces(np.array([0.0, 3.0, 8.0]), np.array([4.0, 6.0, 9.0]), np.eye(3))
    assert s.tolist() == [0.0, 3.0, 4.0, 8.0] and e.tolist() == [3.0, 4.0, 6.0, 9.0]  # the gap 6-8 is no piece
    assert mean.tolist() == [[1, 0, 0], [0.5, 0.5, 0], [0, 1, 0], [0, 0, 1]]


def _read_csv(data: bytes, schema: pa.Schema) -> pa.Table:
    # flags "" must stay "" (not null) to compare with the Parquet file
    options = pacsv.ConvertOptions(column_types=schema, strings_can_be_null=False, quoted_strings_can_be_null=False)
    return pacsv.read_csv(io.BytesIO(data), convert_options=options)


def _check_outputs(store: Storage, result: dict, timeline: pa.Table) -> None:
    written = pq.read_table(io.BytesIO(store.read_bytes("timeline.parquet")))
    assert written.equals(timeline)
    assert _read_csv(store.read_bytes("timeline.csv"), timeline.schema).equals(timeline)
    summary = pacsv.read_csv(io.BytesIO(store.read_bytes("summary.csv")))
    assert summary.column("media").to_pylist() == list(REGIONS)
    quarantine = pq.read_table(io.BytesIO(store.read_bytes("quarantine.parquet")))
    assert quarantine.schema.equals(QUARANTINE_SCHEMA)
    assert quarantine.to_pylist() == [dict(media="broken.mp4", stage="decode", code="open_failed",
                                           reason="not a media file")]
    assert set(result["plots"]) == set(REGIONS)
    assert len(set(result["plots"].values())) == len(REGIONS)  # same base names, distinct plots
    for media, uri in result["plots"].items():
        png = store.at(uri).read_bytes()
        assert png.startswith(PNG) and len(png) > 5000, media
    assert (result["media"], result["windows"], result["quarantined"]) == (3, 6, 1)


def test_write_outputs_local(tmp_path, timeline):
    store = Storage(str(tmp_path / "out"))
    quarantine = quarantine_table([dict(media="broken.mp4", stage="decode", code="open_failed",
                                        reason="not a media file")])
    result = write_outputs(store, timeline, quarantine, CLASSES, REGIONS, DURATIONS)
    _check_outputs(store, result, timeline)
    assert sorted(p.name for p in (tmp_path / "out" / "plots").iterdir()) == sorted(
        plot_names(list(REGIONS)).values())
    # a plot is as wide as its media: 1000 x 300 px
    import matplotlib.image as mpimg

    assert mpimg.imread(result["plots"]["videos/talk.mp4"]).shape[:2] == (300, 1000)


def test_write_outputs_s3(s3_endpoint, timeline):
    store = Storage("s3://lssed-test/predict-out")
    quarantine = quarantine_table([dict(media="broken.mp4", stage="decode", code="open_failed",
                                        reason="not a media file")])
    result = write_outputs(store, timeline, quarantine, CLASSES, REGIONS, DURATIONS)
    assert result["timeline"] == "s3://lssed-test/predict-out/timeline.parquet"
    assert all(uri.startswith("s3://lssed-test/predict-out/plots/") for uri in result["plots"].values())
    _check_outputs(store, result, timeline)


def test_write_outputs_without_quarantine_or_windows(tmp_path):
    store = Storage(str(tmp_path / "empty"))
    result = write_outputs(store, timeline_table([], CLASSES), None, CLASSES, {"a.wav": []}, {"a.wav": 2.0})
    assert pq.read_table(str(tmp_path / "empty" / "quarantine.parquet")).num_rows == 0
    assert pq.read_table(str(tmp_path / "empty" / "timeline.parquet")).num_rows == 0
    assert (result["media"], result["windows"]) == (1, 0)
    assert store.at(result["plots"]["a.wav"]).read_bytes().startswith(PNG)


def test_plot_names_are_safe_and_distinct():
    names = plot_names(["a/x y.mp4", "b/x y.mp4", "s3://bucket/dir/z.wav"])
    assert names["s3://bucket/dir/z.wav"] == "z.wav.png"
    assert names["a/x y.mp4"] != names["b/x y.mp4"]
    assert all(n.startswith("x_y.mp4-") and n.endswith(".png") for m, n in names.items() if "x y" in m)
