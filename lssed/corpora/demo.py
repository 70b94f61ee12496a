"""The embedded demo corpus: synthesized English speech with emotions carried by prosody.

About
-----
Not a real corpus: espeak-ng (via ``espeakng-loader``) speaks neutral sentences with a
speaker's voice, and the emotion is carried by prosody only, as in acted corpora:

=========  ======  ========  ==============  =============
emotion    rate    volume    pitch           pitch range
=========  ======  ========  ==============  =============
angry      fast    loud      raised          wide
happy      brisk   raised    high            widest
neutral    normal  normal    speaker's own   moderate
sad        slow    quiet     lowered         narrow
=========  ======  ========  ==============  =============

plus voice quality, which espeak does not model and is applied as filters: angry bright
(pre-emphasis), sad dull (low-pass), happy "smiling" (a resonance near 2.5 kHz). Every utterance draws its parameters around
these centres (so classes overlap a little), with a random sentence (the text carries no
emotion). A few utterances per speaker have
other LSSED labels (surprised, bored) that map to no benchmark class. Speakers are espeak
voices + variants with a gender and an age group (metadata: espeak cannot age a voice).
Each recording session is one real media file holding several utterances separated by
silence, with stationary background noise (pink noise and mains hum, 5-25 dB SNR per
session) and a per-session recording gain; containers cycle through mp4 (H.264 + AAC 44.1
kHz stereo), mkv (MPEG-4 + Opus 48 kHz stereo), wav (PCM 22.05 kHz mono), webm (VP8 + Opus
mono) and flac (16 kHz mono). Output is the generic CSV layout (``corpus.csv``). Licence:
generated data, free to use. Deterministic for a seed: the same samples and the same CSV.
"""

from __future__ import annotations

import csv
import logging
from collections import Counter
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np

from lssed.corpora.media import DEMO_SPECS, MediaSpec, decoded_duration, write_media
from lssed.corpora.speech import SAMPLE_RATE, Prosody, synthesize_batch

log = logging.getLogger(__name__)

CSV_NAME = "corpus.csv"
CSV_COLUMNS = ("path", "start", "end", "label", "speaker", "gender", "age", "session", "text")

SENTENCES: tuple[str, ...] = (
    "The train leaves the station at half past nine.",
    "I put the blue folder on the kitchen table.",
    "We are meeting the new neighbours on Thursday.",
    "Please send me the report before the weekend.",
    "The shop on the corner closes at six o'clock.",
    "She told me the results would arrive tomorrow.",
    "There is a parcel waiting for you at the desk.",
    "He painted the fence in the garden last week.",
    "The bus was late again this morning.",
    "They moved the meeting to the other room.",
    "My brother bought a new car on Saturday.",
    "The window in the hallway is still open.",
    "We will need more chairs for the party.",
    "The letter came back with the wrong address.",
    "I found my old camera in the attic.",
    "You can leave your coat by the door.",
    "The water in the lake was very cold.",
    "Our flight has been moved to the evening.",
    "The teacher read the names out loud.",
    "It has been raining since early this afternoon.",
    "I think the keys are in the top drawer.",
    "The dog ran across the field after the ball.",
    "They are building a bridge over the river.",
    "She answered every question on the form.",
)

# (espeak voice+variant, gender, age group, pitch 0-100, rate wpm). espeak's pitch is relative
# to the voice's own (the variant makes it female or male), so speakers differ only a little
# around 50 here and the emotion's pitch shift is not confounded with the speaker's.
SPEAKERS: tuple[tuple[str, str, str, int, int], ...] = (
    ("en-us+f3", "F", "adult", 50, 160),
    ("en-us+m3", "M", "adult", 49, 158),
    ("en+f2", "F", "young", 52, 162),
    ("en+m1", "M", "senior", 48, 157),
    ("en-us+f4", "F", "senior", 49, 159),
    ("en-us+m7", "M", "young", 51, 161),
    ("en-029+f1", "F", "adult", 51, 160),
    ("en-gb-x-rp+m2", "M", "adult", 48, 158),
    ("en-gb-x-gbclan+f5", "F", "young", 52, 162),
    ("en-us+m4", "M", "senior", 50, 157),
    ("en-us+m5", "M", "adult", 50, 160),
    ("en+f1", "F", "adult", 49, 158),
    ("en+m6", "M", "young", 51, 162),
    ("en-gb-scotland+f2", "F", "senior", 48, 157),
    ("en+m8", "M", "adult", 52, 161),
    ("en+linda", "F", "young", 50, 159),
    ("en-029+m3", "M", "senior", 49, 157),
    ("en-us+Andrea", "F", "adult", 51, 160),
)

