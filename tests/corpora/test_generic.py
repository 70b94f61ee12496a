"""The generic CSV adapter: validation, rejects accounting, strict mode, manifest files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from lssed.corpora import CorpusError, prepare, read_manifest, write_manifest
from lssed.corpora.media import DEMO_SPECS, write_media
from lssed.schema import MANIFEST_SCHEMA, REJECTS_SCHEMA

HEADER = "path,start,end,label,speaker,gender,age,session,text\n"


def _media(root: Path, name: str = "a.wav", seconds: float = 3.0) -> Path:
    spec = next(s for s in DEMO_SPECS if s.suffix == ".wav")
    t = np.arange(int(seconds * spec.sample_rate)) / spec.sample_rate
    return write_media(root / name, (0.2 * np.sin(2 * np.pi * 220 * t))[None].astype(np.float32), spec)


def _corpus(tmp_path: Path, body: str) -> Path:
    _media(tmp_path, "a.wav")
    _media(tmp_path, "sub/b.wav")
    csv_path = tmp_path / "corpus.csv"
    csv_path.write_text(HEADER + body)
    return csv_path


GOOD = (
    "a.wav,0.1,1.0,ang,s1,F,adult,x,hello\n"
    "a.wav,1.0,2.0,neutral,s2,male,,x,\n"
    "sub/b.wav,,,Joy,s3,,,y,whole file\n"
    "sub/b.wav,0:00:01.5,0:00:02,sad,s3,m,old,y,hh:mm:ss times\n"
)
BAD = (
    "missing.wav,0,1,angry,s1,F,,x,\n"  # missing media
    "a.wav,2.0,1.5,angry,s1,F,,x,\n"  # end <= start
    "a.wav,2.5,2.9,sarcastic,s1,F,,x,\n"  # unknown label
    "a.wav,0.1,1.0,happy,s1,F,,x,the first row's segment again\n"  # duplicate id
    "a.wav,0,1,angry\n"  # unparsable: too few fields
    "a.wav,soon,1,angry,s1,F,,x,\n"  # unparsable time
    "a.wav,0.3,0.4,angry,s1,Q,,x,\n"  # bad gender
)


def test_generic_rejects_add_up(tmp_path: Path) -> None:
    csv_path = _corpus(tmp_path, GOOD + BAD)
    prepared = prepare("generic", csv_path)
    assert prepared.input_rows == 11
    assert prepared.manifest.num_rows == 4 and prepared.rejects.num_rows == 7
    assert prepared.manifest.num_rows + prepared.rejects.num_rows == prepared.input_rows
    assert prepared.manifest.schema.equals(MANIFEST_SCHEMA) and prepared.rejects.schema.equals(REJECTS_SCHEMA)
    reasons = prepared.rejects.column("reason").to_pylist()
    for expected in ("missing_media: ", "bad_segment: end (1.5) <= start (2.0)", "unknown_label: unknown label 'sarcastic'",
                     "duplicate_id: duplicate utterance id 'a_00000100'", "field_count: 4 fields",
                     "bad_time: unparsable start/end", "bad_gender: gender 'Q'"):
        assert sum(r.startswith(expected) for r in reasons) == 1, (expected, reasons)
    assert prepared.rejects.column("source").to_pylist()[0] == "corpus.csv:6"
    rows = {r["utt_id"]: r for r in prepared.manifest.to_pylist()}
    first = rows["a_00000100"]
    assert (first["label"], first["label4"], first["gender"], first["corpus"]) == ("angry", 0, "F", "generic")
    assert Path(first["media_uri"]).is_absolute() and Path(first["media_uri"]).exists()
    whole = rows["b_00000000"]
    assert whole["start_s"] is None and whole["end_s"] is None and whole["label"] == "happy"
    assert rows["b_00001500"]["start_s"] == 1.5 and rows["b_00001500"]["end_s"] == 2.0
    assert rows["a_00001000"]["gender"] == "M" and rows["a_00001000"]["age"] is None


def test_generic_strict_raises_on_first_bad_row(tmp_path: Path) -> None:
    csv_path = _corpus(tmp_path, GOOD + BAD)
    with pytest.raises(CorpusError, match=r"corpus.csv:6: missing_media: .*missing.wav does not exist.*--strict"):
        prepare("generic", csv_path, strict=True)
    assert prepare("generic", _corpus(tmp_path / "ok", GOOD), strict=True).rejects.num_rows == 0


def test_generic_missing_columns_named(tmp_path: Path) -> None:
    csv_path = tmp_path / "c.csv"
    csv_path.write_text("file,start,end,emotion\nx.wav,0,1,angry\n")
    with pytest.raises(CorpusError, match=r"lacks column\(s\) \['path', 'label', 'speaker'\]; found \['file'"):
        prepare("generic", csv_path)


def test_generic_all_rejected_or_empty_says_why(tmp_path: Path) -> None:
    csv_path = tmp_path / "c.csv"
    csv_path.write_text(HEADER + "nope.wav,0,1,angry,s1,,,,\n")
    prepared = prepare("generic", csv_path)  # an empty manifest; the rejects say why
    assert prepared.manifest.num_rows == 0 and prepared.manifest.schema.equals(MANIFEST_SCHEMA)
    assert prepared.rejects.column("reason").to_pylist()[0].startswith("missing_media: ")
    csv_path.write_text(HEADER)
    with pytest.raises(CorpusError, match="found no utterances"):
        prepare("generic", csv_path)
    with pytest.raises(CorpusError, match="does not exist"):
        prepare("generic", tmp_path / "absent.csv")
    with pytest.raises(CorpusError, match="unknown corpus"):
        prepare("timit", csv_path)


def test_write_manifest_beside(tmp_path: Path) -> None:
    prepared = prepare("generic", _corpus(tmp_path, GOOD + BAD))
    manifest, rejects = write_manifest(prepared, tmp_path / "out" / "m.parquet")
    assert rejects == tmp_path / "out" / "m.rejects.parquet"
    assert pq.read_table(manifest).num_rows == 4 and pq.read_table(rejects).num_rows == 7
    assert read_manifest(manifest).schema.equals(MANIFEST_SCHEMA)
    with pytest.raises(CorpusError, match=r"must end in \.parquet"):
        write_manifest(prepared, tmp_path / "m.csv")
    with pytest.raises(CorpusError, match="is not a manifest"):
        read_manifest(rejects)


def test_generic_official_split_column(tmp_path: Path) -> None:
    _media(tmp_path, "a.wav")
    csv_path = tmp_path / "c.csv"
    body = "".join(f"a.wav,{i * 0.1:.1f},{i * 0.1 + 0.05:.2f},angry,s{i % 5},,,,,{sp}\n"
                   for i, sp in enumerate(["train", "dev", "test", "train", "train"] * 2))
    csv_path.write_text(HEADER.strip() + ",split\n" + body)
    prepared = prepare("generic", csv_path, split="official")
    assert prepared.split_counts() == {"train": 6, "val": 2, "test": 2}
    with pytest.raises(CorpusError, match="no official split"):
        prepare("generic", _corpus(tmp_path / "n", GOOD), split="official")
