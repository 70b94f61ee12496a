"""lssed.preprocess.spectralgate computes noisereduce's default gate: the library's own numbers on
real decoded speech, on lengths around its frame grid and its 600,000-sample chunks, and on
digital silence (where the library returns NaN and we return silence)."""

from __future__ import annotations

import numpy as np
import pytest

from lssed.preprocess.decode import Segment, decode_file
from lssed.preprocess.denoise import denoise
from lssed.preprocess.spectralgate import CHUNK, reduce_noise

noisereduce = pytest.importorskip("noisereduce")


def _library(y: np.ndarray) -> np.ndarray:
    return noisereduce.reduce_noise(y=y, sr=16000, n_jobs=1, use_torch=False)


def _assert_same(got: np.ndarray, want: np.ndarray) -> None:
    assert got.dtype == np.float32 and got.shape == want.shape
    # float64 inside both; the outputs are float32, so "equal" is a few float32 ulps of the peak.
    peak = float(np.abs(want).max())
    assert peak > 0
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-6 * peak)


@pytest.fixture(scope="module")
def speech(media_set) -> np.ndarray:
    """Real decoded audio: the AAC track of an MP4 video, resampled to 16 kHz mono by the decoder."""
    (samples,) = decode_file(str(media_set["mp4_aac_video"]), [Segment(0.0, 6.0)])
    assert isinstance(samples, np.ndarray) and samples.size > 5 * 16000
    return samples


def test_equals_the_library_on_decoded_speech_of_many_lengths(speech):
    noise = np.random.default_rng(1).standard_normal(speech.size).astype(np.float32) * 0.02
    x = speech + noise
    # lengths on and off the 256-sample hop and the 1024-sample window, down to a few samples
    for start, n in [(0, x.size), (1000, 64000), (333, 16000 + 1), (0, 1024), (7, 1023), (5000, 257), (0, 9)]:
        y = np.ascontiguousarray(x[start:start + n])
        _assert_same(reduce_noise(y, 16000), _library(y))


def test_the_default_denoiser_is_this_gate(speech):
    y = speech[:48000]
    np.testing.assert_array_equal(denoise(y, 16000, "noisereduce"), reduce_noise(y, 16000))


@pytest.mark.parametrize("n", [CHUNK, CHUNK + 1, 2 * CHUNK + 12345])
def test_equals_the_library_across_its_chunks(speech, n):
    """Clips longer than the library's chunk are cut into padded chunks; so are ours."""
    reps = -(-n // speech.size)
    y = np.tile(speech, reps)[:n].copy()
    y[n // 3: n // 3 + 20000] = 0  # a stretch of digital silence inside
    _assert_same(reduce_noise(y, 16000), _library(y))


@pytest.mark.filterwarnings("ignore:invalid value encountered in divide:RuntimeWarning")
def test_silence_stays_silence_where_the_library_gives_nan():
    zeros = np.zeros(32000, np.float32)
    assert np.isnan(_library(zeros)).all()  # 0 / 0 in the library's noise floor
    out = reduce_noise(zeros, 16000)
    assert out.dtype == np.float32 and not out.any()
    assert reduce_noise(np.zeros(0, np.float32), 16000).shape == (0,)


def test_rejects_more_than_one_channel():
    with pytest.raises(ValueError, match="one channel"):
        reduce_noise(np.zeros((2, 100), np.float32), 16000)
