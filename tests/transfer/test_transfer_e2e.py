"""`lssed transfer` end to end on the synthetic DAIC-WOZ interviews: the session's demo SER run, the MFCC
baseline and the wav2vec2 ASR encoder (generated weights: `untrained`) -> results.json -> Table 6 in the
HTML report."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import pytest

from lssed.cli import main as cli_main

pytestmark = [pytest.mark.ray, pytest.mark.slow]


@pytest.fixture(scope="module")
def daicwoz_features(ray_session, daicwoz_demo, tmp_path_factory) -> str:
    """The session's synthetic DAIC-WOZ (12 interviews x 3 turns) through the real corpus and preprocess stages."""
    from lssed.config import load_config
    from lssed.corpora import prepare, write_manifest
    from lssed.preprocess.stage import preprocess
    from lssed.storage import Storage

    prepared = prepare("daicwoz", daicwoz_demo.root, split="official")
    manifest, _ = write_manifest(prepared, tmp_path_factory.mktemp("daicwoz_manifest") / "manifest.parquet")
    cfg = load_config(None, ["preprocess.num_actors=2"])
    return preprocess(cfg, manifest, out=Storage(str(tmp_path_factory.mktemp("daicwoz_features")))).uri


@pytest.fixture(scope="module")
def transfer_root(demo_run, tmp_path_factory) -> Path:
    """A storage root holding a copy of the demo run (the report reads runs/ and transfer/ side by side)."""
    run, _, _ = demo_run
    root = tmp_path_factory.mktemp("transfer_root")
    shutil.copytree(run.root, root / "runs" / "demo-resnet18")
    return root


def test_transfer_end_to_end_and_table6(daicwoz_features, transfer_root, generated_wav2vec2_weights, daicwoz_demo):
    run_uri = str(transfer_root / "runs" / "demo-resnet18")
    argv = ["transfer", daicwoz_features, "--run", run_uri, "--out", str(transfer_root), "--name", "daic-demo",
            "--baselines", "mfcc,wav2vec2", "--set", f"transfer.wav2vec2_weights={generated_wav2vec2_weights}",
            "--set", "transfer.wav2vec2_untrained=true", "--set", "transfer.wav2vec2_layer=1",
            "--set", "transfer.bootstrap=200", "--set", "transfer.cv_folds=3"]
    assert cli_main(argv) == 0
    results = json.loads((transfer_root / "transfer" / "daic-demo" / "results.json").read_text())
    people = {p.pid: p for p in daicwoz_demo.participants}
    dev = sorted(pid for pid, p in people.items() if p.part == "dev")
    assert results["corpus"] == "daicwoz" and results["dev_split"] == "test"
    assert (results["n_train"], results["n_dev"]) == (len(people) - len(dev), len(dev))
    sets = {s["features"]: s for s in results["sets"]}
    assert set(sets) == {"demo-resnet18", "mfcc", "wav2vec2 WAV2VEC2_ASR_BASE_960H"}
    assert sets["wav2vec2 WAV2VEC2_ASR_BASE_960H"]["untrained"] is True
    assert not sets["demo-resnet18"]["untrained"] and not sets["mfcc"]["untrained"]
    assert (sets["demo-resnet18"]["window_ms"], sets["mfcc"]["window_ms"],
            sets["wav2vec2 WAV2VEC2_ASR_BASE_960H"]["window_ms"]) == (64.0, 25.0, 25.0)
    assert sets["wav2vec2 WAV2VEC2_ASR_BASE_960H"]["dim"] == 768 and sets["mfcc"]["dim"] == 73
    assert sets["demo-resnet18"]["dim"] == 512  # resnet18's fc input
    for s in sets.values():
        rows = {r["classifier"]: r for r in s["scores"]}
        assert set(rows) == {"logreg", "svm", "ridge"}
        for name in ("logreg", "svm"):
            r = rows[name]
            # the same dev participants, in the same order, for every embedding and classifier
            assert r["predictions"]["participant"] == dev and r["n_dev"] == len(dev)
            assert r["predictions"]["true"] == [int(people[p].score >= 10) for p in dev]
            for metric in ("f1_depressed", "macro_f1", "ua"):
                lo, hi = r["ci"][metric]
                assert 0.0 <= lo <= hi <= 1.0 and 0.0 <= r["metrics"][metric] <= 1.0
        assert rows["ridge"]["predictions"]["true"] == [float(people[p].score) for p in dev]
        assert rows["ridge"]["metrics"]["mae"] <= rows["ridge"]["metrics"]["rmse"]
    # the embedding tables are in the shared layout, with their sources
    emb = transfer_root / "embeddings"
    markers = {json.loads(p.read_text())["source_kind"] for p in emb.glob("*/_SUCCESS.json")}
    assert markers == {"run", "baseline"}

    # a second call reuses the stored embeddings and gives the same scores (seeded)
    assert cli_main([*argv, "--name", "daic-demo-2"]) == 0
    again = json.loads((transfer_root / "transfer" / "daic-demo-2" / "results.json").read_text())
    assert [s["scores"] for s in again["sets"]] == [s["scores"] for s in results["sets"]]

    from lssed.report.build import build_report

    report = build_report(str(transfer_root), transfer_root / "report")
    table = report.table("table6_transfer")
    assert len(table.rows) == 2 * 3 * 3  # two transfer results x three embeddings x three classifiers
    with open(transfer_root / "report" / "tables" / "table6_transfer.csv", newline="") as fh:
        header = next(csv.reader(fh))
    assert header == ["features", "classifier", "f1_depressed", "macro_f1", "ua", "mae", "rmse", "n_train", "n_dev",
                      "ci"]
    page = report.index_html.read_text()
    assert "Table 6: depression detection" in page and "wav2vec2 WAV2VEC2_ASR_BASE_960H (untrained)" in page
    assert "demo-resnet18: log-mel STFT window 64 ms" in page and "2.6x the ASR encoder&#x27;s 25 ms" in page


def test_missing_wav2vec2_weights_exit_2_before_any_work(daicwoz_features, tmp_path, monkeypatch, caplog):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "empty-torch-home"))
    rc = cli_main(["transfer", daicwoz_features, "--out", str(tmp_path), "--baselines", "wav2vec2"])
    assert rc == 2
    assert "wav2vec2_fairseq_base_ls960_asr_ls960.pth" in caplog.text and "transfer.wav2vec2_weights" in caplog.text
    assert not (tmp_path / "embeddings").exists() and not (tmp_path / "transfer").exists()
