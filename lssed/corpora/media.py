"""Writing and reading back media files with PyAV (it carries its own FFmpeg).

Used by the demo corpus (one file per recording session) and the adapter tests. A
:class:`MediaSpec` names the container, the audio codec, its sample rate and channel count,
and optionally a tiny solid-colour video track.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class MediaSpec:
    """One file layout: ``container`` is FFmpeg's muxer name; ``video_codec`` None = audio only."""

    suffix: str  # file extension with the dot
    container: str
    audio_codec: str
    sample_rate: int
    channels: int
    video_codec: str | None = None
    width: int = 64
    height: int = 48
    fps: int = 5
    bit_rate: int | None = None
    audio_options: tuple[tuple[str, str], ...] = ()
    video_options: tuple[tuple[str, str], ...] = ()


# The demo corpus cycles through these: video and audio containers, 16-48 kHz, mono and stereo.
# Encoder options favour speed: the demo corpus must build in seconds.
_FAST_OPUS = (("compression_level", "0"),)
DEMO_SPECS: tuple[MediaSpec, ...] = (
    MediaSpec(".mp4", "mp4", "aac", 44100, 2, video_codec="libx264", bit_rate=96000,
              audio_options=(("aac_coder", "fast"),), video_options=(("preset", "ultrafast"),)),
    MediaSpec(".mkv", "matroska", "libopus", 48000, 2, video_codec="mpeg4", bit_rate=64000, audio_options=_FAST_OPUS),
    MediaSpec(".wav", "wav", "pcm_s16le", 22050, 1),
    MediaSpec(".webm", "webm", "libopus", 24000, 1, video_codec="libvpx", bit_rate=48000, audio_options=_FAST_OPUS,
              video_options=(("deadline", "realtime"), ("cpu-used", "8"))),
    MediaSpec(".flac", "flac", "flac", 16000, 1),
)


def _audio_format(codec_name: str) -> str:
    import av

    formats = [f.name for f in (av.codec.Codec(codec_name, "w").audio_formats or ())]
    for preferred in ("fltp", "flt", "s16", "s16p"):
        if preferred in formats:
            return preferred
    if not formats:  # pragma: no cover - every codec we use lists its formats
        return "s16"
    return formats[0]


def write_media(path: str | Path, audio: np.ndarray, spec: MediaSpec, *, colour: tuple[int, int, int] = (40, 90, 160)) -> Path:
    """Encode ``audio`` (float32 in [-1, 1], shape (channels, samples) at ``spec.sample_rate``).

    A video track, if the spec has one, is a solid ``colour`` frame at ``spec.fps`` for the
    audio's whole duration.
    """
    import av

    path = Path(path)
    audio = np.asarray(audio, dtype=np.float32)
    if audio.ndim == 1:
        audio = audio[None, :]
    if audio.shape[0] != spec.channels:
        raise ValueError(f"write_media: audio has {audio.shape[0]} channels, spec {spec.suffix} wants {spec.channels}")
    audio = np.clip(audio, -1.0, 1.0)
    n = audio.shape[1]
    layout = "mono" if spec.channels == 1 else "stereo"
    fmt = _audio_format(spec.audio_codec)
    path.parent.mkdir(parents=True, exist_ok=True)
    # bitexact: no random track/segment UIDs or encoder version tags, so a seed gives the same bytes
    with av.open(str(path), mode="w", format=spec.container, options={"fflags": "+bitexact"}) as container:
        vstream = None
        if spec.video_codec:
            vstream = container.add_stream(spec.video_codec, rate=spec.fps, options=dict(spec.video_options))
            vstream.width, vstream.height, vstream.pix_fmt = spec.width, spec.height, "yuv420p"
            vstream.codec_context.thread_count = 1  # same bytes on every machine
        astream = container.add_stream(spec.audio_codec, rate=spec.sample_rate, layout=layout,
                                       options=dict(spec.audio_options))
        if spec.bit_rate:
            astream.bit_rate = spec.bit_rate
        astream.codec_context.thread_count = 1

        if vstream is not None:
            frame_rgb = np.empty((spec.height, spec.width, 3), np.uint8)
            frame_rgb[:] = colour
            n_frames = max(1, int(np.ceil(n / spec.sample_rate * spec.fps)))
            for i in range(n_frames):
                vf = av.VideoFrame.from_ndarray(frame_rgb, format="rgb24")
                vf.pts = i
                vf.time_base = Fraction(1, spec.fps)
                for packet in vstream.encode(vf):
                    container.mux(packet)

        if fmt in ("s16", "s16p"):
            data = np.round(audio * 32767.0).astype(np.int16)
        else:
            data = audio
        chunk = 4096
        for start in range(0, n, chunk):
            block = data[:, start : start + chunk]
            if fmt.endswith("p"):
                arr = np.ascontiguousarray(block)
            else:  # packed: one row of interleaved samples
                arr = np.ascontiguousarray(block.T.reshape(1, -1))
            af = av.AudioFrame.from_ndarray(arr, format=fmt, layout=layout)
            af.sample_rate = spec.sample_rate
            af.pts = start
            af.time_base = Fraction(1, spec.sample_rate)
            for packet in astream.encode(af):
                container.mux(packet)
        for packet in astream.encode(None):
            container.mux(packet)
        if vstream is not None:
            for packet in vstream.encode(None):
                container.mux(packet)
    return path


@dataclass(frozen=True)
class DecodedAudio:
    samples: np.ndarray  # float32, (channels, samples)
    sample_rate: int
    codec: str
    has_video: bool


def read_audio(path: str | Path) -> DecodedAudio:
    """Decode a file's first audio stream whole (float32, its own rate and channels)."""
    import av

    with av.open(str(path)) as container:
        if not container.streams.audio:
            raise ValueError(f"{path} has no audio stream")
        stream = container.streams.audio[0]
        channels = stream.codec_context.channels
        resampler = av.AudioResampler(format="fltp", layout=stream.codec_context.layout, rate=stream.codec_context.sample_rate)
        parts = []
        for frame in container.decode(stream):
            for f in resampler.resample(frame):
                parts.append(f.to_ndarray())
        for f in resampler.resample(None):
            parts.append(f.to_ndarray())
        samples = np.concatenate(parts, axis=1) if parts else np.zeros((channels, 0), np.float32)
        return DecodedAudio(samples.astype(np.float32, copy=False), stream.codec_context.sample_rate,
                            stream.codec_context.name, bool(container.streams.video))


def decoded_duration(path: str | Path) -> tuple[float, int]:
    """Decode every audio frame of the first audio stream; (seconds, channels)."""
    import av

    with av.open(str(path)) as container:
        if not container.streams.audio:
            raise ValueError(f"{path} has no audio stream")
        stream = container.streams.audio[0]
        n = 0
        rate = stream.codec_context.sample_rate
        for frame in container.decode(stream):
            n += frame.samples
            rate = frame.sample_rate
        return n / rate, stream.codec_context.channels
