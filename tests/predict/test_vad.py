"""Voice activity detection on real synthesized speech (the demo corpus's media, decoded by the
real decoder) against the speech its corpus CSV says is there; nothing in noise or silence."""

from __future__ import annotations

import csv
import dataclasses
from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest

from lssed.config import PredictConfig
from lssed.predict.vad import silero_probabilities, speech_regions
from lssed.preprocess.decode import Segment, decode_file

RATE = 16000
GRID_S = 0.01  # coverage is measured on a 10 ms grid


@pytest.fixture(scope="module")
def demo_audio(demo_corpus_csv):
    """(media name, 16 kHz samples, labelled speech spans) of every demo media file."""
    spans = defaultdict(list)
    with open(demo_corpus_csv, newline="") as fh:
        for row in csv.DictReader(fh):
            spans[row["path"]].append((float(row["start"]), float(row["end"])))
    root = Path(demo_corpus_csv).parent
    out = []
    for rel in sorted(spans):
        (x,) = decode_file(str(root / rel), [Segment()])
        assert isinstance(x, np.ndarray), x
        out.append((rel, x, spans[rel]))
    return out


def _mask(spans, n):
    grid = np.arange(n) * GRID_S
    m = np.zeros(n, bool)
    for s, e in spans:
        m |= (grid >= s) & (grid < e)
    return m


def _score(regions, truth, duration_s):
    """(share of labelled speech covered, seconds of non-speech included)."""
    n = int(np.ceil(duration_s / GRID_S))
    r, t = _mask(regions, n), _mask(truth, n)
    return (r & t).sum() / t.sum(), (r & ~t).sum() * GRID_S


def _check_regions(regions, duration_s):
    assert all(0 <= s < e <= duration_s + 1e-6 for s, e in regions), regions
    assert all(a[1] < b[0] for a, b in zip(regions, regions[1:])), "regions must be sorted and disjoint"


@pytest.mark.parametrize("method, per_file, overall", [("silero", 0.95, 0.98), ("energy", 0.8, 0.95)])
def test_vad_finds_the_labelled_speech(demo_audio, method, per_file, overall):
    cfg = PredictConfig()
    covered = total = 0.0
    found = 0
    for rel, x, truth in demo_audio:
        duration = x.size / RATE
        regions = speech_regions(x, RATE, method, cfg)
        _check_regions(regions, duration)
        share, extra = _score(regions, truth, duration)
        assert share >= per_file, f"{method} on {rel}: only {share:.1%} of the labelled speech found"
        # padding (0.1 s a side) and pauses bridged inside utterances, not the silences between
        assert extra <= 2.5, f"{method} on {rel}: {extra:.2f} s of non-speech included in {regions}"
        speech = sum(e - s for s, e in truth)
        covered += share * speech
        total += speech
        found += len(regions)
    utterances = sum(len(t) for _, _, t in demo_audio)
    assert covered / total >= overall
    # the 0.4-0.9 s silences between utterances separate them
    assert abs(found - utterances) <= 0.15 * utterances, (found, utterances)


def _noise(rng, n, tilt):
    """Coloured noise (power ~ 1/f**tilt) plus 50 Hz hum, like the demo's background."""
    spectrum = np.fft.rfft(rng.normal(size=n))
    f = np.fft.rfftfreq(n, 1 / RATE)
    spectrum[1:] /= f[1:] ** (tilt / 2)
    spectrum[0] = 0
    x = np.fft.irfft(spectrum, n)
    x = 0.8 * x / x.std() + 0.3 * np.sin(2 * np.pi * 50 * np.arange(n) / RATE)
    return (0.05 * x / x.std()).astype(np.float32)


@pytest.mark.parametrize("method", ["silero", "energy"])
def test_vad_finds_nothing_in_noise_or_silence(method):
    rng = np.random.default_rng(0)
    cfg = PredictConfig()
    signals = {
        "digital silence": np.zeros(10 * RATE, np.float32),
        "dither": rng.normal(0, 1e-4, 10 * RATE).astype(np.float32),
        **{f"noise tilt {t}": _noise(rng, 20 * RATE, t) for t in (0.0, 1.0, 1.6)},
    }
    for name, x in signals.items():
        assert speech_regions(x, RATE, method, cfg) == [], name


def test_silero_probabilities_match_the_package(demo_audio):
    """Our onnxruntime loop gives the silero package's own chunk probabilities."""
    import torch
    from silero_vad import load_silero_vad

    _, x, _ = demo_audio[0]
    x = x[: 6 * RATE]
    reference = load_silero_vad(onnx=True).audio_forward(torch.from_numpy(x), RATE).numpy().reshape(-1)
    ours = silero_probabilities(x, RATE)
    assert ours.shape == reference.shape
    assert np.abs(ours - reference).max() <= 1e-5
    assert ours.max() > 0.9 and ours.min() < 0.1  # speech and silence both present


def test_vad_at_another_sample_rate(demo_corpus_csv, demo_audio):
    """Silero resamples to its 16 kHz; energy works at any rate: same regions within a frame or two."""
    rel, x16, _ = demo_audio[1]
    (x22,) = decode_file(str(Path(demo_corpus_csv).parent / rel), [Segment()], sample_rate=22050)
    cfg = PredictConfig()
    for method in ("silero", "energy"):
        a, b = speech_regions(x16, RATE, method, cfg), speech_regions(x22, 22050, method, cfg)
        assert len(a) == len(b), (method, a, b)
        assert np.abs(np.asarray(a) - np.asarray(b)).max() <= 0.1, (method, a, b)


def test_energy_ignores_the_recording_level(demo_audio):
    _, x, _ = demo_audio[2]
    cfg = PredictConfig()
    assert speech_regions(x * 0.05, RATE, "energy", cfg) == speech_regions(x, RATE, "energy", cfg)


def test_settings_shape_the_regions(demo_audio):
    _, x, truth = demo_audio[0]
    base = PredictConfig()
    regions = speech_regions(x, RATE, "silero", base)
    # a long minimum silence bridges the pauses between utterances
    merged = speech_regions(x, RATE, "silero", dataclasses.replace(base, vad_min_silence_s=2.0))
    assert len(merged) == 1 and merged[0][0] == regions[0][0] and merged[0][1] == regions[-1][1]
    # padding widens every region by that much a side
    wide = speech_regions(x, RATE, "silero", dataclasses.replace(base, vad_pad_s=0.15))
    assert len(wide) == len(regions)
    assert all(abs((w[0] - r[0]) + 0.05) < 1e-6 or w[0] == 0.0 for w, r in zip(wide, regions))
    # a minimum speech longer than any utterance leaves nothing
    longest = max(e - s for s, e in truth)
    assert speech_regions(x, RATE, "energy", dataclasses.replace(base, vad_min_speech_s=longest + 2)) == []


def test_none_and_empty():
    cfg = PredictConfig()
    x = np.zeros(RATE * 3 // 2, np.float32)
    assert speech_regions(x, RATE, "none", cfg) == [(0.0, 1.5)]
    for method in ("silero", "energy", "none"):
        assert speech_regions(np.zeros(0, np.float32), RATE, method, cfg) == []
    with pytest.raises(ValueError, match="predict.vad"):
        speech_regions(x, RATE, "webrtc", cfg)
    with pytest.raises(ValueError, match="mono"):
        speech_regions(np.zeros((2, 100), np.float32), RATE, "energy", cfg)
