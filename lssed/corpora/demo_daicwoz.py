"""A synthetic DAIC-WOZ: interviews in which depression is carried by prosody only.

About
-----
Not a real corpus, and no model of real depression: it exists so that the transfer stage
(embeddings -> participant-level classifiers -> Table 6) runs end to end on something with a
known answer. Each participant is interviewed by a fixed interviewer voice ("Ellie", an
espeak-ng voice through ``lssed.corpora.speech``) asking the same questions; every participant
gives the same answers, word for word, with their own voice (the demo corpus's roster, see
``lssed.corpora.demo``). What differs is how they say it. A PHQ-8 score (0-24) per participant
sets a severity ``s = score / 24`` that scales, on top of per-participant and per-turn
variation:

==================  ==========================================================
rate                slower: about -60 words/min at s = 1
pitch               lower (-16 on espeak's 0-100 scale) and flatter (range x 0.25)
loudness            quieter (espeak volume -50) and a duller voice (low-pass tilt)
pauses              longer: the answer's latency (0.6 s + 1.8 s x s) and the pause
                    between its two clauses (0.2 s + 1.0 s x s)
==================  ==========================================================

so the text, the interviewer and the recording conditions carry no information and a model
can only use acoustics. PHQ8_Binary is ``score >= 10``; about 40 % of participants are
depressed, drawn independently of their voice. The AVEC 2017 partition is stratified by
PHQ8_Binary: a third of each class in dev (with ``test_split``: a quarter in dev and a
quarter in ``full_test_split.csv``).

Layout written (what ``lssed.corpora.daicwoz`` reads): ``OUT/<pid>_P/<pid>_AUDIO.wav`` (16 kHz
mono PCM, the whole interview with a constant noise floor), ``OUT/<pid>_P/<pid>_TRANSCRIPT.csv``
(tab-separated ``start_time, stop_time, speaker, value``; speaker ``Ellie`` or ``Participant``;
lower-case text without punctuation, as the real transcripts), and in OUT
``train_split_Depression_AVEC2017.csv`` / ``dev_split_Depression_AVEC2017.csv``
(``Participant_ID, PHQ8_Binary, PHQ8_Score, Gender`` (1 male, 0 female) and the eight PHQ-8
items, summing to the score), plus ``full_test_split.csv`` (``Participant_ID, PHQ_Binary,
PHQ_Score, Gender``) with ``test_split``. Participant ids start at 300. Licence: generated
data, free to use. Deterministic for a seed: the same samples, transcripts and lists.
"""

from __future__ import annotations

import csv
import logging
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lssed.corpora.daicwoz import LISTS
from lssed.corpora.demo import SPEECH_SCALE, _pink_noise, _resample, _speaker, _trim, _voice
from lssed.corpora.media import MediaSpec, write_media
from lssed.corpora.speech import SAMPLE_RATE, Prosody, synthesize_batch

log = logging.getLogger(__name__)

FIRST_ID = 300
INTERVIEWER = "en-us+f2"  # not in the participants' roster (lssed.corpora.demo.SPEAKERS)
INTERVIEWER_LEVEL = 0.5  # the interviewer comes through a loudspeaker, quieter than the participant
WAV = MediaSpec(".wav", "wav", "pcm_s16le", 16000, 1)  # DAIC-WOZ's audio: 16 kHz mono PCM
OPENING = "Hi, I'm Ellie. Thanks for coming in today."
CLOSING = "Okay, I think I have asked everything I need to. Thanks for sharing your thoughts with me."
# (question, the answer's two clauses): neutral content, the same for every participant
TURNS: tuple[tuple[str, str, str], ...] = (
    ("How are you doing today?", "I am doing okay, I guess.", "It has been a long week at work."),
    ("Where are you from originally?", "I grew up in a small town near the coast.",
     "I moved here about five years ago."),
    ("What do you do to relax?", "I usually go for a walk in the evening.", "Sometimes I read a book before bed."),
    ("How easy is it for you to get a good night's sleep?", "It depends on the night.",
     "Some nights I wake up very early."),
    ("What did you study at school?", "I studied accounting at the community college.",
     "I still use it in my job today."),
    ("How would your best friend describe you?", "They would say I am a quiet person.",
     "I like to listen more than I talk."),
    ("When was the last time you argued with someone?", "I had a small argument with my brother.",
     "It was about who would drive to the airport."),
    ("What are you most proud of in your life?", "I finished my degree while working full time.",
     "It took me almost six years."),
    ("Tell me about your family.", "I have two sisters and one brother.", "We meet for dinner on most Sundays."),
    ("What advice would you give to yourself ten years ago?", "I would tell myself to save more money.",
     "And to call my parents more often."),
)
ITEMS = ("NoInterest", "Depressed", "Sleep", "Tired", "Appetite", "Failure", "Concentrating", "Moving")
DEPRESSED_SHARE = 0.4
NOISE_DBFS = (-60.0, -48.0)  # the room's noise floor per interview (absolute: quieter speech, lower SNR)

