"""Helpers for the adapter tests: real (tiny) media files in a corpus's own layout."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np
import pytest

from lssed.corpora.media import DEMO_SPECS, MediaSpec, write_media

_WAV16 = MediaSpec(".wav", "wav", "pcm_s16le", 16000, 1)


@pytest.fixture
def make_media() -> Callable[..., Path]:
    """``make_media(path, seconds=1.0)``: a real wav or mp4 (H.264 + AAC) tone at ``path``."""

    def make(path: Path, seconds: float = 1.0) -> Path:
        suffix = Path(path).suffix
        spec = _WAV16 if suffix == ".wav" else next(s for s in DEMO_SPECS if s.suffix == suffix)
        t = np.arange(int(seconds * spec.sample_rate)) / spec.sample_rate
        tone = (0.2 * np.sin(2 * np.pi * 220 * t)).astype(np.float32)
        return write_media(path, np.stack([tone] * spec.channels), spec)

    return make
