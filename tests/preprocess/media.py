"""Small real media files for the preprocess tests, written with PyAV (no binaries committed).

A speech-like signal (harmonic chirp with syllable-rate envelope) plus noise, encoded into
several containers/codecs/rates/channel counts, and a set of broken files.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import numpy as np


def speechlike(seconds: float, rate: int, seed: int = 0, channels: int = 1) -> np.ndarray:
    """(channels, samples) float32 in [-0.6, 0.6]: harmonics of a gliding f0, 4 Hz envelope, noise."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * rate)) / rate
    f0 = 140 + 40 * np.sin(2 * np.pi * 0.3 * t + seed)
    phase = 2 * np.pi * np.cumsum(f0) / rate
    voice = sum(np.sin(k * phase) / k for k in range(1, 6))
    env = 0.5 * (1 + np.sin(2 * np.pi * 4 * t)) ** 2 / 4
    x = 0.25 * voice * env + 0.02 * rng.standard_normal(t.size)
    x = np.clip(x, -0.6, 0.6).astype(np.float32)
    return np.stack([x * (1.0 - 0.1 * c) for c in range(channels)])


def write_audio(path: Path, samples: np.ndarray, rate: int, *, codec: str, fmt: str | None = None,
                video: bool = False, layout: str | None = None, options: dict[str, str] | None = None) -> Path:
    """Encode (channels, samples) float32 into ``path`` (container from the suffix or ``fmt``).

    ``layout``: FFmpeg's channel layout name (default mono/stereo; e.g. ``"5.1"``, or
    ``"32 channels"`` for channels without speaker positions). ``options``: the muxer's.
    """
    import av

    channels = samples.shape[0]
    layout = layout or ("mono" if channels == 1 else "stereo")
    with av.open(str(path), mode="w", format=fmt, options=options or {}) as out:
        vstream = None
        if video:
            vstream = out.add_stream("mpeg4", rate=10)
            vstream.width, vstream.height, vstream.pix_fmt = 64, 48, "yuv420p"
        astream = out.add_stream(codec, rate=rate, layout=layout)
        frame_size = astream.codec_context.frame_size or 1024
        sample_fmt = astream.codec_context.format.name
        pos = 0
        n = samples.shape[1]
        pts = 0
        while pos < n:
            block = samples[:, pos:pos + frame_size]
            if block.shape[1] < frame_size and astream.codec_context.frame_size:
                block = np.pad(block, ((0, 0), (0, frame_size - block.shape[1])))
            frame = _frame(block, sample_fmt, layout, rate)
            frame.pts = pts
            frame.time_base = Fraction(1, rate)
            pts += block.shape[1]
            for packet in astream.encode(frame):
                out.mux(packet)
            pos += frame_size
        for packet in astream.encode(None):
            out.mux(packet)
        if vstream is not None:
            _write_video(out, vstream, n / rate)
    return path


def _frame(block: np.ndarray, sample_fmt: str, layout: str, rate: int):
    import av

    planar = sample_fmt.endswith("p")
    base = sample_fmt.rstrip("p")
    if base == "s16":
        data = np.clip(np.rint(block * 32767), -32768, 32767).astype(np.int16)
    elif base == "s32":
        data = np.clip(np.rint(block * 2147483647.0), -2**31, 2**31 - 1).astype(np.int32)
    else:
        data = block.astype(np.float32)
    if not planar:
        data = data.T.reshape(1, -1)
    frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(data), format=sample_fmt, layout=layout)
    frame.sample_rate = rate
    return frame


def _write_video(out, vstream, seconds: float) -> None:
    import av

    for i in range(max(1, int(seconds * 10))):
        img = np.full((48, 64, 3), (i * 7) % 255, dtype=np.uint8)
        frame = av.VideoFrame.from_ndarray(img, format="rgb24")
        frame.pts = i
        for packet in vstream.encode(frame):
            out.mux(packet)
    for packet in vstream.encode(None):
        out.mux(packet)