# Depression at severity 1 (PHQ-8 = 24); scaled linearly by score / 24.
RATE_DROP = 60.0  # words/min
PITCH_DROP = 16.0  # espeak pitch units (0-100)
RANGE_FACTOR = 0.25  # pitch range multiplied by 1 - (1 - RANGE_FACTOR) * s
VOLUME_DROP = 50.0  # espeak volume units (100 normal)
TILT = -0.55  # spectral tilt (lssed.corpora.demo._voice): a duller, lax voice
LATENCY_S = (0.6, 1.8)  # silence before the answer: base + per unit of severity
PAUSE_S = (0.2, 1.0)  # silence between the answer's two clauses: base + per unit of severity


@dataclass(frozen=True)
class Participant:
    pid: str
    score: int
    gender: str  # "M" / "F"
    voice: str
    part: str  # "train" / "dev" / "test"
    items: tuple[int, ...]  # the eight PHQ-8 items (0-3), summing to score

    @property
    def binary(self) -> int:
        return int(self.score >= 10)


@dataclass(frozen=True)
class DaicwozDemo:
    """What :func:`build_daicwoz_demo` wrote."""

    root: Path
    participants: tuple[Participant, ...]
    turns: int
    duration_s: float

    def count(self, part: str, binary: int | None = None) -> int:
        return sum(p.part == part and (binary is None or p.binary == binary) for p in self.participants)


