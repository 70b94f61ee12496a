"""`lssed predict` end to end on the demo media: a real local Ray, real codecs, the session's demo run.

Four pipeline runs, shared by the tests through module fixtures: given segments with --run,
the same with the run exported to ONNX, silero VAD on a folder with a broken file, and
fixed windows from S3 to S3 (moto).
"""

from __future__ import annotations

import csv
import json
import shutil

import numpy as np
import pyarrow.parquet as pq
import pytest

from lssed.cli import main

pytestmark = [pytest.mark.ray]

# The run scored whole utterances; windows longer than the longest demo utterance keep each
# given segment one window, so the two see the same input.
WHOLE = ("--set", "predict.max_segment_s=30")
# Each run starts its own actors (torch imports): one media actor is enough where the pool's
# size is not what is tested, and it keeps the file's time down on a 2-core machine.
ONE_ACTOR = ("--set", "predict.decode_actors=1")


def _timeline(out) -> list[dict]:
    return pq.read_table(str(out / "timeline.parquet")).to_pylist()


@pytest.fixture(scope="module")
def held_out(demo_manifest, demo_run, tmp_path_factory):
    """A segments CSV of the test split's media (every labelled utterance the run predicted),
    and the run's own prediction per utterance."""
    from lssed.train.outputs import read_predictions

    run, results, _ = demo_run
    preds = {r["utt_id"]: r for r in read_predictions(run).to_pylist() if r["split"] == "test"}
    rows = [r for r in pq.read_table(demo_manifest).to_pylist() if r["utt_id"] in preds]
    assert len(rows) == len(preds) >= 8
    path = tmp_path_factory.mktemp("held_out") / "segments.csv"
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["path", "start", "end"])
        for r in rows:
            w.writerow([r["media_uri"], r["start_s"], r["end_s"]])
    return path, rows, preds, results.class_names


@pytest.fixture(scope="module")
def given(held_out, demo_run, tmp_path_factory):
    """Given segments with --run (through the command line)."""
    segments, *_ = held_out
    out = tmp_path_factory.mktemp("given")
    assert main(["predict", "--segments", str(segments), "--run", demo_run[0].uri, "--out", str(out), *WHOLE,
                 "--set", "predict.decode_actors=2"]) == 0
    return out


def _labels_by_utterance(timeline: list[dict], rows: list[dict]) -> dict[str, tuple[str, np.ndarray]]:
    out = {}
    for r in rows:
        match = [t for t in timeline if t["media"] == r["media_uri"] and abs(t["start_s"] - r["start_s"]) < 1e-6]
        assert len(match) == 1, (r["utt_id"], match)  # a demo utterance (< 5 s) is one window
        out[r["utt_id"]] = match[0]
    return out


def test_given_segments_match_the_runs_own_predictions(given, held_out):
    _, rows, preds, class_names = held_out
    timeline = _timeline(given)
    assert len(timeline) == len(rows)
    by_utt = _labels_by_utterance(timeline, rows)
    diffs = []
    for utt, t in by_utt.items():
        ours = np.array([t[f"p_{c}"] for c in class_names])
        theirs = np.asarray(preds[utt]["probabilities"])
        diffs.append(float(np.abs(ours - theirs).max()))
        assert t["label"] == class_names[preds[utt]["predicted"]], utt
    # The same chain and model: the log-mels are bit-identical except where preprocessing
    # split a file's rows over two chunks and reached a segment by seeking (an Opus decoder's
    # pre-roll then gives slightly different samples); float noise only otherwise.
    assert float(np.median(diffs)) < 1e-5 and max(diffs) < 1e-2
    assert not (given / "quarantine.parquet").exists() or pq.read_table(str(given / "quarantine.parquet")).num_rows == 0


def test_exported_onnx_gives_the_same_labels_as_the_run(given, held_out, demo_run, tmp_path):
    _, rows, _, class_names = held_out
    rows = [r for r in rows if r["media_uri"] == rows[0]["media_uri"]]  # one file's utterances suffice
    segments = tmp_path / "segments.csv"
    segments.write_text("path,start,end\n" + "".join(f"{r['media_uri']},{r['start_s']},{r['end_s']}\n" for r in rows))
    model = tmp_path / "model.onnx"
    assert main(["models", "export", demo_run[0].uri, "--format", "onnx", "--out", str(model)]) == 0
    out = tmp_path / "onnx"
    assert main(["predict", "--segments", str(segments), "--checkpoint", str(model), "--out", str(out), *WHOLE,
                 *ONE_ACTOR]) == 0
    ours = _labels_by_utterance(_timeline(out), rows)
    theirs = _labels_by_utterance(_timeline(given), rows)
    assert {u: t["label"] for u, t in ours.items()} == {u: t["label"] for u, t in theirs.items()}
    diff = max(abs(ours[u][f"p_{c}"] - theirs[u][f"p_{c}"]) for u in ours for c in class_names)
    assert diff < 1e-4


