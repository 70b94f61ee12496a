"""Every corpus adapter on a small generated tree of exactly its release layout (docs/corpora.md)."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from lssed.corpora import CorpusError, prepare
from lssed.corpora.splits import speakers_overlap


def _check(prepared, *, kept: int, rejected: int) -> list[dict]:
    assert prepared.manifest.num_rows + prepared.rejects.num_rows == prepared.input_rows
    assert (prepared.manifest.num_rows, prepared.rejects.num_rows) == (kept, rejected), \
        prepared.rejects.column("reason").to_pylist()
    rows = prepared.manifest.to_pylist()
    assert len({r["utt_id"] for r in rows}) == len(rows)
    assert all(Path(r["media_uri"]).is_file() for r in rows)
    return rows


def _reasons(prepared) -> list[str]:
    return prepared.rejects.column("reason").to_pylist()


def _no_overlap(prepared) -> None:
    rows = prepared.manifest.to_pylist()
    assert not speakers_overlap([r["speaker"] for r in rows], [r["split"] for r in rows])
    assert set(r["split"] for r in rows) == {"train", "val", "test"}


# ------------------------------------------------------------------------------------ IEMOCAP

EMO_HEADER = "% [START_TIME - END_TIME] TURN_NAME EMOTION [V, A, D]\n\n"


def _iemocap(root: Path, make_media) -> Path:
    for n in (1, 2, 5):
        ses = root / f"Session{n}"
        dialog = f"Ses0{n}F_impro01"
        lines = [EMO_HEADER]
        turns = [("F000", "neu"), ("M000", "ang"), ("F001", "exc"), ("M001", "sad"), ("F002", "fru"), ("M002", "xxx")]
        texts = []
        for i, (turn, code) in enumerate(turns):
            tid = f"{dialog}_{turn}"
            lines.append(f"[{i * 2 + 0.5:.4f} - {i * 2 + 1.5:.4f}]\t{tid}\t{code}\t[2.5000, 2.5000, 2.5000]\n")
            lines.append(f"C-E1:\tNeutral state;\t()\nA-E1:\tval 3; act 2; dom  2;\t()\n\n")
            texts.append(f"{tid} [{i * 2 + 0.5:08.4f}-{i * 2 + 1.5:08.4f}]: words of {turn}.\n")
            if not (n == 2 and turn == "F001"):  # this one only exists inside the dialog wav
                make_media(ses / "sentences" / "wav" / dialog / f"{tid}.wav", 0.5)
        if n == 1:
            lines.append("[bad line\n")
        (ses / "dialog" / "EmoEvaluation").mkdir(parents=True)
        (ses / "dialog" / "EmoEvaluation" / f"{dialog}.txt").write_text("".join(lines))
        (ses / "dialog" / "EmoEvaluation" / "Categorical").mkdir()  # ignored subfolder
        (ses / "dialog" / "transcriptions").mkdir(parents=True)
        (ses / "dialog" / "transcriptions" / f"{dialog}.txt").write_text("".join(texts))
        if n == 2:
            make_media(ses / "dialog" / "wav" / f"{dialog}.wav", 13.0)
    return root


def test_iemocap(tmp_path: Path, make_media) -> None:
    root = _iemocap(tmp_path / "IEMOCAP_full_release", make_media)
    prepared = prepare("iemocap", root, split="official")
    rows = _check(prepared, kept=15, rejected=4)
    reasons = _reasons(prepared)
    assert sum(r == "no_label: no majority emotion (xxx)" for r in reasons) == 3
    assert sum(r.startswith("unparsable_line: ") for r in reasons) == 1
    by_id = {r["utt_id"]: r for r in rows}
    exc = by_id["Ses01F_impro01_F001"]
    assert (exc["label"], exc["label4"], exc["speaker"], exc["gender"], exc["session"]) == ("excited", 2, "Ses01F", "F", "Ses01")
    assert exc["text"] == "words of F001." and exc["start_s"] is None
    assert (by_id["Ses01F_impro01_M000"]["label4"], by_id["Ses01F_impro01_M000"]["gender"]) == (0, "M")
    assert by_id["Ses01F_impro01_F002"]["label"] == "frustrated" and by_id["Ses01F_impro01_F002"]["label4"] is None
    fallback = by_id["Ses02F_impro01_F001"]  # cut from the dialog wav by its times
    assert fallback["media_uri"].endswith("dialog/wav/Ses02F_impro01.wav") and (fallback["start_s"], fallback["end_s"]) == (4.5, 5.5)
    assert {r["session"] for r in rows if r["split"] == "test"} == {"Ses05"}
    _no_overlap(prepared)
    other = prepare("iemocap", root, split="official", test_session=2)
    assert {r["session"] for r in other.manifest.to_pylist() if r["split"] == "test"} == {"Ses02"}
    _no_overlap(prepare("iemocap", root))
    with pytest.raises(CorpusError, match="test_session=4"):
        prepare("iemocap", root, split="official", test_session=4)
    with pytest.raises(CorpusError, match="no SessionN"):
        prepare("iemocap", tmp_path)


# --------------------------------------------------------------------------------------- MELD

MELD_HEADER = "Sr No.,Utterance,Speaker,Emotion,Sentiment,Dialogue_ID,Utterance_ID,Season,Episode,StartTime,EndTime\n"


def test_meld(tmp_path: Path, make_media) -> None:
    root = tmp_path / "MELD.Raw"
    speakers = ["Joey", "Ross", "Rachel", "Monica", "Chandler", "Phoebe"]
    emotions = ["neutral", "joy", "sadness", "anger", "surprise", "fear", "disgust"]
    dirs = {"train": "train_splits", "dev": "dev_splits_complete", "test": "output_repeated_splits_test"}
    for part, clip_dir in dirs.items():
        lines = [MELD_HEADER]
        for d in range(2):
            for u in range(4):
                k = d * 4 + u
                lines.append(f'{k + 1},"Well, {part} {k}",{speakers[(k + len(part)) % 6]},{emotions[k % 7]},neutral,'
                             f'{d},{u},3,4,"00:14:38,127","00:14:40,000"\n')
                if not (part == "dev" and k == 3):  # a missing clip, as in the release
                    make_media(root / clip_dir / f"dia{d}_utt{u}.mp4", 0.3)
        if part == "train":
            lines.append('99,"Oh.",Joey,sarcasm,neutral,5,0,3,4,"00:00:01,000","00:00:02,000"\n')
            make_media(root / clip_dir / "dia5_utt0.mp4", 0.3)
        (root / f"{part}_sent_emo.csv").write_text("".join(lines))
    prepared = prepare("meld", root, split="official")
    rows = _check(prepared, kept=23, rejected=2)
    assert sorted(_reasons(prepared))[0].startswith("missing_media: ")
    assert "unknown_label: unknown label 'sarcasm'" in _reasons(prepared)
    assert Counter(r["split"] for r in rows) == {"train": 8, "val": 7, "test": 8}
    first = next(r for r in rows if r["utt_id"] == "train_dia0_utt1")
    assert (first["label"], first["label4"], first["text"], first["session"]) == ("happy", 2, "Well, train 1", "train_dia0")
    assert first["start_s"] is None and first["gender"] is None
    _no_overlap(prepare("meld", root))  # the speaker protocol is speaker-independent (the official one is not)
    with pytest.raises(CorpusError, match="none of"):
        prepare("meld", tmp_path)


# ------------------------------------------------------------------------------------ RAVDESS

def test_ravdess(tmp_path: Path, make_media) -> None:
    root = tmp_path / "ravdess"
    for actor in (1, 2, 3, 4):
        for emotion in (1, 2, 3, 4, 5):
            make_media(root / f"Actor_{actor:02d}" / f"03-01-{emotion:02d}-01-01-01-{actor:02d}.wav", 0.3)
    make_media(root / "Video" / "01-01-05-01-01-01-01.mp4", 0.3)  # copy of an audio-only file
    make_media(root / "Video" / "01-01-06-02-02-01-03.mp4", 0.3)  # only as audio-video: kept
    make_media(root / "Video" / "02-01-05-01-01-01-01.mp4", 0.3)  # video only
    make_media(root / "Actor_01" / "notes.wav", 0.1)  # not a RAVDESS name
    prepared = prepare("ravdess", root)
    rows = _check(prepared, kept=21, rejected=3)
    reasons = _reasons(prepared)
    assert any(r.startswith("duplicate_recording: audio-video copy") for r in reasons)
    assert any(r.startswith("no_audio: video-only") for r in reasons)
    assert any(r.startswith("bad_name: ") and "is not MM-VV-EE-II-SS-RR-AA" in r for r in reasons)
    by_id = {r["utt_id"]: r for r in rows}
    calm = by_id["01-02-01-01-01-01"]
    assert (calm["label"], calm["label4"], calm["speaker"], calm["gender"]) == ("calm", None, "Actor_01", "M")
    assert by_id["01-05-01-01-01-02"]["gender"] == "F" and by_id["01-05-01-01-01-02"]["label4"] == 0
    av = by_id["01-06-02-02-01-03"]
    assert av["media_uri"].endswith(".mp4") and av["label"] == "fear" and av["text"] == "Dogs are sitting by the door"
    _no_overlap(prepared)
    with pytest.raises(CorpusError, match="no official split"):
        prepare("ravdess", root, split="official")


# ------------------------------------------------------------------------------------ CREMA-D

def test_cremad(tmp_path: Path, make_media) -> None:
    root = tmp_path / "CREMA-D"
    actors = {"1001": ("51", "Male"), "1002": ("21", "Female"), "1003": ("42", "Female"), "1004": ("30", "Male")}
    for actor in actors:
        for emo, level in (("ANG", "HI"), ("NEU", "XX"), ("HAP", "MD"), ("SAD", "LO"), ("DIS", "XX")):
            make_media(root / "AudioWAV" / f"{actor}_DFA_{emo}_{level}.wav", 0.3)
    (root / "AudioWAV" / "1004_MTI_SAD_XX.wav").write_bytes(b"")  # empty file in the release
    make_media(root / "AudioWAV" / "1004_TIE_BOR_XX.wav", 0.3)  # unknown emotion code
    make_media(root / "AudioWAV" / "readme.wav", 0.1)
    (root / "VideoDemographics.csv").write_text(
        "ActorID,Age,Sex,Race,Ethnicity\n" + "".join(f"{a},{age},{sex},Caucasian,Not Hispanic\n" for a, (age, sex) in actors.items()))
    prepared = prepare("cremad", root)
    rows = _check(prepared, kept=20, rejected=3)
    reasons = _reasons(prepared)
    assert any(r.startswith("empty_media: ") and r.endswith(" is empty") for r in reasons)
    assert "unknown_label: unknown label 'BOR'" in reasons
    r = next(r for r in rows if r["utt_id"] == "1001_DFA_ANG_HI")
    assert (r["label"], r["label4"], r["speaker"], r["gender"], r["age"], r["text"]) == \
        ("angry", 0, "1001", "M", "51", "Don't forget a jacket.")
    _no_overlap(prepared)
    with pytest.raises(CorpusError, match="1004_MTI_SAD_XX.wav"):
        prepare("cremad", root, strict=True)


# ----------------------------------------------------------------------------------- DAIC-WOZ

def test_daicwoz(tmp_path: Path, make_media) -> None:
    root = tmp_path / "daic"
    for pid in range(300, 308):
        folder = root / f"{pid}_P"
        folder.mkdir(parents=True)
        lines = ["start_time\tstop_time\tspeaker\tvalue\n"]
        for i in range(4):
            lines.append(f"{i * 2.0 + 0.2:.3f}\t{i * 2.0 + 0.9:.3f}\tEllie\thow are you doing today\n")
            lines.append(f"{i * 2.0 + 1.0:.3f}\t{i * 2.0 + 1.8:.3f}\tParticipant\tanswer {i}\n")
        if pid == 300:
            lines.append("9.0\t8.5\tParticipant\tbackwards\n")
            lines.append("oops\t9.9\tParticipant\tbad time\n")
        (folder / f"{pid}_TRANSCRIPT.csv").write_text("".join(lines))
        if pid != 306:  # participant 306's audio is missing
            make_media(folder / f"{pid}_AUDIO.wav", 9.0)
    head = "Participant_ID,PHQ8_Binary,PHQ8_Score,Gender,PHQ8_NoInterest\n"
    (root / "train_split_Depression_AVEC2017.csv").write_text(
        head + "".join(f"{p},{int(p % 2 == 0)},{12 if p % 2 == 0 else 3},{p % 2},0\n" for p in (300, 301, 302, 303, 304)))
    (root / "dev_split_Depression_AVEC2017.csv").write_text(head + "305,1,15,0,1\n306,0,2,1,0\n")
    prepared = prepare("daicwoz", root, split="official")  # 307 is in no list
    rows = _check(prepared, kept=24, rejected=1 + 1 + 2)  # a participant without label / audio: one reject
    reasons = _reasons(prepared)
    assert "no_label: participant 307 (4 turns) has no PHQ-8 label in the split lists" in reasons
    assert "missing_media: participant 306 (4 turns): 306_AUDIO.wav does not exist" in reasons
    assert "bad_segment: end (8.5) <= start (9.0)" in reasons
    assert any(r.startswith("bad_time: unparsable start/stop") for r in reasons)
    r = next(r for r in rows if r["utt_id"] == "300_00001000")
    assert (r["label"], r["label4"], r["speaker"], r["gender"], r["start_s"], r["end_s"], r["text"]) == \
        ("depressed", None, "300", "F", 1.0, 1.8, "answer 0")
    assert next(r for r in rows if r["speaker"] == "301")["gender"] == "M"
    assert {r["speaker"] for r in rows if r["split"] == "test"} == {"305"}  # dev list = test without test labels
    _no_overlap(prepared)
    _no_overlap(prepare("daicwoz", root))
    (root / "full_test_split.csv").write_text("Participant_ID,PHQ_Binary,PHQ_Score,Gender\n307,0,1,1\n")
    with_test = prepare("daicwoz", root, split="official")
    splits = {r["speaker"]: r["split"] for r in with_test.manifest.to_pylist()}
    assert (splits["305"], splits["307"], splits["300"]) == ("val", "test", "train")