# emotion -> centre offsets/values and their per-utterance spread (sd):
# (rate offset, rate sd, volume, volume sd, pitch offset, pitch sd, range, range sd)
PROSODY: dict[str, tuple[float, float, float, float, float, float, float, float]] = {
    "angry": (70, 8, 195, 5, 4, 3, 45, 6),
    "happy": (10, 8, 125, 6, 30, 3, 100, 2),
    "neutral": (0, 8, 100, 6, 0, 3, 30, 6),
    "sad": (-60, 8, 52, 6, -22, 3, 5, 3),
    "surprised": (25, 8, 150, 6, 34, 3, 100, 1),
    "bored": (-30, 8, 78, 6, -10, 3, 15, 4),
}
# Voice quality, which espeak does not model and log-mel shows well (it resolves pitch poorly):
# tense, loud voices are brighter, lax ones duller, a smile lifts the upper formants. Applied
# as filters: tilt t > 0 is a pre-emphasis y[n] = x[n] - t x[n-1], t < 0 a one-pole low-pass
# with pole -t; "smile" s adds s x (2.5 kHz resonance); loudness is restored afterwards.
# (tilt centre, tilt sd, smile centre, smile sd) per emotion.
VOICE: dict[str, tuple[float, float, float, float]] = {
    "angry": (0.85, 0.05, 0.0, 0.0),
    "happy": (0.0, 0.06, 2.5, 0.3),
    "neutral": (0.0, 0.06, 0.0, 0.0),
    "sad": (-0.65, 0.06, 0.0, 0.0),
    "surprised": (0.3, 0.06, 2.0, 0.3),
    "bored": (-0.4, 0.06, 0.0, 0.0),
}
BENCHMARK_EMOTIONS = ("angry", "neutral", "happy", "sad")
EXTRA_EMOTIONS = ("surprised", "bored")
UTTERANCES_PER_SESSION = 7
SPEECH_SCALE = 0.45  # full-scale int16 speech -> float amplitude before the session gain
SNR_DB = (5.0, 25.0)


@dataclass(frozen=True)
class DemoCorpus:
    """What :func:`build_demo_corpus` wrote."""

    csv: Path
    utterances: int
    files: int
    speakers: int
    duration_s: float
    labels: dict[str, int]
    containers: dict[str, int]


def _prosody(rng: np.random.Generator, emotion: str, base_pitch: int, base_rate: int) -> Prosody:
    r, rsd, v, vsd, p, psd, g, gsd = PROSODY[emotion]
    return Prosody(
        rate=int(np.clip(base_rate + r + rng.normal(0, rsd), 80, 400)),
        volume=int(np.clip(v + rng.normal(0, vsd), 20, 200)),
        pitch=int(np.clip(base_pitch + p + rng.normal(0, psd), 0, 100)),
        range=int(np.clip(g + rng.normal(0, gsd), 0, 100)),
    )


def _voice(x: np.ndarray, tilt: float, smile: float) -> np.ndarray:
    """Spectral tilt and a 2.5 kHz "smile" resonance (see ``VOICE``); keeps the RMS of ``x``."""
    from scipy.signal import iirpeak, lfilter

    y = x
    if tilt > 0:
        y = lfilter([1.0, -tilt], [1.0], y)
    elif tilt < 0:
        y = lfilter([1.0 + tilt], [1.0, tilt], y)
    if smile > 0:
        b, a = iirpeak(2500.0, 1.2, fs=SAMPLE_RATE)
        y = y + smile * lfilter(b, a, y)
    return y * np.sqrt(np.mean(x**2) / (np.mean(y**2) + 1e-20))


def _speaker(index: int) -> tuple[str, str, str, int, int]:
    voice, gender, age, pitch, rate = SPEAKERS[index % len(SPEAKERS)]
    round_ = index // len(SPEAKERS)  # beyond the roster: same voice, shifted pitch and rate
    return voice, gender, age, int(np.clip(pitch + 3 * round_ * (-1) ** round_, 30, 70)), rate + 3 * round_


def _trim(x: np.ndarray, threshold: float = 0.01, margin: int = int(0.02 * SAMPLE_RATE)) -> np.ndarray:
    """Cut espeak's own leading/trailing silence so the CSV times bound the speech."""
    loud = np.flatnonzero(np.abs(x) > threshold * max(float(np.abs(x).max()), 1e-9))
    if loud.size == 0:
        return x
    return x[max(0, loud[0] - margin) : loud[-1] + margin + 1]


