"""Hostile generic CSVs: every physical record ends kept or rejected (with its line), never lost.

The record count is taken from the raw bytes, independently of csv's quoting, so a row that
an unbalanced quote swallows into another field would fail the accounting.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from lssed.cli import main
from lssed.corpora import REJECT_CODES, CorpusError, PreparedCorpus, prepare
from lssed.corpora.media import MediaSpec, write_media

HEADER = "path,start,end,label,speaker,gender,age,session,text"
_WAV = MediaSpec(".wav", "wav", "pcm_s16le", 16000, 1)


def _media(path: Path, seconds: float = 2.0) -> Path:
    t = np.arange(int(seconds * 16000)) / 16000
    return write_media(path, (0.2 * np.sin(2 * np.pi * 220 * t))[None].astype(np.float32), _WAV)


def _records(csv_path: Path) -> list[int]:
    """Line numbers of the data records, from the bytes: every line after the header with
    something in it besides commas and spaces (csv's quoting plays no part)."""
    lines = re.split(rb"\r\n|\r|\n", csv_path.read_bytes())
    content = [i + 1 for i, line in enumerate(lines) if line.strip(b" \t,\xef\xbb\xbf")]
    return content[1:]  # the first is the header


def _check(prepared: PreparedCorpus, csv_path: Path) -> dict[int, str]:
    """Kept + rejected == physical records; each reject names its line and a known code.
    Returns {line: reason} of the rejects."""
    records = _records(csv_path)
    assert prepared.input_rows == len(records)
    assert prepared.manifest.num_rows + prepared.rejects.num_rows == len(records)
    rejects = {}
    for r in prepared.rejects.to_pylist():
        name, line = r["source"].rsplit(":", 1)
        assert name == csv_path.name and int(line) in records, r
        assert r["reason"].split(":", 1)[0] in REJECT_CODES, r
        rejects[int(line)] = r["reason"]
    assert len(rejects) == prepared.rejects.num_rows  # one reject per line
    return rejects


@pytest.fixture
def corpus(tmp_path: Path) -> Path:
    """A corpus root with a.wav, b.wav, sub1/a.wav, sub2/a.wav; returns the CSV's path (unwritten)."""
    for name in ("a.wav", "b.wav", "sub1/a.wav", "sub2/a.wav"):
        _media(tmp_path / name)
    return tmp_path / "corpus.csv"


def _good(i: int) -> str:
    return f"a.wav,{i * 0.1:.1f},{i * 0.1 + 0.05:.2f},angry,s{i % 3},F,,x,line {i}"


def test_unbalanced_quote_costs_its_own_line_only(corpus: Path) -> None:
    body = [_good(i) for i in range(12)]
    body[2] = 'a.wav,0.2,0.25,angry,s2,F,,x,"she said "stop" and left'  # unbalanced and misplaced
    body[5] = 'a.wav,0.5,0.55,angry,s2,F,,x,"never closed'
    body[7] = 'a.wav,0.7,0.75,angry,s1,F,,x,"commas, and ""doubled"" quotes"'  # well-formed: kept
    corpus.write_text(HEADER + "\n" + "\n".join(body) + "\n")
    assert len(_records(corpus)) == 12  # a 13-line CSV

    prepared = prepare("generic", corpus)
    rejects = _check(prepared, corpus)
    assert sorted(rejects) == [4, 7] and all(r.startswith("bad_quoting: ") for r in rejects.values())
    assert prepared.manifest.num_rows == 10
    texts = prepared.manifest.column("text").to_pylist()
    assert 'commas, and "doubled" quotes' in texts and "line 11" in texts  # the lines after it are all there
    with pytest.raises(CorpusError, match=r"corpus.csv:4: bad_quoting"):
        prepare("generic", corpus, strict=True)


def test_bad_times_are_rejected_with_their_line(corpus: Path) -> None:
    body = [
        _good(0),
        "a.wav,NaN,1.0,angry,s1,F,,x,",
        "a.wav,inf,,angry,s1,F,,x,",
        "a.wav,0.5,-inf,angry,s1,F,,x,",
        "a.wav,1e400,,angry,s1,F,,x,",  # overflows to inf
        "a.wav,1e300,,angry,s1,F,,x,",  # finite but beyond any recording
        "a.wav,0:nan:1,,angry,s1,F,,x,",
        "a.wav,-1,0.5,angry,s1,F,,x,",
        "a.wav,1.0,0.5,angry,s1,F,,x,",
        _good(1),
    ]
    corpus.write_text(HEADER + "\n" + "\n".join(body) + "\n")
    prepared = prepare("generic", corpus)
    rejects = _check(prepared, corpus)
    assert sorted(rejects) == list(range(3, 11))
    assert all(rejects[line].startswith("bad_time: ") for line in range(3, 10)), rejects
    assert rejects[10].startswith("bad_segment: end (0.5) <= start (1.0)")
    assert prepared.manifest.num_rows == 2


def test_long_names_and_fields_are_rejected_not_raised(corpus: Path) -> None:
    body = [
        _good(0),
        f"{'n' * 300}.wav,0,1,angry,s1,F,,x,",  # a file name longer than the file system allows
        f"{'d/' * 2100}a.wav,0,1,angry,s1,F,,x,",  # a path longer than PATH_MAX
        f"a.wav,0,1,angry,{'s' * 300},F,,x,",  # a 300-character speaker
        "a.wav,0,1,angry,s1,F,,x," + "t" * 200_000,  # a 200 kB field
        f"a.wav,0,1,{'x' * 1000},s1,F,,x,",
        _good(1),
    ]
    corpus.write_text(HEADER + "\n" + "\n".join(body) + "\n")
    prepared = prepare("generic", corpus)
    rejects = _check(prepared, corpus)
    assert {line: r.split(":", 1)[0] for line, r in rejects.items()} == {
        3: "path_too_long", 4: "path_too_long", 5: "field_too_long", 6: "line_too_long", 7: "field_too_long",
    }
    assert "'speaker'" in rejects[5] and "200" in rejects[6]
    assert prepared.manifest.num_rows == 2
    assert max(len(r) for r in rejects.values()) < 400  # the reasons stay readable


def test_latin1_csv_is_detected_with_a_warning(corpus: Path, caplog) -> None:
    text = HEADER + "\n" + "a.wav,0,1,angry,José,M,,x,¿qué?\n" + _good(1) + "\n"
    corpus.write_bytes(text.encode("latin-1"))
    with caplog.at_level(logging.WARNING):
        prepared = prepare("generic", corpus)
    _check(prepared, corpus)
    assert prepared.manifest.column("speaker").to_pylist()[0] == "José"  # not "Jos\ufffd"
    assert prepared.manifest.column("text").to_pylist()[0] == "¿qué?"
    assert "not UTF-8" in caplog.text and "Windows-1252" in caplog.text and "line 2" in caplog.text

    caplog.clear()
    with caplog.at_level(logging.WARNING):
        named = prepare("generic", corpus, encoding="latin-1")
    assert named.manifest.column("speaker").to_pylist()[0] == "José" and "not UTF-8" not in caplog.text
    with pytest.raises(CorpusError, match=r"not valid utf-8 as asked: byte 0xe9 at offset \d+, line 2"):
        prepare("generic", corpus, encoding="utf-8")
    with pytest.raises(CorpusError, match="unknown encoding 'klingon'"):
        prepare("generic", corpus, encoding="klingon")


@pytest.mark.parametrize("bom,line,match", [
    (b"", b"a.wav,0,1,angry,s\x81\x8d,F,,x,", r"not UTF-8 \(byte 0x81 at offset \d+, line 2\) and not Windows-1252"),
    (b"\xef\xbb\xbf", b"a.wav,0,1,angry,Jos\xe9,F,,x,", r"not valid utf-8 \(it starts with a UTF-8 BOM\)"),
])
def test_undecodable_csv_fails_naming_the_byte(corpus: Path, bom: bytes, line: bytes, match: str) -> None:
    corpus.write_bytes(bom + HEADER.encode() + b"\n" + line + b"\n")
    with pytest.raises(CorpusError, match=match):
        prepare("generic", corpus)


def test_utf16_and_bom_files(corpus: Path) -> None:
    text = HEADER + "\n" + "a.wav,0,1,angry,Zoë,F,,x,\n"
    corpus.write_bytes(text.encode("utf-16"))  # with its BOM
    one = dict(test_fraction=0.0, val_fraction=0.0)  # one row: everything in train
    assert prepare("generic", corpus, **one).manifest.column("speaker").to_pylist() == ["Zoë"]
    corpus.write_bytes(text.encode("utf-16-le"))  # no BOM: NUL bytes everywhere
    with pytest.raises(CorpusError, match="NUL.*UTF-16 without a byte-order mark"):
        prepare("generic", corpus)
    corpus.write_bytes(b"\xef\xbb\xbf" + text.encode())
    assert prepare("generic", corpus, **one).manifest.num_rows == 1
    with pytest.raises(CorpusError, match="needs at least 2 speakers"):  # a user error, not a crash
        prepare("generic", corpus)


def test_cli_fails_on_an_undecodable_file_naming_the_fix(corpus: Path, tmp_path: Path, caplog) -> None:
    corpus.write_bytes(HEADER.encode() + b"\na.wav,0,1,angry,s\x81,F,,x,\n" + "\n".join(_good(i) for i in range(6)).encode())
    assert main(["prepare", "generic", str(corpus), "--out", str(tmp_path / "m.parquet")]) == 2
    assert "not UTF-8" in caplog.text and "--encoding" in caplog.text
    assert main(["prepare", "generic", str(corpus), "--out", str(tmp_path / "m.parquet"), "--encoding", "latin-1"]) == 0


def test_ids_keep_every_digit_and_distinct_segments_never_collide(corpus: Path) -> None:
    body = [
        "a.wav,0.1001,0.2,angry,s1,F,,x,",
        "a.wav,0.1004,0.2,angry,s1,F,,x,",  # the same millisecond as the line above
        "sub1/a.wav,,,angry,s1,F,,x,",  # same stem and start as the next line, another file
        "sub2/a.wav,,,angry,s2,F,,x,",
        "b.wav,1.5,1.8,sad,s1,F,,x,",
        "b.wav,1.5,1.9,sad,s1,F,,x,",  # same start, another end: another segment
        "b.wav,0:00:01.5,1.8,happy,s1,F,,x,the segment of line 6 again",  # a true duplicate
        "a.wav,0.25,0.5,angry,s1,F,,x,",
    ]
    corpus.write_text(HEADER + "\n" + "\n".join(body) + "\n")
    prepared = prepare("generic", corpus)
    rejects = _check(prepared, corpus)
    assert list(rejects) == [8] and rejects[8].startswith("duplicate_id: ")
    ids = prepared.manifest.column("utt_id").to_pylist()
    assert len(set(ids)) == len(ids) == 7
    assert ids[:2] == ["a_00000100.1", "a_00000100.4"] and ids[-1] == "a_00000250"
    assert ids[2].startswith("a_00000000_") and ids[3].startswith("a_00000000_") and ids[2] != ids[3]
    assert ids[4].startswith("b_00001500_") and ids[5].startswith("b_00001500_")
    # the ids do not depend on the order of the lines
    corpus.write_text(HEADER + "\n" + "\n".join(reversed(body)) + "\n")
    again = prepare("generic", corpus)
    assert set(again.manifest.column("utt_id").to_pylist()) == set(ids)


def test_paths_stay_inside_the_corpus_root(corpus: Path, tmp_path: Path) -> None:
    outside = _media(tmp_path.parent / f"{tmp_path.name}-elsewhere" / "o.wav")
    body = [
        "../../../etc/passwd,,,angry,s1,F,,x,",
        "/etc/passwd,,,angry,s1,F,,x,",
        f"../{outside.parent.name}/o.wav,0,1,angry,s1,F,,x,",
        f"{outside},0,1,angry,s1,F,,x,",
        "sub1/../a.wav,0,1,angry,s1,F,,x,",  # stays inside: kept
        f"{corpus.parent / 'b.wav'},0,1,angry,s2,F,,x,",  # absolute, inside: kept
    ]
    corpus.write_text(HEADER + "\n" + "\n".join(body) + "\n")
    prepared = prepare("generic", corpus)
    rejects = _check(prepared, corpus)
    assert sorted(rejects) == [2, 3, 4, 5] and all(r.startswith("outside_root: ") for r in rejects.values())
    assert "--allow-outside-root" in rejects[2]
    assert sorted(Path(u).name for u in prepared.manifest.column("media_uri").to_pylist()) == ["a.wav", "b.wav"]

    corpus.write_text(HEADER + "\n" + "\n".join(body[2:]) + "\n")
    allowed = prepare("generic", corpus, allow_outside_root=True)
    reasons = _check(allowed, corpus)
    assert list(reasons) == [3] and reasons[3].startswith("duplicate_id: ")  # line 2's segment, spelled otherwise
    assert sum(Path(u) == outside.resolve() for u in allowed.manifest.column("media_uri").to_pylist()) == 1
    with pytest.raises(CorpusError, match="apply to the generic/demo CSV only"):
        prepare("ravdess", corpus.parent, allow_outside_root=True)


def test_rejects_file_is_always_written(corpus: Path, tmp_path: Path, caplog) -> None:
    out = tmp_path / "out" / "m.parquet"
    rejects = out.with_name("m.rejects.parquet")
    corpus.write_text(HEADER + "\n" + "\n".join(_good(i) for i in range(4)) + "\n")
    assert main(["prepare", "generic", str(corpus), "--out", str(out)]) == 0
    assert pq.read_table(out).num_rows == 4 and pq.read_table(rejects).num_rows == 0  # an empty table

    corpus.write_text(HEADER + "\nnope.wav,0,1,angry,s1,F,,x,\n../x.wav,0,1,angry,s1,F,,x,\na.wav,0,1,meh,s1,,,,\n")
    assert main(["prepare", "generic", str(corpus), "--out", str(out)]) == 2
    assert "all 3 rows were rejected" in caplog.text and str(rejects) in caplog.text
    table = pq.read_table(rejects).to_pylist()
    assert [(r["source"], r["reason"].split(":")[0]) for r in table] == [
        ("corpus.csv:2", "missing_media"), ("corpus.csv:3", "outside_root"), ("corpus.csv:4", "unknown_label")]
    assert pq.read_table(out).num_rows == 0


def test_cli_counts_a_hostile_file(corpus: Path, tmp_path: Path, capsys) -> None:
    body = [_good(i) for i in range(6)] + [
        'a.wav,0.9,1.0,angry,s1,F,,x,"open',
        "a.wav,nan,1.0,angry,s1,F,,x,",
        "../../../etc/passwd,,,angry,s1,F,,x,",
        f"{'n' * 300}.wav,0,1,angry,s1,F,,x,",
        "a.wav,0,1,angry,s1,F,,x," + "t" * 200_000,
        "a.wav,0,1,angry",
        "",
        ",,,,,,,,",  # no data: not a record
    ]
    corpus.write_text(HEADER + "\r\n" + "\r\n".join(body) + "\r\n")
    out = tmp_path / "m.parquet"
    assert main(["prepare", "generic", str(corpus), "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert len(_records(corpus)) == 12
    assert "input rows: 12 = 6 kept + 6 rejected" in text
    for code in ("bad_quoting", "bad_time", "outside_root", "path_too_long", "line_too_long", "field_count"):
        assert f"{code} (1)" in text


def test_docs_explain_every_reject_code() -> None:
    docs = (Path(__file__).resolve().parents[2] / "docs" / "corpora.md").read_text()
    missing = [code for code in REJECT_CODES if f"| `{code}` |" not in docs]
    assert not missing, f"docs/corpora.md lacks reject code(s) {missing}"
