"""MODEL_CARD.md beside a finished run, and the run's export (issue 14 items 2 and 3). No Ray:
a finished run from the synthetic feature set through run_local and write_run_outputs."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lssed.cli import main as cli_main
from lssed.report.modelcard import CARD_FILE, export_card_path
from lssed.models.export import load_exported, read_metadata
from lssed.storage import Storage
from lssed.train.data import collate_logmel_crops, describe_features, shard_tables, silence_value, utterances
from lssed.train.local import LocalContext, run_local
from lssed.train.outputs import read_predictions, write_run_outputs
from lssed.train.trainer import loop_config

from .conftest import small_config


@pytest.fixture(scope="module")
def finished_run(synthetic_features, tmp_path_factory):
    """(run Storage, RunResults, test utterances) of a 2-epoch resnet18 run on the synthetic set."""
    torch.set_num_threads(1)
    cfg = small_config("train.epochs=2")
    src = describe_features(cfg, synthetic_features)
    run = Storage(str(tmp_path_factory.mktemp("out"))).child("runs", "card-run")
    config = loop_config(cfg, src, out=run, model="resnet18", run_name="card-run")
    crops = collate_logmel_crops(shard_tables(src, "train"), n_mels=64, crop_frames=32, seed=0, epoch=1,
                                 pad_value=silence_value(src.features))
    data = (torch.from_numpy(crops["x"]), torch.from_numpy(crops["y"]), torch.from_numpy(crops["lengths"]))
    evals = {s: list(utterances(shard_tables(src, s), n_mels=64, recompute=False)) for s in ("val", "test")}
    outcome = run_local(config, LocalContext(data, evals, device="cpu"))
    results = write_run_outputs(run, outcome, config)
    return run, results, evals["test"]


def test_a_finished_run_has_a_model_card(finished_run):
    run, results, _ = finished_run
    assert run.exists(CARD_FILE)
    text = run.read_bytes(CARD_FILE).decode()
    test = results.evaluations["test"]
    assert "# Model card: card-run" in text and "`resnet18`" in text
    assert "Corpora: synthetic" in text
    # the synthetic set: 6 speakers, 4 per class each, the last speaker test, the one before val
    assert "| train | 4 | 16 | 16 | 16 | 16 | 64 |" in text
    assert "| test | 1 | 4 | 4 | 4 | 4 | 16 |" in text
    assert "Speaker independence: yes" in text
    assert f"| test | {test.n} | {test.ua:.4f} | {test.wa:.4f} |" in text
    assert "Confusion matrix, test" in text
    for row, name in zip(test.confusion, results.class_names):
        assert f"| {name} | " + " | ".join(str(c) for c in row) + " |" in text
    assert "Not for clinical, hiring" in text and "Data licence (of every training corpus): _fill in_" in text
    assert "lr: 0.005" in text  # the recipe


@pytest.mark.parametrize("fmt", ["onnx", "torchscript"])
def test_export_of_the_run_reproduces_its_predictions(finished_run, tmp_path, fmt):
    run, results, test_utts = finished_run
    out = tmp_path / f"model.{fmt}"
    assert cli_main(["models", "export", run.uri, "--format", fmt, "--out", str(out)]) == 0
    meta = read_metadata(out)
    assert meta["class_names"] == list(results.class_names) and meta["run_name"] == "card-run"
    assert meta["features"] == results.feature_config and meta["train_corpora"] == ["synthetic"]
    assert meta["metrics"]["test"]["ua"] == pytest.approx(results.evaluations["test"].ua)
    assert meta["training_data"]["speakers_by_split"] == {"test": 1, "train": 4, "val": 1}
    # the exported graph gives the probabilities the run stored for its test utterances
    stored = {r["utt_id"]: r["probabilities"] for r in read_predictions(run).to_pylist() if r["split"] == "test"}
    model = load_exported(out, threads=1)
    for u in test_utts[:6]:
        got = model(u.data[None, None])[0]
        assert np.abs(got - np.asarray(stored[u.utt_id])).max() <= 1e-4, u.utt_id
    card = export_card_path(out).read_text()
    assert f"`{out.name}`" in card and "Confusion matrix, test" in card


def test_the_report_links_the_run_card(finished_run, tmp_path):
    from lssed.report.build import build_report

    run, _, _ = finished_run
    report = build_report(run.uri.rsplit("/runs/", 1)[0], tmp_path / "report")
    cards = report.table("runs").column("model_card")
    assert list(cards) == [run.join_uri(CARD_FILE)]
    for written in ("report.md", "tables/runs.csv"):
        assert run.join_uri(CARD_FILE) in (tmp_path / "report" / written).read_text()


def test_export_of_a_run_on_s3(finished_run, s3_endpoint, tmp_path):
    import uuid

    run, results, _ = finished_run
    remote = Storage(f"s3://lssed-test/export-{uuid.uuid4().hex[:8]}", endpoint_url=s3_endpoint).child("runs", "s3")
    for name in ("results.json", "best_model.pt"):
        remote.write_bytes(run.read_bytes(name), name)
    out = tmp_path / "model.onnx"
    assert cli_main(["models", "export", remote.uri, "--format", "onnx", "--out", str(out),
                     "--set", f"storage.endpoint_url={s3_endpoint}"]) == 0
    meta = read_metadata(out)
    assert meta["source"] == remote.uri and meta["metrics"]["test"]["n"] == results.evaluations["test"].n
    # a run directory that holds no results.json: a user error (exit 2), not a traceback
    assert cli_main(["models", "export", remote.uri.replace("/runs/s3", "/runs/absent"), "--format", "onnx",
                     "--out", str(tmp_path / "x.onnx"), "--set", f"storage.endpoint_url={s3_endpoint}"]) == 2
