"""The synthetic DAIC-WOZ: the adapter reads it, its transcripts match its audio, a seed fixes it,
and depression (the PHQ-8 score) shows in the prosody only."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
from scipy.signal import butter, sosfilt
from scipy.stats import spearmanr

from lssed.corpora import prepare
from lssed.corpora.daicwoz import LISTS
from lssed.corpora.demo_daicwoz import TURNS, DaicwozDemo, _spoken, build_daicwoz_demo
from lssed.corpora.media import read_audio


@pytest.fixture(scope="module")
def interviews(daicwoz_demo: DaicwozDemo) -> DaicwozDemo:
    """The session's synthetic DAIC-WOZ (tests/conftest.py): 12 interviews x 3 turns, seed 1."""
    assert (len(daicwoz_demo.participants), daicwoz_demo.turns) == (12, 3)  # what these tests expect
    return daicwoz_demo


def _transcript(root: Path, pid: str) -> list[dict[str, str]]:
    with (root / f"{pid}_P" / f"{pid}_TRANSCRIPT.csv").open(newline="") as fh:
        reader = csv.DictReader(fh, delimiter="\t")
        assert reader.fieldnames == ["start_time", "stop_time", "speaker", "value"]
        return list(reader)


def _audio(root: Path, pid: str) -> tuple[np.ndarray, int]:
    decoded = read_audio(root / f"{pid}_P" / f"{pid}_AUDIO.wav")
    assert decoded.samples.shape[0] == 1 and decoded.sample_rate == 16000  # DAIC-WOZ: 16 kHz mono
    return decoded.samples[0], decoded.sample_rate


def _participant_turns(root: Path, pid: str) -> list[tuple[float, float]]:
    rows = _transcript(root, pid)
    return [(float(r["start_time"]), float(r["stop_time"])) for r in rows if r["speaker"] == "Participant"]


def test_adapter_reads_the_official_split(interviews: DaicwozDemo) -> None:
    prepared = prepare("daicwoz", interviews.root, split="official")
    rows = prepared.manifest.to_pylist()
    assert prepared.rejects.num_rows == 0
    assert len(rows) == 12 * 3  # the participant's turns only, none of the interviewer's
    answers = {_spoken(" ".join(t[1:])) for t in TURNS[:3]}
    assert {r["text"] for r in rows} == answers
    people = {p.pid: p for p in interviews.participants}
    assert {p.part for p in people.values()} == {"train", "dev"}
    for r in rows:
        p = people[r["speaker"]]
        assert r["label"] == ("depressed" if p.score >= 10 else "not-depressed")
        assert r["gender"] == p.gender
        # no test labels: the dev list is the test set, validation is carved from train
        assert r["split"] == "test" if p.part == "dev" else r["split"] in ("train", "val")
        assert r["score"] == p.score  # PHQ8_Score kept
    for part in ("train", "dev"):  # both classes in both lists
        assert interviews.count(part, 1) >= 1 and interviews.count(part, 0) >= 1
    with (interviews.root / LISTS["dev"]).open(newline="") as fh:
        listed = list(csv.DictReader(fh))
    assert {r["Participant_ID"] for r in listed} == {p.pid for p in people.values() if p.part == "dev"}
    for r in listed:
        items = [int(v) for k, v in r.items() if k.startswith("PHQ8_") and k not in ("PHQ8_Binary", "PHQ8_Score")]
        assert len(items) == 8 and sum(items) == int(r["PHQ8_Score"])
        assert int(r["PHQ8_Binary"]) == int(int(r["PHQ8_Score"]) >= 10)
    assert not (interviews.root / LISTS["test"]).exists()


