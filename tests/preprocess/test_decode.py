"""Decoding segments out of real media files (PyAV): formats, seeking accuracy, broken files."""

from __future__ import annotations

import numpy as np
import pytest

from lssed.preprocess.decode import DecodeError, Segment, decode_file, decode_segments

import media
from media import write_audio


GOOD = ["wav16k", "wav44k_stereo", "mp4_aac_video", "mkv_opus", "flac22k"]


@pytest.mark.parametrize("key", GOOD)
def test_segments_have_exact_lengths_at_16k(media_set, key):
    out = decode_file(str(media_set[key]), [Segment(1.0, 2.5), Segment(0.0, 0.2), Segment(4.0, 5.0)])
    assert [o.shape for o in out] == [(24000,), (3200,), (16000,)]
    for o in out:
        assert o.dtype == np.float32
        assert 0.01 < float(np.abs(o).max()) <= 1.0  # real signal, not silence


def test_wav_segment_is_sample_exact(media_set):
    # The 16 kHz mono wav needs no resampling: the segment must equal the source samples.
    src = np.clip(np.rint(media.speechlike(6.0, 16000, 1)[0] * 32767), -32768, 32767) / 32768
    (seg,) = decode_file(str(media_set["wav16k"]), [Segment(2.25, 3.5)])
    np.testing.assert_allclose(seg, src[36000:56000], atol=1e-6)


@pytest.mark.parametrize("key", ["wav44k_stereo", "flac22k", "mp4_aac_video", "mkv_opus"])
@pytest.mark.parametrize("seek_gap", [0.0, 5.0])
def test_seeked_segments_match_the_whole_file(media_set, key, seek_gap):
    # Seeking (gap 0: every segment seeks) or decoding on (gap 5 s) must land where decoding
    # from the start lands (resampler phase and Matroska's 1 ms timestamps aside).
    (whole,) = decode_file(str(media_set[key]), [Segment()])
    segs = [Segment(3.7, 5.2), Segment(1.0, 2.0), Segment(0.3, 0.9)]  # out of order on purpose
    whole = np.pad(whole, (64, 64))
    for seg, got in zip(segs, decode_file(str(media_set[key]), segs, seek_gap_s=seek_gap)):
        a = 64 + int(round(seg.start_s * 16000))
        corr = {lag: float(np.corrcoef(whole[a + lag:a + lag + got.size], got)[0, 1]) for lag in range(-32, 33)}
        lag = max(corr, key=corr.get)
        assert corr[lag] > 0.98, (seg, lag, corr[lag])
        # sample-accurate, except Matroska's millisecond timestamps: within 1 ms
        assert abs(lag) <= (16 if key == "mkv_opus" else 1), (seg, lag)


def test_whole_file_when_no_times(media_set):
    (x,) = decode_file(str(media_set["flac22k"]), [Segment(None, None)])
    assert abs(x.size / 16000 - 6.0) < 0.05


@pytest.mark.parametrize("key,code", [
    ("zero_bytes", "open_failed"), ("non_media", "open_failed"), ("truncated", "open_failed"),
    ("video_only", "no_audio_stream"),
])
def test_broken_files_fail_every_segment_with_a_code(media_set, key, code):
    out = decode_file(str(media_set[key]), [Segment(0.0, 1.0), Segment(0.5, 0.7)])
    assert all(isinstance(o, DecodeError) and o.code == code for o in out), out


def test_missing_file_and_bad_segments(media_set, tmp_path):
    (missing,) = decode_file(str(tmp_path / "nope.wav"), [Segment(0, 1)])
    assert isinstance(missing, DecodeError) and missing.code == "open_failed" and "does not exist" in str(missing)
    out = decode_file(str(media_set["wav16k"]), [Segment(7.0, 8.0), Segment(5.5, 7.0), Segment(5.95, 6.05),
                                                 Segment(2.0, 1.0)])
    assert [getattr(o, "code", "ok") for o in out] == ["segment_past_end", "segment_past_end", "ok", "bad_segment"]
    assert out[2].size == 800  # a shortfall within preprocess.max_missing_s is accepted, shorter