def build_daicwoz_demo(out_dir: str | Path, *, participants: int = 24, turns: int = 6, seed: int = 0,
                       test_split: bool = False) -> DaicwozDemo:
    """Synthesise a DAIC-WOZ-layout corpus of ``participants`` interviews into ``out_dir``.

    ``turns``: questions per interview (the questions cycle beyond ``len(TURNS)``). With
    ``test_split`` a quarter of each class goes to ``full_test_split.csv``.
    """
    pattern = ("train", "dev", "train", "test") if test_split else ("train", "dev", "train")
    if participants < 2 * len(pattern):
        raise ValueError(f"daicwoz demo: participants must be >= {2 * len(pattern)} (got {participants}) so that "
                         f"every split has depressed and non-depressed participants")
    if turns < 1:
        raise ValueError(f"daicwoz demo: turns must be >= 1 (got {turns})")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    people = _participants(participants, seed, pattern)
    ours = {f"{p.pid}_P" for p in people}
    stale = sorted(d.name for d in out.iterdir()
                   if d.is_dir() and re.fullmatch(r"\d+_P", d.name) and d.name not in ours)
    if stale:  # left by an earlier, larger build: in no list now, so the adapter rejects their turns
        log.warning("daicwoz demo: %s already holds %d other participant folders (%s...); delete them or "
                    "use an empty OUT", out, len(stale), ", ".join(stale[:3]))

    # 1. plan every clip: the interviewer's lines once (the same for everyone), then each
    #    participant's answers with prosody from their own random stream
    lines = [OPENING] + [TURNS[t % len(TURNS)][0] for t in range(min(turns, len(TURNS)))] + [CLOSING]
    items: list[tuple[str, str, Prosody, int]] = [(text, INTERVIEWER, Prosody(), seed) for text in lines]
    plans = []  # per participant: (answer clip indices per turn, latencies, pauses, noise level dBFS)
    for k, person in enumerate(people):
        rng = np.random.default_rng([seed, k, 1])
        _, _, _, base_pitch, base_rate = _speaker(k)
        s = person.score / 24
        # the participant's own voice, independent of the score; wide enough that participants
        # near the PHQ-8 threshold overlap (the binary task is not trivially separable)
        pitch0, rate0 = base_pitch + rng.normal(0, 4), base_rate + rng.normal(0, 12)
        volume0, range0 = rng.normal(100, 12), rng.normal(50, 8)
        tilt = float(np.clip(TILT * s + rng.normal(0, 0.1), -0.9, 0.3))
        clips, latencies, pauses = [], [], []
        for t in range(turns):
            pair = []
            for clause in TURNS[t % len(TURNS)][1:]:
                prosody = Prosody(
                    rate=int(np.clip(rate0 - RATE_DROP * s + rng.normal(0, 6), 80, 400)),
                    volume=int(np.clip(volume0 - VOLUME_DROP * s + rng.normal(0, 5), 20, 200)),
                    pitch=int(np.clip(pitch0 - PITCH_DROP * s + rng.normal(0, 2), 0, 100)),
                    range=int(np.clip(range0 * (1 - (1 - RANGE_FACTOR) * s) + rng.normal(0, 4), 0, 100)),
                )
                pair.append(len(items))
                items.append((clause, person.voice, prosody, seed * 1_000_003 + len(items)))
            clips.append(pair)
            latencies.append(max(0.25, LATENCY_S[0] + LATENCY_S[1] * s + rng.normal(0, 0.3)))
            pauses.append(max(0.1, PAUSE_S[0] + PAUSE_S[1] * s + rng.normal(0, 0.1)))
        plans.append((clips, latencies, pauses, tilt, float(rng.uniform(*NOISE_DBFS))))
    audio = [_trim(a.astype(np.float64) / 32768.0) * SPEECH_SCALE for a in synthesize_batch(items)]
    ellie = [a * INTERVIEWER_LEVEL for a in audio[: len(lines)]]

    # 2. one interview per participant: the track, its transcript, the wav
    total_s = 0.0
    for k, (person, (clips, latencies, pauses, tilt, noise_dbfs)) in enumerate(zip(people, plans)):
        rng = np.random.default_rng([seed, k, 2])
        answers = [[_voice(audio[i], tilt, 0.0) for i in pair] for pair in clips]
        track, rows = _interview(rng, lines, ellie, [TURNS[t % len(TURNS)][1:] for t in range(turns)],
                                 answers, latencies, pauses)
        track = track + _pink_noise(rng, track.size, 1.0) * 10 ** (noise_dbfs / 20)
        samples = np.clip(_resample(track, WAV.sample_rate), -1.0, 1.0).astype(np.float32)
        folder = out / f"{person.pid}_P"
        write_media(folder / f"{person.pid}_AUDIO.wav", samples, WAV)
        _write_transcript(folder / f"{person.pid}_TRANSCRIPT.csv", rows)
        total_s += samples.size / WAV.sample_rate
    _write_lists(out, people, test_split)
    result = DaicwozDemo(out, tuple(people), turns, round(total_s, 3))
    log.info("daicwoz demo: %d interviews x %d turns (%.1f min) at %s", participants, turns, total_s / 60, out)
    return result


def _participants(n: int, seed: int, pattern: tuple[str, ...]) -> list[Participant]:
    """Scores, voices and the stratified partition; depression is drawn independently of the voice."""
    rng = np.random.default_rng([seed, 0])
    n_dep = int(np.clip(round(DEPRESSED_SHARE * n), len(pattern), n - len(pattern)))
    order = rng.permutation(n)
    depressed = set(order[:n_dep].tolist())
    part: dict[int, str] = {}
    for group in (order[:n_dep], order[n_dep:]):  # each class spread over the parts alike
        for i, k in enumerate(sorted(group.tolist())):
            part[k] = pattern[i % len(pattern)]
    people = []
    for k in range(n):
        score = int(rng.integers(10, 25)) if k in depressed else int(rng.integers(0, 10))
        items = np.zeros(len(ITEMS), int)
        for _ in range(score):  # spread the score over the eight 0-3 items
            items[rng.choice(np.flatnonzero(items < 3))] += 1
        voice, gender, _, _, _ = _speaker(k)
        people.append(Participant(str(FIRST_ID + k), score, gender, voice, part[k], tuple(int(v) for v in items)))
    return people