def _pink_noise(rng: np.random.Generator, n: int, tilt: float) -> np.ndarray:
    """Coloured noise with power ~ 1/f**tilt (tilt 1: pink), unit RMS."""
    from scipy.fft import irfft, next_fast_len, rfft

    m = next_fast_len(n, real=True)  # FFT lengths with large prime factors are very slow
    spec = rfft(rng.standard_normal(m))
    f = np.arange(spec.size, dtype=np.float64)
    f[0] = 1.0
    spec /= f ** (tilt / 2)
    y = irfft(spec, m)[:n]
    return y / (np.sqrt(np.mean(y**2)) + 1e-12)


def _hum(rng: np.random.Generator, n: int, sr: int) -> np.ndarray:
    """Mains hum (50 or 60 Hz) with two harmonics, unit RMS."""
    base = 50.0 if rng.random() < 0.5 else 60.0
    t = np.arange(n, dtype=np.float32) * np.float32(2 * np.pi * base / sr)
    phase = rng.uniform(0, 2 * np.pi, 3).astype(np.float32)
    y = sum(a * np.sin(k * t + ph) for k, a, ph in zip((1, 2, 3), (1.0, 0.5, 0.25), phase))
    return y / (np.sqrt(np.mean(y**2)) + 1e-12)


def _resample(x: np.ndarray, rate: int) -> np.ndarray:
    if rate == SAMPLE_RATE:
        return x
    from scipy.signal import resample_poly

    frac = Fraction(rate, SAMPLE_RATE)
    return resample_poly(x, frac.numerator, frac.denominator, axis=-1)


def build_demo_corpus(out_dir: str | Path, *, speakers: int = 6, per_class: int = 6, seed: int = 0,
                      voice_offset: int = 0, snr_db: tuple[float, float] = SNR_DB) -> DemoCorpus:
    """Synthesise the demo corpus into ``out_dir`` (media files + ``corpus.csv``).

    ``voice_offset``: the speakers take the voice roster from this index on (and are numbered
    from it), so a second corpus with another offset has other voices and speaker ids, as a
    cross-corpus test needs. ``snr_db``: the range each session's noise SNR is drawn from (a
    lower range: a noisier corpus).
    """
    if voice_offset < 0:
        raise ValueError(f"demo corpus: voice_offset must be >= 0 (got {voice_offset})")
    if not (len(snr_db) == 2 and snr_db[0] <= snr_db[1]):
        raise ValueError(f"demo corpus: snr_db must be [low, high] with low <= high (got {list(snr_db)})")
    if speakers < 1:
        raise ValueError(f"demo corpus: speakers must be >= 1 (got {speakers}); use >= 3 for train/val/test splits")
    if per_class < 1:
        raise ValueError(f"demo corpus: per_class must be >= 1 (got {per_class})")
    out = Path(out_dir)
    media_dir = out / "media"
    media_dir.mkdir(parents=True, exist_ok=True)

    # 1. plan every utterance (text, voice, prosody) from per-speaker random streams, so that
    #    adding speakers leaves the first ones unchanged
    plans = []  # (speaker index, emotion, sentence, voice, prosody, (spectral tilt, smile))
    for s in range(voice_offset, voice_offset + speakers):
        rng = np.random.default_rng([seed, s, 1])
        voice, gender, age, pitch, rate = _speaker(s)
        emotions = [e for e in BENCHMARK_EMOTIONS for _ in range(per_class)] + list(EXTRA_EMOTIONS)
        order = rng.permutation(len(emotions))
        for i in order:
            e = emotions[i]
            tc, tsd, sc, ssd = VOICE[e]
            colour = (float(np.clip(rng.normal(tc, tsd), -0.9, 0.9)), max(0.0, float(rng.normal(sc, ssd))))
            plans.append((s, e, SENTENCES[int(rng.integers(len(SENTENCES)))], voice, _prosody(rng, e, pitch, rate), colour))
    audio = synthesize_batch([(text, voice, pros, seed * 1_000_003 + k) for k, (_, _, text, voice, pros, _) in enumerate(plans)])
    audio = [_voice(a.astype(np.float64) / 32768.0, *plan[5]) for a, plan in zip(audio, plans)]

    # 2. sessions: consecutive utterances of one speaker, one media file each
    rows: list[dict[str, str]] = []
    containers: Counter[str] = Counter()
    total_s = 0.0
    n_files = 0
    by_speaker: dict[int, list[int]] = {}
    for k, plan in enumerate(plans):
        by_speaker.setdefault(plan[0], []).append(k)
    for s, idxs in by_speaker.items():
        voice, gender, age, _, _ = _speaker(s)
        speaker_id = f"spk{s + 1:02d}"
        n_sessions = max(1, int(np.ceil(len(idxs) / UTTERANCES_PER_SESSION)))
        for j, chunk in enumerate(np.array_split(np.array(idxs), n_sessions)):
            rng = np.random.default_rng([seed, s, 2, j])
            spec = DEMO_SPECS[(2 * s + j) % len(DEMO_SPECS)]
            session_id = f"{speaker_id}_s{j + 1:02d}"
            track, spans = _assemble(rng, [audio[k] for k in chunk])
            mixed = _mix(rng, track, spans, spec, snr_db)
            rel = f"media/{session_id}{spec.suffix}"
            colour = tuple(int(c) for c in rng.integers(0, 256, 3))
            write_media(out / rel, mixed, spec, colour=colour)
            _verify(out / rel, spec, mixed.shape[-1] / spec.sample_rate)
            containers[spec.suffix.lstrip(".")] += 1
            n_files += 1
            total_s += mixed.shape[-1] / spec.sample_rate
            for k, (a, b) in zip(chunk, spans):
                _, emotion, text, _, _, _ = plans[int(k)]
                rows.append({
                    "path": rel, "start": f"{a / SAMPLE_RATE:.4f}", "end": f"{b / SAMPLE_RATE:.4f}",
                    "label": emotion, "speaker": speaker_id, "gender": gender, "age": age,
                    "session": session_id, "text": text,
                })
    csv_path = out / CSV_NAME
    with csv_path.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=CSV_COLUMNS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    result = DemoCorpus(csv_path, len(rows), n_files, speakers, round(total_s, 3),
                        dict(sorted(Counter(r["label"] for r in rows).items())), dict(sorted(containers.items())))
    log.info("demo corpus: %d utterances in %d files (%.1f s) at %s", result.utterances, n_files, total_s, csv_path)
    return result


