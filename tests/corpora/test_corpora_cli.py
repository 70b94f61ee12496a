"""`lssed demo-corpus` and `lssed prepare` through the real command line entry point."""

from __future__ import annotations

from pathlib import Path

import pyarrow.parquet as pq

from lssed.cli import main


def test_prepare_cli_writes_manifest_and_rejects(demo_corpus_csv: Path, tmp_path: Path, capsys, caplog) -> None:
    csv_path = tmp_path / "corpus.csv"
    lines = demo_corpus_csv.read_text().splitlines()
    media = demo_corpus_csv.parent
    # absolute paths to the demo's media (outside this CSV's folder: allowed explicitly), plus
    # two rows that must be rejected
    body = [lines[0]] + [f"{media}/{line}" for line in lines[1:]]
    body += ["gone.mp4,0,1,angry,spkX,F,adult,sX,", f"{media}/{lines[1].split(',')[0]},3,2,sad,spkX,F,adult,sX,"]
    csv_path.write_text("\n".join(body) + "\n")
    out = tmp_path / "m" / "manifest.parquet"
    assert main(["prepare", "generic", str(csv_path), "--out", str(out), "--allow-outside-root"]) == 0
    text = capsys.readouterr().out
    n = len(lines) - 1
    assert f"input rows: {n + 2} = {n} kept + 2 rejected" in text
    assert "missing_media (1)" in text and "bad_segment (1)" in text and "test" in text
    assert pq.read_table(out).num_rows == n and pq.read_table(out.with_name("manifest.rejects.parquet")).num_rows == 2
    assert main(["prepare", "generic", str(csv_path), "--out", str(out), "--strict",
                 "--allow-outside-root"]) == 2  # a clear error, no traceback
    assert "missing_media" in caplog.text
    # without --allow-outside-root every absolute path elsewhere is rejected: nothing usable,
    # exit 2, and the rejects file says why for each line
    assert main(["prepare", "generic", str(csv_path), "--out", str(out)]) == 2
    assert f"all {n + 2} rows were rejected" in caplog.text
    rejects = pq.read_table(out.with_name("manifest.rejects.parquet")).to_pylist()
    assert len(rejects) == n + 2 and pq.read_table(out).num_rows == 0
    assert sum(r["reason"].startswith("outside_root: ") for r in rejects) == n + 1  # gone.mp4 is inside: missing
    assert [r["source"] for r in rejects] == [f"corpus.csv:{i}" for i in range(2, n + 4)]


def test_demo_corpus_cli(tmp_path: Path, capsys) -> None:
    assert main(["demo-corpus", str(tmp_path / "d"), "--speakers", "3", "--per-class", "1", "--seed", "2"]) == 0
    text = capsys.readouterr().out
    assert f"wrote {tmp_path / 'd' / 'corpus.csv'}" in text and "18 utterances, 3 speakers" in text
    assert main(["prepare", "demo", str(tmp_path / "d" / "corpus.csv"), "--out", str(tmp_path / "m.parquet")]) == 0
    assert "splits (speaker): train" in capsys.readouterr().out
    assert pq.read_table(tmp_path / "m.parquet").column("corpus").to_pylist()[0] == "demo"
