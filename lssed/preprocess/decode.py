"""Decode utterance segments out of any media file to 16 kHz mono float32 (PyAV / FFmpeg).

Paper: "video -> audio at 16 kHz". A media file is opened once for all of its utterances,
taken in start order; a segment far from what is already decoded (more than ``seek_gap_s``)
is reached by seeking (with a short pre-roll so codecs with inter-frame state, e.g. Opus or
AAC, settle before the segment starts), a near one by decoding on. Decoding stops at the
segment's end; FFmpeg's resampler gives mono float32 at 16 kHz, trimmed to the exact span.
So an hour-long interview with a few utterances costs a few seeks, not an hour of decoding.

Memory stays bounded whatever the file: decoded frames go through the resampler in runs of
at most ``RESAMPLE_RUN_S`` seconds and ``MAX_RUN_VALUES`` samples over all channels (a
32-channel 384 kHz file gets short runs), and a segment longer than ``max_segment_s`` is
refused before it is decoded (or, when the file does not say how long it is, as soon as
decoding passes that length). Channels without positions (e.g. "32 channels"), which
FFmpeg cannot downmix, are averaged here.

Failures are reported as :class:`DecodeError` with a short ``code`` (``open_failed``,
``no_audio_stream``, ``segment_past_end``, ``segment_too_long``, ``decode_failed``,
``bad_segment``) so callers can quarantine the row with a countable reason.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from typing import IO, Any, Callable, Sequence
from urllib.parse import urlparse

import numpy as np

log = logging.getLogger(__name__)

# Seek this far before a segment so decoders with pre-roll (Opus 80 ms, AAC 2048 samples)
# have produced clean samples by the segment's start.
PREROLL_S = 0.5
# Default of ``seek_gap_s``: a later segment of the same file that starts within this many
# seconds after what is already decoded is reached by decoding on; further away, by seeking.
SEEK_GAP_S = 5.0
# Decoded frames are resampled in runs of about this many seconds (fewer calls, same output)...
RESAMPLE_RUN_S = 2.0
# ...and of at most this many samples over all channels (16 MB as float32), so that a file
# with many channels or a very high rate is resampled in shorter runs, not in bigger buffers.
MAX_RUN_VALUES = 1 << 22


class DecodeError(Exception):
    """A media file or segment could not be decoded; ``code`` is the countable reason."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


@dataclass(frozen=True)
class Segment:
    """A span of a media file in seconds; ``None`` means the file's start or end."""

    start_s: float | None = None
    end_s: float | None = None


def open_source(uri: str, storage: Any | None = None) -> str | IO[bytes]:
    """What :func:`av.open` takes for ``uri``: a local path, or a seekable file object for s3://.

    ``storage`` is a :class:`lssed.storage.Storage` (for its endpoint and region) or None.
    """
    parsed = urlparse(uri)
    if parsed.scheme in ("s3", "s3a"):
        from lssed.storage import storage_from_config

        st = storage_from_config(storage, uri)  # the endpoint, region, retries and timeouts of `storage`
        try:
            return st.filesystem.open_input_file(st.root)
        except FileNotFoundError as exc:
            raise DecodeError("open_failed", f"{uri} does not exist") from exc
        except OSError as exc:
            raise DecodeError("open_failed", f"cannot open {uri}: {exc}") from exc
    path = parsed.path if parsed.scheme == "file" else uri
    if not os.path.exists(path):
        raise DecodeError("open_failed", f"{path} does not exist")
    return path


def decode_segments(
    source: str | IO[bytes],
    segments: Sequence[Segment],
    *,
    sample_rate: int = 16000,
    max_missing_s: float = 0.1,
    max_segment_s: float | None = None,
    seek_gap_s: float = SEEK_GAP_S,
) -> list[np.ndarray | DecodeError]:
    """Decode each segment of one media file; one float32 mono array (or error) per segment.

    Raises :class:`DecodeError` when the file cannot be opened or has no audio stream (every
    segment of the file fails the same way). A segment that reaches more than
    ``max_missing_s`` past the end of the audio is a ``segment_past_end`` error; a shortfall
    up to that tolerance is accepted and the segment is shorter. A segment longer than
    ``max_segment_s`` (None: no limit) is a ``segment_too_long`` error. ``seek_gap_s``: how
    far after the decoded audio a segment may start and still be reached by decoding on
    (0: every segment seeks).
    """
    import av

    try:
        container = av.open(source, mode="r")
    except DecodeError:
        raise
    except Exception as exc:  # av raises many FFmpeg error classes; all mean "unreadable"
        raise DecodeError("open_failed", f"not a readable media file ({type(exc).__name__}: {exc})") from exc
    try:
        if not container.streams.audio:
            kinds = sorted({s.type for s in container.streams})
            raise DecodeError("no_audio_stream", f"the file has no audio stream (streams: {kinds or 'none'})")
        stream = container.streams.audio[0]
        media_end = _media_end_s(container, stream)
        reader = _Reader(container, stream, sample_rate)
        results: list[np.ndarray | DecodeError] = [DecodeError("decode_failed", "not decoded")] * len(segments)
        order = sorted(range(len(segments)), key=lambda i: (segments[i].start_s or 0.0))
        for i in order:
            try:
                results[i] = _decode_one(reader, segments[i], max_missing_s, media_end, max_segment_s, seek_gap_s)
            except DecodeError as exc:
                results[i] = exc
            except Exception as exc:  # corrupt packets, truncated files
                results[i] = DecodeError("decode_failed", f"{type(exc).__name__}: {exc}")
                reader.reset()
        return results
    finally:
        container.close()


