"""`lssed demo-corpus` and `lssed prepare` through the real command line entry point."""

from __future__ import annotations

from pathlib import Path

import pyarrow.parquet as pq

from lssed.cli import main


def test_prepare_cli_writes_manifest_and_rejects(demo_corpus_csv: Path, tmp_path: Path, capsys, caplog) -> None:
    csv_path = tmp_path / "corpus.csv"
    lines = demo_corpus_csv.read_text().splitlines()
    media = demo_corpus_csv.parent
    # absolute paths to the demo's media, plus two rows that must be rejected
    body = [lines[0]] + [f"{media}/{line}" for line in lines[1:]]
    body += ["gone.mp4,0,1,angry,spkX,F,adult,sX,", f"{media}/{lines[1].split(',')[0]},3,2,sad,spkX,F,adult,sX,"]
    csv_path.write_text("\n".join(body) + "\n")
    out = tmp_path / "m" / "manifest.parquet"
    assert main(["prepare", "generic", str(csv_path), "--out", str(out)]) == 0
    text = capsys.readouterr().out
    n = len(lines) - 1
    assert f"input rows: {n + 2} = {n} kept + 2 rejected" in text
    assert "missing media (1)" in text and "test" in text
    assert pq.read_table(out).num_rows == n and pq.read_table(out.with_name("manifest.rejects.parquet")).num_rows == 2
    assert main(["prepare", "generic", str(csv_path), "--out", str(out), "--strict"]) == 2  # a clear error, no traceback
    assert "missing media" in caplog.text


def test_demo_corpus_cli(tmp_path: Path, capsys) -> None:
    assert main(["demo-corpus", str(tmp_path / "d"), "--speakers", "3", "--per-class", "1", "--seed", "2"]) == 0
    text = capsys.readouterr().out
    assert f"wrote {tmp_path / 'd' / 'corpus.csv'}" in text and "18 utterances, 3 speakers" in text
    assert main(["prepare", "demo", str(tmp_path / "d" / "corpus.csv"), "--out", str(tmp_path / "m.parquet")]) == 0
    assert "splits (speaker): train" in capsys.readouterr().out
    assert pq.read_table(tmp_path / "m.parquet").column("corpus").to_pylist()[0] == "demo"
