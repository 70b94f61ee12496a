"""The demo corpus: real media files, real speech, deterministic, noisy, learnable metadata."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

from lssed.corpora.demo import CSV_COLUMNS, build_demo_corpus
from lssed.corpora.media import DEMO_SPECS, read_audio


def _rows(csv_path: Path) -> list[dict[str, str]]:
    with csv_path.open(newline="") as fh:
        reader = csv.DictReader(fh)
        assert tuple(reader.fieldnames or ()) == CSV_COLUMNS
        return list(reader)


def test_demo_corpus_layout_and_media(demo_corpus_csv: Path) -> None:
    rows = _rows(demo_corpus_csv)
    assert len(rows) == 6 * (4 * 4 + 2)
    labels = {r["label"] for r in rows}
    assert {"angry", "neutral", "happy", "sad"} <= labels and labels - {"angry", "neutral", "happy", "sad"}
    assert {r["gender"] for r in rows} == {"F", "M"}
    assert len({r["speaker"] for r in rows}) == 6 and all(r["age"] for r in rows)
    files = sorted({r["path"] for r in rows})
    assert len(files) < len(rows)  # several utterances per session file
    seen = {}
    for rel in files:
        media = demo_corpus_csv.parent / rel
        decoded = read_audio(media)
        seen[media.suffix] = (decoded.sample_rate, decoded.samples.shape[0], decoded.codec, decoded.has_video)
        duration = decoded.samples.shape[1] / decoded.sample_rate
        spans = [(float(r["start"]), float(r["end"])) for r in rows if r["path"] == rel]
        assert len({r["session"] for r in rows if r["path"] == rel}) == 1
        assert all(0 <= a < b <= duration for a, b in spans)
        ordered = sorted(spans)
        assert all(b1 < a2 for (_, b1), (a2, _) in zip(ordered, ordered[1:]))  # silence between utterances
    assert seen[".mp4"] == (44100, 2, "aac", True)  # H.264 + AAC
    assert {".mp4", ".mkv", ".wav", ".webm", ".flac"} == set(seen)
    assert len({v[0] for v in seen.values()}) >= 3 and {v[1] for v in seen.values()} == {1, 2}


def test_demo_noise_snr_and_speech(demo_corpus_csv: Path) -> None:
    """Speech stands 5-25 dB (give or take prosody) above a stationary noise floor that never stops."""
    rows = _rows(demo_corpus_csv)
    snrs = []
    for rel in sorted({r["path"] for r in rows})[:8]:
        decoded = read_audio(demo_corpus_csv.parent / rel)
        x, sr = decoded.samples[0], decoded.sample_rate
        spans = sorted((float(r["start"]), float(r["end"])) for r in rows if r["path"] == rel)
        gap = x[int((spans[0][1] + 0.1) * sr) : int((spans[1][0] - 0.1) * sr)]
        speech = np.concatenate([x[int(a * sr) : int(b * sr)] for a, b in spans])
        noise_power = float(np.mean(gap**2))
        assert noise_power > 0  # the noise is there between utterances too
        snrs.append(10 * np.log10(np.mean(speech**2) / noise_power - 1))
    assert min(snrs) > 0 and max(snrs) < 35 and max(snrs) - min(snrs) > 3, snrs


def test_demo_prosody_separates_emotions(demo_corpus_csv: Path) -> None:
    """Sad is slower and quieter than angry for every speaker (what the model must learn)."""
    rows = [r for r in _rows(demo_corpus_csv) if r["label"] in ("angry", "sad")]
    cache: dict[str, tuple[np.ndarray, int]] = {}
    stats: dict[tuple[str, str], list[float]] = {}
    for r in rows:
        if r["path"] not in cache:
            d = read_audio(demo_corpus_csv.parent / r["path"])
            cache[r["path"]] = (d.samples[0], d.sample_rate)
        x, sr = cache[r["path"]]
        seg = x[int(float(r["start"]) * sr) : int(float(r["end"]) * sr)]
        stats.setdefault((r["speaker"], r["label"]), []).append(float(np.sqrt(np.mean(seg**2))))
    for speaker in {r["speaker"] for r in rows}:
        assert np.median(stats[(speaker, "sad")]) < np.median(stats[(speaker, "angry")]), speaker


def test_demo_deterministic_for_a_seed(tmp_path: Path) -> None:
    a = build_demo_corpus(tmp_path / "a", speakers=2, per_class=1, seed=3)
    b = build_demo_corpus(tmp_path / "b", speakers=2, per_class=1, seed=3)
    c = build_demo_corpus(tmp_path / "c", speakers=2, per_class=1, seed=4)
    assert a.csv.read_bytes() == b.csv.read_bytes()
    assert a.csv.read_bytes() != c.csv.read_bytes()
    for rel in sorted({r["path"] for r in _rows(a.csv)}):
        assert (a.csv.parent / rel).read_bytes() == (b.csv.parent / rel).read_bytes(), rel
        assert np.array_equal(read_audio(a.csv.parent / rel).samples, read_audio(b.csv.parent / rel).samples)
    assert a.utterances == 2 * (4 + 2) and a.labels["angry"] == 2


def test_demo_rejects_bad_sizes(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="speakers must be >= 1"):
        build_demo_corpus(tmp_path, speakers=0)
    with pytest.raises(ValueError, match="per_class"):
        build_demo_corpus(tmp_path, per_class=0)


def test_demo_specs_cover_containers() -> None:
    assert {s.suffix for s in DEMO_SPECS} >= {".mp4", ".mkv", ".wav"}
    mp4 = next(s for s in DEMO_SPECS if s.suffix == ".mp4")
    assert (mp4.video_codec, mp4.audio_codec) == ("libx264", "aac")


def test_demo_learnable_speaker_independently(demo_manifest: Path) -> None:
    """A linear model on log-mel statistics recognises the 4 emotions of unseen speakers.

    The guard that the demo corpus stays learnable: leave-one-speaker-out UA, averaged.
    """
    import pyarrow.parquet as pq
    import torch
    from scipy.signal import resample_poly
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import balanced_accuracy_score
    from sklearn.preprocessing import StandardScaler

    from lssed.config import FeatureConfig
    from lssed.features import logmel

    rows = [r for r in pq.read_table(demo_manifest).to_pylist() if r["label4"] is not None]
    audio: dict[str, np.ndarray] = {}
    feats, labels, speakers = [], [], []
    for r in rows:
        if r["media_uri"] not in audio:
            d = read_audio(r["media_uri"])
            audio[r["media_uri"]] = resample_poly(d.samples.mean(0), 16000, d.sample_rate).astype(np.float32)
        seg = audio[r["media_uri"]][int(r["start_s"] * 16000) : int(r["end_s"] * 16000)]
        lm = logmel(torch.from_numpy(seg), FeatureConfig()).numpy()
        feats.append(np.concatenate([lm.mean(1), lm.std(1), [lm.shape[1]]]))
        labels.append(r["label4"])
        speakers.append(r["speaker"])
    x, y, spk = np.stack(feats), np.array(labels), np.array(speakers)
    uas = []
    for s in sorted(set(speakers)):
        train = spk != s
        scaler = StandardScaler().fit(x[train])
        clf = LogisticRegression(C=0.1, max_iter=3000).fit(scaler.transform(x[train]), y[train])
        uas.append(balanced_accuracy_score(y[~train], clf.predict(scaler.transform(x[~train]))))
    assert np.mean(uas) >= 0.7, uas
