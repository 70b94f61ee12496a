"""DAIC-WOZ: the AVEC 2017 protocol on a generated tree of the release layout (real wav files)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from lssed.config import CorpusConfig, load_config, replace_section
from lssed.corpora import prepare, prepare_config, read_manifest, write_manifest
from lssed.corpora.daicwoz import windows
from lssed.corpora.media import MediaSpec, write_media
from lssed.validate import validate_config

HEAD = "Participant_ID,PHQ8_Binary,PHQ8_Score,Gender\n"


def make_media(path: Path, seconds: float) -> None:
    """A real 16 kHz PCM wav: a tone with a 3 Hz amplitude wobble, like syllables."""
    t = np.arange(int(seconds * 16000)) / 16000
    tone = (0.2 * np.sin(2 * np.pi * 180 * t) * (0.6 + 0.4 * np.sin(2 * np.pi * 3 * t))).astype(np.float32)
    write_media(path, tone[None, :], MediaSpec(".wav", "wav", "pcm_s16le", 16000, 1))


def _interview(folder: Path, pid: int, turns: list[tuple[float, float]], seconds: float = 12.0) -> None:
    folder.mkdir(parents=True)
    lines = ["start_time\tstop_time\tspeaker\tvalue\n"]
    for i, (start, end) in enumerate(turns):
        lines.append(f"{max(0.0, start - 0.8):.3f}\t{start - 0.1:.3f}\tEllie\tquestion {i}\n")
        lines.append(f"{start:.3f}\t{end:.3f}\tParticipant\tanswer {i}\n")
    (folder / f"{pid}_TRANSCRIPT.csv").write_text("".join(lines))
    make_media(folder / f"{pid}_AUDIO.wav", seconds)


@pytest.fixture(scope="module")
def daic_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("daic")
    turns = [(1.0, 2.0), (3.0, 10.0)]  # the second is 7 s long
    for pid in range(300, 310):
        _interview(root / f"{pid}_P", pid, turns)
    # 310: a turn past the end of its 12 s recording, and one that starts after it
    _interview(root / "310_P", 310, [(1.0, 2.0), (10.0, 12.5), (13.0, 14.0)])
    # 311: only Ellie speaks; 312: its wav is not audio; 313: no transcript at all
    (root / "311_P").mkdir()
    (root / "311_P" / "311_TRANSCRIPT.csv").write_text("start_time\tstop_time\tspeaker\tvalue\n1.0\t2.0\tEllie\thi\n")
    make_media(root / "311_P" / "311_AUDIO.wav", 3.0)
    _interview(root / "312_P", 312, turns)
    (root / "312_P" / "312_AUDIO.wav").write_bytes(b"RIFF\x00\x00\x00\x00WAVEnot really a wav file" * 8)
    (root / "313_P").mkdir()
    make_media(root / "313_P" / "313_AUDIO.wav", 3.0)
    scores = {300: 14, 301: 3, 302: 20, 303: 0, 304: 11, 305: 6, 306: 18, 307: 2, 310: 9, 311: 5, 312: 15, 313: 1}
    lists = {"train": (300, 301, 302, 303, 304, 305, 310, 311, 312, 313), "dev": (306, 307)}
    for part, pids in lists.items():
        (root / f"{part}_split_Depression_AVEC2017.csv").write_text(
            HEAD + "".join(f"{p},{int(scores[p] >= 10)},{scores[p]},{p % 2}\n" for p in pids))
    # 308 and 309 are in no list (the unlabelled test set)
    return root


def test_official_split_by_default_with_phq8_scores(daic_root: Path) -> None:
    prepared = prepare("daicwoz", daic_root)  # no split given: the AVEC 2017 partition
    assert prepared.split_protocol == "official"
    rows = prepared.manifest.to_pylist()
    by_pid = {r["speaker"]: r for r in rows}
    assert {p for p, r in by_pid.items() if r["split"] == "test"} == {"306", "307"}  # dev list = test
    assert {r["split"] for r in rows if r["speaker"] in ("300", "301", "302", "303", "304", "305", "310")} <= \
        {"train", "val"}
    assert (by_pid["300"]["score"], by_pid["300"]["label"]) == (14.0, "depressed")
    assert (by_pid["301"]["score"], by_pid["301"]["label"]) == (3.0, "not-depressed")
    assert (by_pid["304"]["score"], by_pid["304"]["label"]) == (11.0, "depressed")
    assert all(r["label4"] is None for r in rows)
    assert prepared.manifest.schema.field("score").type == pa.float32()
    # only participant turns: every kept row's text is an answer, none is Ellie's question
    assert rows and all(r["text"].startswith("answer") for r in rows)
    assert prepare("daicwoz", daic_root, split="speaker").split_protocol == "speaker"


def test_unusable_participants_are_rejected_with_a_reason(daic_root: Path) -> None:
    prepared = prepare("daicwoz", daic_root)
    reasons = prepared.rejects.column("reason").to_pylist()
    assert prepared.manifest.num_rows + prepared.rejects.num_rows == prepared.input_rows
    assert "no_turns: participant 311: no usable Participant turns in 311_TRANSCRIPT.csv" in reasons
    assert "no_turns: participant 313: no 313_TRANSCRIPT.csv" in reasons
    assert any(r.startswith("empty_media: participant 312 (2 turns): 312_AUDIO.wav cannot be decoded") for r in reasons)
    assert sum(r.startswith("no_label: participant 30") for r in reasons) == 2  # 308, 309
    assert "bad_segment: starts at 13 s, after the end of 310_AUDIO.wav (12.000 s)" in reasons
    speakers = set(prepared.manifest.column("speaker").to_pylist())
    assert speakers.isdisjoint({"308", "309", "311", "312", "313"})
    clipped = [r for r in prepared.manifest.to_pylist() if r["utt_id"] == "310_00010000"]
    assert [(r["start_s"], r["end_s"]) for r in clipped] == [(10.0, 12.0)]  # cut at the recording's end


def test_long_turns_become_windows(daic_root: Path, tmp_path: Path) -> None:
    whole = prepare("daicwoz", daic_root)
    cut = prepare_config(CorpusConfig(name="daicwoz", root=str(daic_root), max_segment_s=3.0))
    assert cut.split_protocol == "official"
    rows = {r["utt_id"]: r for r in cut.manifest.to_pylist()}
    # the 7 s turn of participant 300 -> 3 windows of 7/3 s, ids <pid>_<start>_w<k>
    bounds = [b for k in range(3) for b in (rows[f"300_00003000_w{k}"]["start_s"], rows[f"300_00003000_w{k}"]["end_s"])]
    assert bounds == pytest.approx([3.0, 3.0 + 7 / 3, 3.0 + 7 / 3, 3.0 + 14 / 3, 3.0 + 14 / 3, 10.0])
    assert "300_00001000" in rows and "300_00003000" not in rows  # the 1 s turn stays whole
    assert {rows[f"300_00003000_w{k}"]["score"] for k in range(3)} == {14.0}
    n_long = sum(1 for r in whole.manifest.to_pylist() if r["end_s"] - r["start_s"] > 3.0)
    assert cut.manifest.num_rows == whole.manifest.num_rows + 2 * n_long
    # windows keep the official partition: dev participants test, train participants train or val
    assert {r["speaker"] for r in rows.values() if r["split"] == "test"} == {"306", "307"}
    assert len({(r["speaker"], r["split"]) for r in rows.values()}) == len({r["speaker"] for r in rows.values()})
    # the score survives writing and reading the manifest; an old manifest without it reads as null
    path, _ = write_manifest(cut, tmp_path / "m.parquet")
    assert read_manifest(path).column("score").to_pylist() == cut.manifest.column("score").to_pylist()
    old = pq.read_table(path).drop_columns(["score"])
    pq.write_table(old, tmp_path / "old.parquet")
    assert read_manifest(tmp_path / "old.parquet").column("score").null_count == old.num_rows


def test_windows() -> None:
    assert windows(1.0, 2.0, None) == [(1.0, 2.0)]
    assert windows(1.0, 4.0, 3.0) == [(1.0, 4.0)]
    assert windows(0.0, 6.0, 3.0) == [(0.0, 3.0), (3.0, 6.0)]
    parts = windows(0.0, 6.5, 3.0)
    assert len(parts) == 3 and parts[-1][1] == 6.5 and max(b - a for a, b in parts) <= 3.0


def test_max_segment_s_is_validated(daic_root: Path) -> None:
    cfg = load_config(None, [])
    with pytest.raises(Exception, match="corpus.max_segment_s"):
        validate_config(replace_section(cfg, "corpus", name="daicwoz", root=str(daic_root), max_segment_s=0.0),
                        "corpus")
    with pytest.raises(Exception, match="corpus.max_segment_s"):
        validate_config(replace_section(cfg, "corpus", max_segment_s=4.0), "corpus")  # the demo has no turns
    ok = validate_config(replace_section(cfg, "corpus", name="daicwoz", root=str(daic_root), max_segment_s=4.0),
                         "corpus")
    assert ok.corpus.max_segment_s == 4.0 and ok.corpus.split is None