def _media_end_s(container: Any, stream: Any) -> float | None:
    if stream.duration is not None and stream.time_base is not None:
        start = stream.start_time or 0
        return float((start + stream.duration) * stream.time_base)
    if container.duration is not None:
        return container.duration / 1_000_000
    return None


class _Reader:
    """Forward decoding of one audio stream into a 16 kHz mono buffer, with seeks on demand.

    ``t0`` is the media time of ``buf[0]``: the time of the first frame fed to the resampler
    after the last seek; later samples are counted, not re-timed, so they stay contiguous.
    """

    def __init__(self, container: Any, stream: Any, sample_rate: int) -> None:
        self.container, self.stream, self.sr = container, stream, sample_rate
        self.reset()

    def reset(self) -> None:
        self.t0: float | None = None
        self.buf = np.zeros(0, np.float32)
        self.frames: Any = None
        self.resampler: Any = None
        self._resampler_kind: tuple[str, str, int] | None = None  # the input format it was set up for
        self._own_downmix = False  # the input's channels have no positions: average them here
        self.eof = False
        self._held: Any = None  # a frame of another format that ended the last run: starts the next

    @property
    def end_time(self) -> float | None:
        return None if self.t0 is None else self.t0 + self.buf.size / self.sr

    def seek(self, t: float) -> None:
        import av

        self.reset()
        # The target may be negative: some demuxers (Matroska/Opus) give their first packet
        # a negative timestamp and a backward seek to 0 would land after it.
        offset = int((t - PREROLL_S) / self.stream.time_base) + (self.stream.start_time or 0)
        try:
            self.container.seek(offset, stream=self.stream, backward=True)
        except Exception:
            self.container.seek(0)  # demuxers that cannot seek: decode from the start
        self.frames = (f for packet in self.container.demux(self.stream) for f in packet.decode())

    def fill(self, until: float | None) -> None:
        """Decode until the buffer reaches ``until`` seconds (None: the end of the stream).

        Decoded frames are gathered into runs of up to ``RESAMPLE_RUN_S`` seconds and each
        run goes through the resampler in one call: per-frame calls (a few hundred per
        second of AAC or Opus) cost more CPU than the decoding itself.
        """
        pieces = [self.buf]
        have = self.buf.size
        while not self.eof:
            if until is not None and self.t0 is not None and self.t0 + have / self.sr >= until:
                break
            missing = None if until is None or self.t0 is None else until - (self.t0 + have / self.sr)
            frames = self._next_run(missing)
            if self.t0 is None and frames:
                t = frames[0].time  # media time of the first sample after the last seek
                self.t0 = t if t is not None else 0.0
            for out in self._resample(frames):
                if self.t0 is None:
                    self.t0 = out.time if out.time is not None else 0.0
                x = _samples(out)
                pieces.append(x)
                have += x.size
        self.buf = np.concatenate(pieces).astype(np.float32, copy=False) if len(pieces) > 1 else self.buf

    def _next_run(self, missing_s: float | None) -> list[Any]:
        """The next decoded frames of one format: enough for ``missing_s`` seconds (or a run).

        A run ends at ``RESAMPLE_RUN_S`` seconds or ``MAX_RUN_VALUES`` samples over all
        channels, whichever comes first; a frame of another format ends the run and starts
        the next one.
        """
        frames: list[Any] = []
        got = 0.0
        values = 0
        if self._held is not None:
            frames.append(self._held)
            got += self._held.samples / (self._held.sample_rate or 1)
            values += self._held.samples * _channels(self._held)
            self._held = None
        want = RESAMPLE_RUN_S if missing_s is None else min(RESAMPLE_RUN_S, missing_s + 0.05)
        while got < want and values < MAX_RUN_VALUES:
            try:
                frame = next(self.frames)
            except StopIteration:
                self.eof = True
                break
            if frames and _frame_kind(frame) != _frame_kind(frames[0]):
                self._held = frame
                break
            frames.append(frame)
            got += frame.samples / (frame.sample_rate or 1)
            values += frame.samples * _channels(frame)
        return frames

    def _resample(self, frames: list[Any]) -> list[Any]:
        import av

        outs: list[Any] = []
        if frames and _frame_kind(frames[0]) != self._resampler_kind:
            # FFmpeg's resampler is set up for one input format; a stream whose format changes
            # (e.g. mono -> stereo AAC) gets a new one, after the old one's held samples
            if self.resampler is not None:
                outs.extend(self.resampler.resample(None))
            self.resampler = av.AudioResampler(format="flt", layout="mono", rate=self.sr)
            self._resampler_kind = _frame_kind(frames[0])
            self._own_downmix = _unpositioned(frames[0])
        if frames:
            merged = _merge_frames(frames)
            for frame in ([merged] if merged is not None else frames):
                outs.extend(self.resampler.resample(_mean_channels(frame) if self._own_downmix else frame))
        if self.eof and self.resampler is not None:
            outs.extend(self.resampler.resample(None))  # flush what the filter holds back
        return outs

    def drop_before(self, t: float) -> None:
        if self.t0 is not None and t > self.t0:
            n = min(int((t - self.t0) * self.sr), self.buf.size)
            self.buf = self.buf[n:]
            self.t0 += n / self.sr