def test_truncated_file_that_still_opens(media_set, tmp_path):
    data = media_set["mkv_opus"].read_bytes()
    cut = tmp_path / "cut.mkv"
    cut.write_bytes(data[: int(len(data) * 0.6)])
    early, late = decode_file(str(cut), [Segment(0.5, 1.5), Segment(4.5, 5.5)])
    assert early.shape == (16000,)
    assert isinstance(late, DecodeError) and late.code in ("segment_past_end", "decode_failed")


def test_file_objects_are_accepted(media_set):
    with open(media_set["mp4_aac_video"], "rb") as f:
        (seg,) = decode_segments(f, [Segment(1.0, 1.5)])
    assert seg.shape == (8000,)


@pytest.mark.parametrize("fmt,layout", [("fltp", "stereo"), ("s16", "stereo"), ("s16p", "mono"), ("dbl", "mono")])
def test_resampling_runs_of_frames_equals_frame_by_frame(fmt, layout):
    # The reader joins decoded frames into runs before resampling; FFmpeg's resampler is a
    # stream, so the samples must be those of feeding it one frame at a time.
    import av

    from lssed.preprocess.decode import _merge_frames, _samples

    rng = np.random.default_rng(0)
    channels = 2 if layout == "stereo" else 1
    planar = fmt.endswith("p")
    frames = []
    for k in range(12):
        n = 1024 if k % 3 else 960  # unequal frame sizes, like a stream after a seek
        x = rng.uniform(-0.5, 0.5, (channels, n))
        if fmt.startswith("s16"):
            x = np.rint(x * 32767).astype(np.int16)
        elif fmt.startswith("flt"):
            x = x.astype(np.float32)
        data = x if planar or channels == 1 and fmt != "s16" else x.T.reshape(1, -1)
        frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(data), format=fmt, layout=layout)
        frame.sample_rate = 44100
        frames.append(frame)

    def run(feed):
        r = av.AudioResampler(format="flt", layout="mono", rate=16000)
        outs = [o for f in feed for o in r.resample(f)] + list(r.resample(None))
        return np.concatenate([_samples(o) for o in outs])

    merged = _merge_frames(frames)
    assert merged is not None and merged.samples == sum(f.samples for f in frames)
    np.testing.assert_allclose(run([merged]), run(frames), atol=1e-6)


def test_stream_whose_format_changes_midway_is_decoded(tmp_path):
    # Two ADTS AAC streams back to back, mono 440 Hz then stereo 880 Hz: FFmpeg's decoder
    # changes its output layout mid-stream, and the reader must set up a new resampler.
    rate = 44100
    t = np.arange(2 * rate) / rate
    mono = write_audio(tmp_path / "a.aac", (0.3 * np.sin(2 * np.pi * 440 * t))[None].astype(np.float32), rate,
                       codec="aac", fmt="adts")
    stereo = write_audio(tmp_path / "b.aac", np.tile(0.3 * np.sin(2 * np.pi * 880 * t), (2, 1)).astype(np.float32),
                         rate, codec="aac", fmt="adts")
    joined = tmp_path / "joined.aac"
    joined.write_bytes(mono.read_bytes() + stereo.read_bytes())

    span, whole = decode_file(str(joined), [Segment(1.0, 3.5), Segment()])
    assert isinstance(span, np.ndarray), span
    assert span.shape == (40000,)
    assert isinstance(whole, np.ndarray), whole
    assert 4.0 <= whole.size / 16000 <= 4.2  # both halves (plus the encoders' priming)

    def peak_hz(x):
        spectrum = np.abs(np.fft.rfft(x * np.hanning(x.size)))
        return np.argmax(spectrum) * 16000 / x.size

    assert abs(peak_hz(span[:8000]) - 440) < 5  # 1.0-1.5 s: the mono part
    assert abs(peak_hz(span[-8000:]) - 880) < 5  # 3.0-3.5 s: the stereo part