def test_transcript_times_match_the_speech(interviews: DaicwozDemo) -> None:
    """Energy in the wav: loud only inside the transcript's turns, and loud near each turn's start and end."""
    highpass = butter(4, 150, "highpass", fs=16000, output="sos")  # the pink noise floor is mostly below
    hop = 160  # 10 ms frames
    for p in interviews.participants[:6]:
        x, sr = _audio(interviews.root, p.pid)
        x = sosfilt(highpass, x)
        frames = np.sqrt(np.mean(x[: x.size // hop * hop].reshape(-1, hop) ** 2, axis=1))
        t = (np.arange(frames.size) + 0.5) * hop / sr
        rows = _transcript(interviews.root, p.pid)
        spans = [(float(r["start_time"]), float(r["stop_time"])) for r in rows]
        assert [r["speaker"] for r in rows] == ["Ellie"] + ["Ellie", "Participant"] * 3 + ["Ellie"]
        assert all(a < b for a, b in spans) and all(b1 < a2 for (_, b1), (a2, _) in zip(spans, spans[1:]))
        assert spans[-1][1] < x.size / sr
        inside = np.zeros(frames.size, bool)
        for a, b in spans:
            inside |= (t >= a - 0.02) & (t <= b + 0.02)
        loud = frames > 10 * np.median(frames[~inside])
        assert not loud[~inside].any(), (p.pid, t[loud & ~inside][:5])
        for a, b in spans:
            voiced = t[loud & (t >= a) & (t <= b)]
            assert voiced.size and voiced[0] - a < 0.3 and b - voiced[-1] < 0.3, (p.pid, a, b)


def test_deterministic_for_a_seed(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from lssed.cli import main

    # one of the two through the real command line
    assert main(["demo-corpus", "--kind", "daicwoz", str(tmp_path / "a"), "--participants", "6", "--turns", "1",
                 "--seed", "3"]) == 0
    assert "6 interviews x 1 turns" in capsys.readouterr().out
    b = build_daicwoz_demo(tmp_path / "b", participants=6, turns=1, seed=3)
    c = build_daicwoz_demo(tmp_path / "c", participants=6, turns=1, seed=4)
    files = sorted(str(f.relative_to(b.root)) for f in b.root.rglob("*") if f.is_file())
    assert len(files) == 2 * 6 + 2
    assert files == sorted(str(f.relative_to(tmp_path / "a")) for f in (tmp_path / "a").rglob("*") if f.is_file())
    for rel in files:
        assert (tmp_path / "a" / rel).read_bytes() == (b.root / rel).read_bytes(), rel
    assert b.participants != c.participants
    assert (b.root / "300_P/300_AUDIO.wav").read_bytes() != (c.root / "300_P/300_AUDIO.wav").read_bytes()


def test_test_split_and_bad_sizes(tmp_path: Path) -> None:
    corpus = build_daicwoz_demo(tmp_path, participants=8, turns=1, seed=0, test_split=True)
    assert all(corpus.count(part, binary) >= 1 for part in ("train", "dev", "test") for binary in (0, 1))
    with (tmp_path / LISTS["test"]).open(newline="") as fh:
        listed = list(csv.DictReader(fh))
    assert list(listed[0]) == ["Participant_ID", "PHQ_Binary", "PHQ_Score", "Gender"]
    assert {r["Participant_ID"] for r in listed} == {p.pid for p in corpus.participants if p.part == "test"}
    with pytest.raises(ValueError, match="participants must be >= 6"):
        build_daicwoz_demo(tmp_path / "x", participants=5)
    with pytest.raises(ValueError, match="turns must be >= 1"):
        build_daicwoz_demo(tmp_path / "x", turns=0)


def _median_f0(x: np.ndarray, sr: int) -> float:
    """Median autocorrelation pitch (60-400 Hz) of the clearly voiced 40 ms frames."""
    n, found = int(0.04 * sr), []
    lo, hi = sr // 400, sr // 60
    for i in range(0, x.size - n, n // 2):
        frame = x[i : i + n] - x[i : i + n].mean()
        if np.sqrt(np.mean(frame**2)) < 0.01:
            continue
        ac = np.correlate(frame, frame, "full")[n - 1 :]
        lag = lo + int(np.argmax(ac[lo:hi]))
        if ac[lag] > 0.5 * ac[0]:
            found.append(sr / lag)
    return float(np.median(found))


def test_prosody_follows_the_phq8_score(interviews: DaicwozDemo) -> None:
    """The same words, said slower, quieter and lower the higher the participant's PHQ-8 score."""
    scores, durations, loudness, pitch = [], [], [], []
    for p in interviews.participants:
        x, sr = _audio(interviews.root, p.pid)
        turns = _participant_turns(interviews.root, p.pid)
        speech = np.concatenate([x[int(a * sr) : int(b * sr)] for a, b in turns])
        scores.append(p.score)
        durations.append(sum(b - a for a, b in turns))
        loudness.append(float(np.sqrt(np.mean(speech**2))))
        pitch.append(np.log(_median_f0(speech, sr)))
    scores_a = np.array(scores)
    assert spearmanr(scores, durations).statistic > 0.7  # slower, longer pauses
    assert spearmanr(scores, loudness).statistic < -0.5  # quieter
    # lower: pitch relative to the participant's gender (female voices are an octave up)
    genders = np.array([p.gender for p in interviews.participants])
    relative = np.array(pitch) - np.array([np.mean(np.array(pitch)[genders == g]) for g in genders])
    assert spearmanr(scores_a, relative).statistic < -0.3
    depressed = scores_a >= 10
    assert np.mean(np.array(durations)[depressed]) > 1.1 * np.mean(np.array(durations)[~depressed])


def test_transfer_demo_config_validates_with_the_demo_interviews(interviews: DaicwozDemo) -> None:
    """lssed/configs/transfer_demo.yaml: the emotion demo trains, the synthetic interviews are the
    transfer corpus (its root as `lssed demo-corpus --kind daicwoz` wrote it), scored on the dev list."""
    from lssed.config import ConfigError, load_config
    from lssed.validate import validate_config

    cfg = load_config("transfer_demo", [f"transfer.corpus.root={interviews.root}"])
    assert (cfg.corpus.name, cfg.transfer.corpus.name, cfg.transfer.corpus.split) == ("demo", "daicwoz", "official")
    assert cfg.stages.train and not cfg.stages.tune
    validate_config(cfg, "workflow")
    with pytest.raises(ConfigError, match="transfer.corpus.root"):  # not generated yet: says which key
        missing = interviews.root / "missing"
        validate_config(load_config("transfer_demo", [f"transfer.corpus.root={missing}"]), "workflow")
