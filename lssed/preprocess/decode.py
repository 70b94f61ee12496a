"""Decode utterance segments out of any media file to 16 kHz mono float32 (PyAV / FFmpeg).

Paper: "video -> audio at 16 kHz". A media file is opened once for all of its utterances;
each segment is reached by seeking (with a short pre-roll so codecs with inter-frame state,
e.g. Opus or AAC, settle before the segment starts), decoded only up to its end, resampled
with FFmpeg's resampler to mono float32 and trimmed to the exact sample span.

Failures are reported as :class:`DecodeError` with a short ``code`` (``open_failed``,
``no_audio_stream``, ``segment_past_end``, ``decode_failed``, ``bad_segment``) so callers
can quarantine the row with a countable reason.
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
        from lssed.storage import Storage

        st = Storage(uri, getattr(storage, "endpoint_url", None), getattr(storage, "region", None))
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
) -> list[np.ndarray | DecodeError]:
    """Decode each segment of one media file; one float32 mono array (or error) per segment.

    Raises :class:`DecodeError` when the file cannot be opened or has no audio stream (every
    segment of the file fails the same way). A segment that reaches more than
    ``max_missing_s`` past the end of the audio is a ``segment_past_end`` error; a shortfall
    up to that tolerance is accepted and the segment is shorter.
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
        results: list[np.ndarray | DecodeError] = []
        for seg in segments:
            try:
                results.append(_decode_one(container, stream, seg, sample_rate, max_missing_s, media_end))
            except DecodeError as exc:
                results.append(exc)
            except Exception as exc:  # corrupt packets, truncated files
                results.append(DecodeError("decode_failed", f"{type(exc).__name__}: {exc}"))
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


def _decode_one(container: Any, stream: Any, seg: Segment, sample_rate: int, max_missing_s: float,
                media_end: float | None) -> np.ndarray:
    import av

    start = float(seg.start_s) if seg.start_s is not None else 0.0
    end = float(seg.end_s) if seg.end_s is not None else None
    if start < 0 or (end is not None and end <= start):
        raise DecodeError("bad_segment", f"segment [{seg.start_s}, {seg.end_s}] is empty or negative")
    if media_end is not None and start >= media_end:
        raise DecodeError("segment_past_end", f"segment starts at {start:.3f} s but the audio ends at {media_end:.3f} s")

    # The target may be negative: some demuxers (Matroska/Opus) give their first packet a
    # negative timestamp and a backward seek to 0 would land after it.
    tb = stream.time_base
    offset = int((start - PREROLL_S) / tb) + (stream.start_time or 0)
    try:
        container.seek(offset, stream=stream, backward=True)
    except Exception:
        # Some demuxers cannot seek (e.g. streams without an index): decode from the start.
        container.seek(0)

    resampler = av.AudioResampler(format="flt", layout="mono", rate=sample_rate)
    pieces: list[np.ndarray] = []
    first_t: float | None = None
    done = False
    for packet in container.demux(stream):
        for frame in packet.decode():
            t = frame.time
            if end is not None and t is not None and t >= end:
                done = True
                break
            for out in resampler.resample(frame):
                if first_t is None:
                    first_t = t if t is not None else (out.time if out.time is not None else 0.0)
                pieces.append(out.to_ndarray().reshape(-1))
        if done:
            break
    for out in resampler.resample(None):
        if first_t is None and out.time is not None:
            first_t = out.time
        pieces.append(out.to_ndarray().reshape(-1))

    if not pieces or first_t is None:
        raise DecodeError("segment_past_end", f"no audio at or after {start:.3f} s (the audio ends at "
                          f"{media_end if media_end is not None else 'unknown'} s)")
    samples = np.concatenate(pieces).astype(np.float32, copy=False)
    skip = int(round((start - first_t) * sample_rate))
    if skip < 0:
        # the audio starts after the requested start (stream start offset): pad with silence
        if -skip > max_missing_s * sample_rate:
            raise DecodeError("segment_past_end", f"the audio starts at {first_t:.3f} s, after the segment's start {start:.3f} s")
        samples = np.concatenate([np.zeros(-skip, np.float32), samples])
        skip = 0
    samples = samples[skip:]
    if end is not None:
        want = int(round((end - start) * sample_rate))
        if want - len(samples) > max_missing_s * sample_rate:
            got_end = start + len(samples) / sample_rate
            raise DecodeError("segment_past_end", f"segment [{start:.3f}, {end:.3f}] s reaches past the end of the "
                              f"audio at {got_end:.3f} s")
        samples = samples[:want]
    if samples.size == 0:
        raise DecodeError("segment_past_end", f"no audio in [{start:.3f}, {end}] s")
    return np.ascontiguousarray(samples)


def decode_file(uri: str, segments: Sequence[Segment], *, storage: Any | None = None, sample_rate: int = 16000,
                max_missing_s: float = 0.1,
                opener: Callable[[str, Any], str | IO[bytes]] = open_source) -> list[np.ndarray | DecodeError]:
    """Open ``uri`` (local path, file:// or s3://) and decode its segments; never raises.

    A file that cannot be opened yields the same :class:`DecodeError` for every segment.
    """
    try:
        source = opener(uri, storage)
    except DecodeError as exc:
        return [exc] * len(segments)
    except Exception as exc:
        return [DecodeError("open_failed", f"{type(exc).__name__}: {exc}")] * len(segments)
    try:
        return decode_segments(source, segments, sample_rate=sample_rate, max_missing_s=max_missing_s)
    except DecodeError as exc:
        return [exc] * len(segments)
    finally:
        close = getattr(source, "close", None)
        if close is not None:
            close()