def _tone(seconds: float, rate: int, channels: int, hz: float = 440.0) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    return np.tile(0.3 * np.sin(2 * np.pi * hz * t), (channels, 1)).astype(np.float32)


def _peak_hz(x: np.ndarray) -> float:
    spectrum = np.abs(np.fft.rfft(x * np.hanning(x.size)))
    return float(np.argmax(spectrum) * 16000 / x.size)


@pytest.mark.parametrize("rate,channels,layout", [
    (16000, 32, "32 channels"),  # no speaker positions: FFmpeg cannot downmix it, the reader averages
    (384000, 2, "stereo"),
    (48000, 6, "5.1"),  # FFmpeg's own downmix
    (384000, 32, "32 channels"),
])
def test_many_channels_and_high_rates_are_decoded(tmp_path, rate, channels, layout):
    path = write_audio(tmp_path / f"x{rate}_{channels}.wav", _tone(1.0, rate, channels), rate, codec="pcm_s16le",
                       layout=layout)
    span, whole = decode_file(str(path), [Segment(0.25, 0.75), Segment()])
    assert isinstance(span, np.ndarray) and isinstance(whole, np.ndarray), (span, whole)
    assert span.shape == (8000,) and whole.shape == (16000,)
    assert abs(_peak_hz(span) - 440) < 5
    if layout == "32 channels":  # the reader's own downmix: the average of equal channels is the tone
        assert 0.29 < float(np.abs(span).max()) < 0.31


def test_resampler_runs_are_bounded_by_samples_over_all_channels(tmp_path):
    # 32 channels at 384 kHz: 12.3 M samples per second; runs of 2 s would hold 25 M values.
    import av

    from lssed.preprocess.decode import MAX_RUN_VALUES, _Reader

    rate, channels = 384000, 32
    path = write_audio(tmp_path / "big.wav", _tone(0.6, rate, channels), rate, codec="pcm_s16le",
                       layout="32 channels")
    with av.open(str(path)) as container:
        reader = _Reader(container, container.streams.audio[0], 16000)
        reader.seek(0.0)
        runs, largest_frame = [], 0
        while not reader.eof:
            frames = reader._next_run(None)
            runs.append(sum(f.samples for f in frames) * channels)
            largest_frame = max([largest_frame] + [f.samples * channels for f in frames])
    assert sum(runs) == int(0.6 * rate) * channels  # every sample, once
    # more than one run (not all 0.6 s at once), none longer than the bound plus the frame that crossed it
    assert len(runs) >= 2 and max(runs) <= MAX_RUN_VALUES + largest_frame


def test_segments_longer_than_max_segment_s_are_refused(media_set, tmp_path):
    path = str(media_set["wav16k"])  # 6 s
    three_hours, whole, short, tail = decode_file(
        path, [Segment(0.0, 3 * 3600.0), Segment(), Segment(1.0, 5.0), Segment(2.0)], max_segment_s=4.0)
    # refused before decoding: a 3-hour segment is too long, not past the end of a 6 s file
    assert isinstance(three_hours, DecodeError) and three_hours.code == "segment_too_long"
    assert "10800.0 s long" in str(three_hours) and "max_segment_s=4" in str(three_hours)
    assert isinstance(whole, DecodeError) and whole.code == "segment_too_long" and "end of the file" in str(whole)
    assert short.shape == (64000,) and tail.shape == (64000,)  # 4 s each: at the limit is fine

    # a file that does not say how long it is (live Matroska): decoding stops past the limit
    live = write_audio(tmp_path / "live.mkv", media.speechlike(6.0, 16000, 1), 16000, codec="flac",
                       options={"live": "1"})
    too_long, ok = decode_file(str(live), [Segment(), Segment(1.0, 2.0)], max_segment_s=3.0)
    assert isinstance(too_long, DecodeError) and too_long.code == "segment_too_long", too_long
    assert ok.shape == (16000,)
    (fits,) = decode_file(str(live), [Segment(1.5)], max_segment_s=5.0)
    assert isinstance(fits, np.ndarray) and abs(fits.size - 4.5 * 16000) < 0.05 * 16000