def write_video_only(path: Path, seconds: float = 1.0) -> Path:
    import av

    with av.open(str(path), mode="w") as out:
        vstream = out.add_stream("mpeg4", rate=10)
        vstream.width, vstream.height, vstream.pix_fmt = 64, 48, "yuv420p"
        _write_video(out, vstream, seconds)
    return path


def make_media_set(root: Path, seconds: float = 6.0) -> dict[str, Path]:
    """Good files in several containers plus broken ones; keys name what each file is."""
    root.mkdir(parents=True, exist_ok=True)
    files = {
        "wav16k": write_audio(root / "a16k.wav", speechlike(seconds, 16000, 1), 16000, codec="pcm_s16le"),
        "wav44k_stereo": write_audio(root / "b44k.wav", speechlike(seconds, 44100, 2, channels=2), 44100, codec="pcm_s16le"),
        "mp4_aac_video": write_audio(root / "c.mp4", speechlike(seconds, 48000, 3, channels=2), 48000, codec="aac", video=True),
        "mkv_opus": write_audio(root / "d.mkv", speechlike(seconds, 48000, 4), 48000, codec="libopus"),
        "flac22k": write_audio(root / "e.flac", speechlike(seconds, 22050, 5), 22050, codec="flac"),
    }
    (root / "zero.wav").write_bytes(b"")
    files["zero_bytes"] = root / "zero.wav"
    (root / "notmedia.mp4").write_text("this is not a media file\n" * 20)
    files["non_media"] = root / "notmedia.mp4"
    data = files["mp4_aac_video"].read_bytes()
    (root / "truncated.mp4").write_bytes(data[: len(data) // 3])
    files["truncated"] = root / "truncated.mp4"
    files["video_only"] = write_video_only(root / "silent.mp4", 1.0)
    return files


LABELS = ("angry", "neutral", "happy", "sad")
SPLITS = ("train", "train", "val", "test")


def manifest_rows(files: dict[str, Path]) -> tuple[list[dict], dict[str, str]]:
    """Manifest rows over ``make_media_set``'s files and the quarantine reason each bad row must get."""
    spans = [
        ("wav16k", 0.0, 1.5), ("wav16k", 1.5, 3.0), ("wav16k", 3.0, 4.5),
        ("wav44k_stereo", 0.5, 2.0), ("wav44k_stereo", 2.0, 5.9),
        ("mp4_aac_video", 0.0, 2.0), ("mp4_aac_video", 2.0, 4.0), ("mp4_aac_video", 4.0, 6.0),
        ("mkv_opus", 1.0, 3.0), ("mkv_opus", None, None),
        ("flac22k", 0.0, 6.0),
    ]
    bad = [
        ("zero_bytes", 0.0, 1.0, "decode/open_failed"),
        ("non_media", 0.0, 1.0, "decode/open_failed"),
        ("truncated", 0.0, 1.0, "decode/open_failed"),
        ("video_only", 0.0, 1.0, "decode/no_audio_stream"),
        ("wav16k", 7.0, 8.0, "decode/segment_past_end"),
        ("wav16k", 5.5, 7.0, "decode/segment_past_end"),
        ("wav16k", 2.0, 2.01, "decode/too_short"),
        ("missing", 0.0, 1.0, "decode/open_failed"),
    ]
    rows, expected = [], {}
    for k, (key, start, end, *reason) in enumerate(spans + bad):
        utt = f"utt{k:03d}_{key}"
        media = str(files[key]) if key in files else str(next(iter(files.values())).parent / "does-not-exist.wav")
        rows.append({
            "utt_id": utt, "corpus": "synthetic", "media_uri": media, "start_s": start, "end_s": end,
            "speaker": f"spk{k % 3}", "gender": "FM"[k % 2], "age": None, "session": None,
            "label": LABELS[k % 4], "label4": k % 4, "split": SPLITS[k % 4], "text": None,
        })
        if reason:
            expected[utt] = reason[0]
    return rows, expected


def write_manifest(path: Path, rows: list[dict]) -> Path:
    import pyarrow as pa
    import pyarrow.parquet as pq

    from lssed.schema import MANIFEST_SCHEMA

    pq.write_table(pa.Table.from_pylist(rows, schema=MANIFEST_SCHEMA), path)
    return path
