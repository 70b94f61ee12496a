"""Window planning (long regions cut with overlap, short ones flagged, fixed windows for
vad=none) and given-segment CSVs (local and S3)."""

from __future__ import annotations

import dataclasses

import pytest

from lssed.config import PredictConfig
from lssed.errors import UserError
from lssed.predict.segments import SHORT, Window, plan_windows, read_segments_csv
from lssed.storage import Storage

CFG = PredictConfig()  # windows of 5 s, 1 s overlap, regions under 0.5 s flagged


def _covers(windows, start, end):
    """The windows cover [start, end] without a hole."""
    reach = start
    for w in sorted(windows, key=lambda w: w.start_s):
        if w.start_s > reach + 1e-9:
            return False
        reach = max(reach, w.end_s)
    return reach >= end - 1e-9


def test_long_region_is_cut_into_overlapping_windows():
    windows = plan_windows([(1.0, 13.0)], 20.0, CFG)
    assert [(w.start_s, w.end_s) for w in windows] == [(1.0, 6.0), (4.5, 9.5), (8.0, 13.0)]
    assert all(w.region == 0 and w.flags == () for w in windows)
    for region_s in (5.01, 9.0, 9.01, 17.3, 120.0):
        ws = plan_windows([(0.0, region_s)], None, CFG)
        assert all(abs(w.duration_s - 5.0) < 1e-3 for w in ws), region_s  # every window full length
        assert all(a.end_s - b.start_s >= 1.0 - 1e-3 for a, b in zip(ws, ws[1:])), region_s
        assert _covers(ws, 0.0, region_s) and ws[-1].end_s == round(region_s, 4)
        # the fewest windows: one less, each advancing at most 4 s, would not reach the end
        assert 5.0 + (len(ws) - 2) * 4.0 < region_s, (region_s, len(ws))
    assert plan_windows([(2.0, 7.0)], None, CFG) == [Window(2.0, 7.0, 0, ())]


def test_short_regions_are_kept_and_flagged():
    windows = plan_windows([(0.0, 0.3), (1.0, 1.6), (2.0, 2.2), (3.0, 3.0)], 10.0, CFG)
    assert windows == [Window(0.0, 0.3, 0, (SHORT,)), Window(1.0, 1.6, 1, ()), Window(2.0, 2.2, 2, (SHORT,))]


def test_regions_are_clipped_to_the_file():
    windows = plan_windows([(-0.5, 2.0), (8.0, 12.0), (11.0, 12.0)], 10.0, CFG)
    assert windows == [Window(0.0, 2.0, 0, ()), Window(8.0, 10.0, 1, ())]


def test_fixed_windows_for_vad_none():
    cfg = dataclasses.replace(CFG, vad="none", window_s=2.0, overlap_s=0.5)
    windows = plan_windows([(0.0, 7.3)], 7.3, cfg)
    assert all(abs(w.duration_s - 2.0) < 1e-3 and w.region == 0 for w in windows)
    assert _covers(windows, 0.0, 7.3) and len(windows) == 5
    # window_s unset: the max segment length
    default = dataclasses.replace(CFG, vad="none")
    assert [w.duration_s for w in plan_windows([(0.0, 9.0)], 9.0, default)] == [5.0, 5.0]
    # a file shorter than min_segment_s is one flagged window
    assert plan_windows([(0.0, 0.2)], 0.2, cfg) == [Window(0.0, 0.2, 0, (SHORT,))]
    with pytest.raises(ValueError, match="overlap"):
        plan_windows([(0.0, 9.0)], 9.0, dataclasses.replace(cfg, overlap_s=2.0))


def test_read_segments_csv_local(tmp_path):
    (tmp_path / "sub").mkdir()
    csv_path = tmp_path / "sub" / "segments.csv"
    csv_path.write_text("path,start,end,note\n"
                        "media/b.mp4,4.5,6,x\n"
                        "media/a.wav,0,1.25,\n"
                        "media/b.mp4,1,2.5,\n"
                        "/data/abs.flac,3,4,\n"
                        "s3://bucket/c.mkv,0,2,\n")
    segments = read_segments_csv(str(csv_path))
    assert segments == {
        str(tmp_path / "sub" / "media" / "b.mp4"): [(1.0, 2.5), (4.5, 6.0)],
        str(tmp_path / "sub" / "media" / "a.wav"): [(0.0, 1.25)],
        "/data/abs.flac": [(3.0, 4.0)],
        "s3://bucket/c.mkv": [(0.0, 2.0)],
    }


@pytest.mark.parametrize("text, match", [
    ("file,start,end\na.wav,0,1\n", r"lacks column\(s\) \['path'\]"),
    ("path,start,end\na.wav,zero,1\n", "line 2: start and end must be numbers"),
    ("path,start,end\na.wav,0,1\nb.wav,2,1\n", "line 3: need 0 <= start < end"),
    ("path,start,end\n,0,1\n", "line 2: empty path"),
])
def test_read_segments_csv_errors_name_the_row(tmp_path, text, match):
    p = tmp_path / "segments.csv"
    p.write_text(text)
    with pytest.raises(UserError, match=match):
        read_segments_csv(str(p))
    with pytest.raises(UserError, match="does not exist"):
        read_segments_csv(str(tmp_path / "missing.csv"))


def test_read_segments_csv_from_s3(s3_endpoint):
    store = Storage("s3://lssed-test/predict-segments")
    store.write_bytes(b"path,start,end\nmedia/a.mp4,0.5,2\n../other/b.wav,1,3\n", "lists", "segments.csv")
    segments = read_segments_csv("s3://lssed-test/predict-segments/lists/segments.csv", store)
    assert segments == {"s3://lssed-test/predict-segments/lists/media/a.mp4": [(0.5, 2.0)],
                        "s3://lssed-test/predict-segments/other/b.wav": [(1.0, 3.0)]}


@pytest.mark.parametrize("override, key", [
    ("predict.overlap_s=5", "predict.overlap_s"),
    ("predict.max_segment_s=0", "predict.max_segment_s"),
    ("predict.vad_threshold=1.2", "predict.vad_threshold"),
    ("predict.extensions=[mp4]", "predict.extensions"),
    ("predict.decode_actors=0", "predict.decode_actors"),
])
def test_predict_settings_are_validated(override, key):
    from lssed.config import ConfigError, load_config
    from lssed.validate import validate_config

    validate_config(load_config(None, ["predict.vad=none", "predict.window_s=2", "predict.overlap_s=1.5"]), "predict")
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        validate_config(load_config(None, [override]), "predict")
    with pytest.raises(ConfigError, match="fixed window"):
        validate_config(load_config(None, ["predict.vad=none", "predict.window_s=1", "predict.overlap_s=1"]), "predict")