def _interview(rng: np.random.Generator, lines: list[str], questions: list[np.ndarray],
               answer_texts: list[tuple[str, ...]], answers: list[list[np.ndarray]], latencies: list[float],
               pauses: list[float]) -> tuple[np.ndarray, list[tuple[float, float, str, str]]]:
    """Opening, question -> latency -> answer (clause, pause, clause) per turn, closing.

    Returns the track at espeak's rate and the transcript rows (start s, stop s, speaker,
    text); the times bound the speech (the clips are trimmed of espeak's own silence).
    """
    sr = SAMPLE_RATE
    parts: list[np.ndarray] = []
    rows: list[tuple[float, float, str, str]] = []
    pos = 0

    def silence(seconds: float) -> None:
        nonlocal pos
        parts.append(np.zeros(int(seconds * sr)))
        pos += int(seconds * sr)

    def speak(clips: list[np.ndarray], gaps: list[float], speaker: str, text: str) -> None:
        nonlocal pos
        start = pos
        for i, clip in enumerate(clips):
            if i:
                silence(gaps[i - 1])
            parts.append(clip)
            pos += clip.size
        rows.append((start / sr, pos / sr, speaker, text))

    silence(rng.uniform(0.5, 1.0))
    speak([questions[0]], [], "Ellie", lines[0])
    for t, (texts, clips) in enumerate(zip(answer_texts, answers)):
        q = 1 + t % (len(lines) - 2)
        silence(rng.uniform(0.5, 0.9))
        speak([questions[q]], [], "Ellie", lines[q])
        silence(latencies[t])
        speak(clips, [pauses[t]], "Participant", " ".join(texts))
    silence(rng.uniform(0.6, 1.0))
    speak([questions[-1]], [], "Ellie", lines[-1])
    silence(rng.uniform(0.5, 1.0))
    return np.concatenate(parts), rows


def _spoken(text: str) -> str:
    """The real transcripts' style: lower case, no punctuation but apostrophes."""
    return re.sub(r"\s+", " ", re.sub(r"[^a-z' ]", " ", text.lower())).strip()


def _write_transcript(path: Path, rows: list[tuple[float, float, str, str]]) -> None:
    with path.open("w", newline="") as fh:
        writer = csv.writer(fh, delimiter="\t", lineterminator="\n")
        writer.writerow(("start_time", "stop_time", "speaker", "value"))
        writer.writerows((f"{a:.3f}", f"{b:.3f}", who, _spoken(text)) for a, b, who, text in rows)


def _write_lists(out: Path, people: list[Participant], test_split: bool) -> None:
    """The AVEC 2017 partition files (and the later-published test labels with ``test_split``)."""
    for part in ("train", "dev"):
        with (out / LISTS[part]).open("w", newline="") as fh:
            writer = csv.writer(fh, lineterminator="\n")
            writer.writerow(("Participant_ID", "PHQ8_Binary", "PHQ8_Score", "Gender")
                            + tuple(f"PHQ8_{i}" for i in ITEMS))
            for p in people:
                if p.part == part:
                    writer.writerow((p.pid, p.binary, p.score, int(p.gender == "M")) + p.items)
    test = out / LISTS["test"]
    if test_split:
        with test.open("w", newline="") as fh:
            writer = csv.writer(fh, lineterminator="\n")
            writer.writerow(("Participant_ID", "PHQ_Binary", "PHQ_Score", "Gender"))
            writer.writerows((p.pid, p.binary, p.score, int(p.gender == "M")) for p in people if p.part == "test")
    elif test.exists():  # a rebuild without a test split must not keep an old one's labels
        test.unlink()