_PLANE_DTYPES = {"u8": np.uint8, "s16": np.int16, "s32": np.int32, "s64": np.int64, "flt": np.float32,
                 "dbl": np.float64}


def _frame_kind(frame: Any) -> tuple[str, str, int]:
    return frame.format.name, frame.layout.name, frame.sample_rate


def _channels(frame: Any) -> int:
    return len(frame.layout.channels) or 1


def _unpositioned(frame: Any) -> bool:
    """True when the frame's channels have no speaker positions (FFmpeg's "N channels"
    layouts): its resampler cannot build a downmix matrix for them and fails."""
    channels = frame.layout.channels
    return len(channels) > 1 and any(c.name == "NONE" or c.name.startswith("USR") for c in channels)


_INT_SCALE = {"u8": 128.0, "s16": 32768.0, "s32": 2147483648.0, "s64": 9223372036854775808.0}


def _mean_channels(frame: Any) -> Any:
    """A mono float32 frame: the average of ``frame``'s channels (same rate and timing)."""
    import av

    name = frame.format.name
    base = name.rstrip("p") if frame.format.is_planar else name
    channels = _channels(frame)
    x = frame.to_ndarray()
    if not frame.format.is_planar:
        x = x.reshape(-1, channels).T  # interleaved -> (channels, samples)
    x = x[:, : frame.samples].astype(np.float32)
    if base == "u8":
        x -= 128.0
    if base in _INT_SCALE:
        x /= np.float32(_INT_SCALE[base])
    mono = av.AudioFrame.from_ndarray(np.ascontiguousarray(x.mean(axis=0, dtype=np.float32)[None, :]), format="flt",
                                      layout="mono")
    mono.sample_rate = frame.sample_rate
    if frame.time_base is not None:
        mono.time_base = frame.time_base
        mono.pts = frame.pts
    return mono


def _merge_frames(frames: list[Any]) -> Any | None:
    """One frame holding the samples of ``frames`` (same format, layout and rate), or None if
    the format is not one we can join (the caller then resamples frame by frame)."""
    import av

    if len(frames) == 1:
        return frames[0]
    first = frames[0]
    name = first.format.name
    planar = first.format.is_planar
    dtype = _PLANE_DTYPES.get(name.rstrip("p") if planar else name)
    if dtype is None:
        return None
    channels = len(first.layout.channels)
    try:
        if planar:
            data = np.stack([np.concatenate([np.frombuffer(f.planes[c], dtype=dtype, count=f.samples) for f in frames])
                             for c in range(channels)])
        else:
            data = np.concatenate([np.frombuffer(f.planes[0], dtype=dtype, count=f.samples * channels)
                                   for f in frames])[None, :]
        merged = av.AudioFrame.from_ndarray(np.ascontiguousarray(data), format=name, layout=first.layout.name)
    except (ValueError, TypeError, av.FFmpegError):
        return None
    merged.sample_rate = first.sample_rate
    if first.time_base is not None:
        merged.time_base = first.time_base
        merged.pts = first.pts
    return merged


def _samples(frame: Any) -> np.ndarray:
    """A packed mono float32 frame's samples (a view of its buffer; cheaper than ``to_ndarray``)."""
    return np.frombuffer(frame.planes[0], dtype=np.float32, count=frame.samples)