@pytest.fixture(scope="module")
def folder_run(held_out, demo_run, tmp_path_factory):
    """Silero VAD (the default) over a folder: two demo files and one that is not media."""
    _, rows, *_ = held_out
    folder = tmp_path_factory.mktemp("inbox")
    media = sorted({r["media_uri"] for r in rows})[:2]
    for m in media:
        shutil.copy(m, folder / m.rsplit("/", 1)[-1])
    (folder / "sub").mkdir()
    (folder / "sub" / "broken.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42 this is no video" * 40)
    (folder / "notes.txt").write_text("not media: skipped by extension")
    out = tmp_path_factory.mktemp("folder_out")
    assert main(["predict", str(folder), "--run", demo_run[0].uri, "--out", str(out), *ONE_ACTOR]) == 0
    return folder, media, out


def test_vad_timeline_covers_the_labelled_speech(folder_run, demo_corpus_csv):
    folder, media, out = folder_run
    timeline = _timeline(out)
    corpus_dir = demo_corpus_csv.parent
    with open(demo_corpus_csv) as fh:
        truth = list(csv.DictReader(fh))
    for m in media:
        name = m.rsplit("/", 1)[-1]
        windows = [(t["start_s"], t["end_s"]) for t in timeline if t["media"].endswith("/" + name)]
        assert windows, name
        speech = [(float(r["start"]), float(r["end"])) for r in truth
                  if (corpus_dir / r["path"]).resolve().name == name]
        total = sum(e - s for s, e in speech)
        grid = np.arange(0.0, max(e for _, e in speech), 0.01)
        said = np.zeros(grid.size, bool)
        found = np.zeros(grid.size, bool)
        for s, e in speech:
            said |= (grid >= s) & (grid < e)
        for s, e in windows:
            found |= (grid >= s) & (grid < e)
        covered = float(np.sum(said & found)) * 0.01
        assert covered >= 0.9 * total, (name, covered, total)
    summary = list(csv.DictReader(open(out / "summary.csv")))
    assert len(summary) == 2
    assert all((out / "plots").glob("*.png"))


def test_a_broken_file_is_quarantined_and_the_rest_predicted(folder_run):
    folder, media, out = folder_run
    q = pq.read_table(str(out / "quarantine.parquet")).to_pylist()
    assert [r["media"] for r in q] == [str(folder / "sub" / "broken.mp4")]
    assert q[0]["stage"] == "decode" and q[0]["code"] and q[0]["reason"]
    predicted = {t["media"] for t in _timeline(out)}
    assert predicted == {str(folder / m.rsplit("/", 1)[-1]) for m in media}


def test_fixed_windows_from_s3_to_s3_tile_the_file(held_out, demo_run, s3_endpoint, tmp_path):
    from lssed.preprocess.decode import Segment, decode_file
    from lssed.storage import Storage

    _, rows, *_ = held_out
    local = sorted({r["media_uri"] for r in rows})[0]
    name = local.rsplit("/", 1)[-1]
    bucket = Storage("s3://lssed-test/predict-in", endpoint_url=s3_endpoint)
    with open(local, "rb") as fh:
        bucket.write_bytes(fh.read(), "videos", name)
    out = Storage("s3://lssed-test/predict-out", endpoint_url=s3_endpoint)
    assert main(["predict", bucket.join_uri("videos"), "--run", demo_run[0].uri, "--out", out.uri, "--vad", "none",
                 "--set", f"storage.endpoint_url={s3_endpoint}", *ONE_ACTOR]) == 0
    timeline = pq.read_table(out.path("timeline.parquet"), filesystem=out.filesystem).to_pylist()
    assert {t["media"] for t in timeline} == {bucket.join_uri("videos", name)}
    (whole,) = decode_file(local, [Segment(None, None)])
    duration = whole.size / 16000
    spans = sorted((t["start_s"], t["end_s"]) for t in timeline)
    assert spans[0][0] == 0.0 and abs(spans[-1][1] - duration) < 0.05
    assert all(b[0] <= a[1] + 1e-9 for a, b in zip(spans, spans[1:]))  # no gaps
    assert all(e - s <= 5.0 + 1e-6 for s, e in spans)  # predict.window_s = max_segment_s
    assert len(spans) >= duration / 5.0
    assert out.exists("summary.csv") and out.exists("timeline.csv")
