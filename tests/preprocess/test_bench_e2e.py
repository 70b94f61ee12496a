"""benchmarks/preprocess_e2e.py on a tiny corpus: `lssed preprocess` and the plain script agree.

Runs the benchmark as a user would (its own child processes: the installed `lssed` console
script with its own local Ray, and the plain PyAV + noisereduce + librosa script) on the
demo manifest's test split, then checks the JSON's structure and that both paths produced
the same rows with log-mels of the same shape that are close. No timing is asserted.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BENCH = ROOT / "benchmarks" / "preprocess_e2e.py"

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def bench_result(demo_manifest, tmp_path_factory):
    work = tmp_path_factory.mktemp("bench_e2e")
    out = work / "result.json"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "RAY_AUTH_MODE": "disabled"}
    cmd = [sys.executable, str(BENCH), "--manifest", str(demo_manifest), "--work", str(work / "w"),
           "--out", str(out), "--repeats", "1", "--actors", "2", "--no-jit-probe"]
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return json.loads(out.read_text()), proc.stdout


def test_json_structure(bench_result):
    r, _ = bench_result
    for key in ("date", "machine", "versions", "commands", "data", "loadavg", "a", "b", "rows", "logmel_check",
                "speedup"):
        assert key in r, key
    assert r["machine"]["cpu_count"] == os.cpu_count()
    assert {"ray", "torch", "noisereduce", "av"} <= set(r["versions"])
    a_cmd, b_cmd = r["commands"]["a"], r["commands"]["b"]
    assert Path(a_cmd[0]).name == "lssed" and a_cmd[1] == "preprocess" and "preprocess.num_actors=2" in a_cmd
    assert "--plain" in b_cmd
    for side in ("a", "b"):
        assert len(r[side]["wall_s"]) == 1 and r[side]["wall_s"][0] > 0
        assert r[side]["wall_median_s"] == r[side]["wall_s"][0]
        run = r[side]["runs"][0]
        assert run["cpu_tree_s"] > 0 and run["audio_s"] > 0
    assert r["speedup"] == pytest.approx(r["b"]["wall_median_s"] / r["a"]["wall_median_s"])
    # the CLI's phases were read off its log lines, in order, within its wall time
    marks = r["a"]["runs"][0]["phase_marks_s"]
    order = ["ray_start", "pipeline_start", "first_chunk", "last_chunk", "committed", "exit"]
    assert all(m in marks for m in order), marks
    assert [marks[m] for m in order] == sorted(marks[m] for m in order)
    assert r["a"]["runs"][0]["actors"] == 2


def test_held_out_rows_are_the_test_split(bench_result, demo_manifest):
    import pyarrow.parquet as pq

    r, _ = bench_result
    full = pq.read_table(demo_manifest)
    test_ids = {u for u, s in zip(full.column("utt_id").to_pylist(), full.column("split").to_pylist()) if s == "test"}
    held = pq.read_table(r["data"]["manifest"])
    assert set(held.column("utt_id").to_pylist()) == test_ids
    assert r["data"]["rows"] == len(test_ids)


def test_both_paths_give_the_same_rows_and_close_logmels(bench_result):
    r, stdout = bench_result
    assert r["rows"]["equal"] is True
    assert r["rows"]["a"] == r["rows"]["b"] and r["rows"]["a"][0] > 0
    c = r["logmel_check"]
    assert c["rows_a"] == c["rows_b"] == c["matched"] == r["rows"]["a"][0]
    assert c["only_a"] == c["only_b"] == 0
    assert c["shape_mismatches"] == 0  # equal (n_mels, n_frames) for every utterance
    assert c["corr_min"] > 0.99
    # same decoder library, denoiser and mel: far below the log-mel's own spread
    assert c["mean_abs_delta_logmel"] < 0.05 * c["logmel_std_a"]
    assert "| (A) lssed preprocess |" in stdout and "| (B) plain script |" in stdout