def _decode_one(reader: _Reader, seg: Segment, max_missing_s: float, media_end: float | None,
                max_segment_s: float | None = None, seek_gap_s: float = SEEK_GAP_S) -> np.ndarray:
    sr = reader.sr
    start = float(seg.start_s) if seg.start_s is not None else 0.0
    end = float(seg.end_s) if seg.end_s is not None else None
    if not np.isfinite(start) or start < 0 or (end is not None and (not np.isfinite(end) or end <= start)):
        raise DecodeError("bad_segment", f"segment [{seg.start_s}, {seg.end_s}] is empty, negative or not finite")
    if max_segment_s is not None:
        # refuse before decoding: the segment as listed, or a whole-file row by the file's length
        length = (end if end is not None else media_end if media_end is not None else start) - start
        if length > max_segment_s:
            whole = "" if end is not None else " (to the end of the file)"
            raise DecodeError("segment_too_long", f"the segment{whole} is {length:.1f} s long, more than "
                              f"preprocess.max_segment_s={max_segment_s:g}")
    if media_end is not None and start >= media_end:
        raise DecodeError("segment_past_end", f"segment starts at {start:.3f} s but the audio ends at {media_end:.3f} s")

    # Keep decoding forward when the segment starts inside or shortly after what is decoded
    # (utterances of one interview follow each other); seek otherwise.
    here = reader.end_time
    if reader.frames is None or reader.t0 is None or start < reader.t0 or here is None or start > here + seek_gap_s:
        reader.seek(start)
    until = end
    if until is None and max_segment_s is not None:
        # the file's length is unknown or wrong: decode no more than the limit (and a little
        # more, to tell a segment that ends at the limit from one that goes on)
        until = start + max_segment_s + 0.5
    reader.fill(until)
    if reader.t0 is None or reader.buf.size == 0:
        raise DecodeError("segment_past_end", f"no audio at or after {start:.3f} s (the audio ends at "
                          f"{media_end if media_end is not None else 'unknown'} s)")
    samples = reader.buf
    skip = int(round((start - reader.t0) * sr))
    if skip < 0:
        # the audio starts after the requested start (stream start offset): pad with silence
        if -skip > max_missing_s * sr:
            raise DecodeError("segment_past_end", f"the audio starts at {reader.t0:.3f} s, after the segment's "
                              f"start {start:.3f} s")
        samples = np.concatenate([np.zeros(-skip, np.float32), samples])
        skip = 0
    samples = samples[skip:]
    if end is None and max_segment_s is not None and samples.size > int(round(max_segment_s * sr)):
        reader.reset()  # drop the buffer now; a later segment seeks
        raise DecodeError("segment_too_long", f"the segment (to the end of the file) is longer than "
                          f"preprocess.max_segment_s={max_segment_s:g} (the file does not say its length, or "
                          "says it wrongly)")
    if end is not None:
        want = int(round((end - start) * sr))
        if want - samples.size > max_missing_s * sr:
            got_end = start + samples.size / sr
            raise DecodeError("segment_past_end", f"segment [{start:.3f}, {end:.3f}] s reaches past the end of the "
                              f"audio at {got_end:.3f} s")
        samples = samples[:want]
    if samples.size == 0:
        raise DecodeError("segment_past_end", f"no audio in [{start:.3f}, {end}] s")
    out = np.array(samples, dtype=np.float32, copy=True)
    reader.drop_before(start)
    return out


def decode_file(uri: str, segments: Sequence[Segment], *, storage: Any | None = None, sample_rate: int = 16000,
                max_missing_s: float = 0.1, max_segment_s: float | None = None, seek_gap_s: float = SEEK_GAP_S,
                opener: Callable[[str, Any], str | IO[bytes]] = open_source) -> list[np.ndarray | DecodeError]:
    """Open ``uri`` (local path, file:// or s3://) and decode its segments; never raises.

    A file that cannot be opened yields the same :class:`DecodeError` for every segment.
    ``max_segment_s`` and ``seek_gap_s``: see :func:`decode_segments`.
    """
    try:
        source = opener(uri, storage)
    except DecodeError as exc:
        return [exc] * len(segments)
    except Exception as exc:
        return [DecodeError("open_failed", f"{type(exc).__name__}: {exc}")] * len(segments)
    try:
        return decode_segments(source, segments, sample_rate=sample_rate, max_missing_s=max_missing_s,
                               max_segment_s=max_segment_s, seek_gap_s=seek_gap_s)
    except DecodeError as exc:
        return [exc] * len(segments)
    finally:
        close = getattr(source, "close", None)
        if close is not None:
            close()