def make_demo_corpus(out_dir: str | Path, *, speakers: int = 6, per_class: int = 6, seed: int = 0,
                     voice_offset: int = 0, snr_db: tuple[float, float] = SNR_DB) -> Path:
    """Synthesise the demo corpus; returns the path of its generic-layout ``corpus.csv``."""
    return build_demo_corpus(out_dir, speakers=speakers, per_class=per_class, seed=seed, voice_offset=voice_offset,
                             snr_db=snr_db).csv


def _assemble(rng: np.random.Generator, clips: list[np.ndarray]) -> tuple[np.ndarray, list[tuple[int, int]]]:
    """Utterances one after another with 0.4-0.9 s of silence; returns the track and spans."""
    parts, spans = [], []
    pos = int(rng.uniform(0.3, 0.6) * SAMPLE_RATE)
    parts.append(np.zeros(pos, np.float64))
    for clip in clips:
        x = _trim(clip) * SPEECH_SCALE
        spans.append((pos, pos + x.size))
        gap = int(rng.uniform(0.4, 0.9) * SAMPLE_RATE)
        parts += [x, np.zeros(gap)]
        pos += x.size + gap
    return np.concatenate(parts), spans


def _mix(rng: np.random.Generator, track: np.ndarray, spans: list[tuple[int, int]], spec: MediaSpec,
         snr_range: tuple[float, float] = SNR_DB) -> np.ndarray:
    """Session gain, then stationary noise at a per-session SNR; resampled to the file's rate.

    The noise is made at espeak's rate and resampled with the speech (so it stops at 11 kHz
    in 44.1/48 kHz files); a stereo file's second channel gets the same noise shifted by half
    the session, uncorrelated with the first at any lag that matters.
    """
    track = track * 10 ** (rng.uniform(-1.5, 1.5) / 20)  # recording gain of the session
    speech_power = float(np.mean(np.concatenate([track[a:b] for a, b in spans]) ** 2))
    snr_db = rng.uniform(*snr_range)
    noise_rms = np.sqrt(speech_power / 10 ** (snr_db / 10))
    hum_share = rng.uniform(0.1, 0.4)
    noise = (1 - hum_share) * _pink_noise(rng, track.size, rng.uniform(0.8, 1.6)) + hum_share * _hum(rng, track.size, SAMPLE_RATE)
    noise *= noise_rms / (np.sqrt(np.mean(noise**2)) + 1e-12)
    channels = [track + noise] + [track + np.roll(noise, track.size // 2) for _ in range(spec.channels - 1)]
    y = _resample(np.stack(channels), spec.sample_rate)
    return np.clip(y, -1.0, 1.0).astype(np.float32)


def _verify(path: Path, spec: MediaSpec, duration_s: float) -> None:
    """Decode the file back: its audio must exist and last as long as what was written."""
    got, channels = decoded_duration(path)
    if abs(got - duration_s) > 0.1 or channels != spec.channels:
        raise RuntimeError(
            f"demo corpus: {path} decodes to {got:.2f} s x {channels} ch, "
            f"wrote {duration_s:.2f} s x {spec.channels} ch ({spec.audio_codec} in {spec.container})"
        )
