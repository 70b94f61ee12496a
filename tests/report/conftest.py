"""A fixed set of hand-built runs in storage (results.json, predictions.parquet, features marker
and shards) so the report's tables can be checked cell by cell."""

from __future__ import annotations

from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from lssed.schema import SHARD_SCHEMA
from lssed.storage import Storage
from lssed.train.results import EpochRecord, Metrics, RunResults

CLASSES = ("angry", "neutral", "happy", "sad")
FEATURES_DIGEST = "feedfacecafe0001"


def metrics(ua: float, wa: float | None = None, f1: float | None = None, n: int = 40,
            confusion: tuple[tuple[int, ...], ...] | None = None) -> Metrics:
    conf = confusion or ((8, 2, 0, 0), (1, 7, 1, 1), (0, 3, 6, 1), (0, 0, 2, 8))
    return Metrics(n=n, wa=wa if wa is not None else ua, ua=ua, macro_f1=f1 if f1 is not None else ua,
                   per_class_recall=(ua,) * 4, confusion=conf, loss=1.0)


def make_run(name: str, model: str, *, seed: int, test_ua: float, val_ua: float, window: int = 1024,
             hop: int = 512, lr: float = 0.01, corpus: str = "demo", features_uri: str = "",
             extra_evals: dict[str, Metrics] | None = None, test_wa: float | None = None,
             test_f1: float | None = None, params: int = 1000, seconds: float = 10.0,
             confusion=None) -> RunResults:
    history = tuple(
        EpochRecord(epoch=e, lr=lr, train_loss=1.5 - 0.2 * e, val=metrics(val_ua * e / 2), seconds=1.0)
        for e in (1, 2)
    )
    evals = {"test": metrics(test_ua, test_wa, test_f1, confusion=confusion), **(extra_evals or {})}
    return RunResults(
        run_name=name, model=model, class_names=CLASSES, train_corpus=corpus,
        features_uri=features_uri, features_digest=FEATURES_DIGEST,
        feature_config={"n_fft": max(1024, window), "win_length": window, "hop_length": hop, "n_mels": 128},
        train_config={"lr": lr, "crop_frames": 32, "epochs": 2}, seed=seed, num_params=params,
        epochs_completed=2, best_epoch=2, train_seconds=seconds, history=history, val=metrics(val_ua),
        evaluations=evals,
    )


def fixed_runs(features_uri: str) -> list[RunResults]:
    f = features_uri
    return [
        # resnet18 at the paper's window, two seeds: test UA 50 / 60 -> 55 ± 7.0711
        make_run("r18-w1024-s0", "resnet18", seed=0, test_ua=0.50, test_wa=0.52, test_f1=0.48, val_ua=0.55,
                 features_uri=f, params=11_000_000, seconds=10.0,
                 extra_evals={"test@other": metrics(0.30)}),
        make_run("r18-w1024-s1", "resnet18", seed=1, test_ua=0.60, test_wa=0.62, test_f1=0.58, val_ua=0.57,
                 features_uri=f, params=11_000_000, seconds=20.0,
                 extra_evals={"test@other": metrics(0.40)}),
        # resnet18 at 25 ms: one seed, better validation UA than the w1024 setting
        make_run("r18-w400-s0", "resnet18", seed=0, test_ua=0.45, val_ua=0.70, window=400, hop=200,
                 features_uri=f, params=11_000_000),
        # vgg11 at 64 ms, two lrs: lr 0.1 has the better validation UA (and the worse test UA)
        make_run("vgg-w1024-lr0.01-s0", "vgg11", seed=0, test_ua=0.40, val_ua=0.30, lr=0.01, features_uri=f,
                 params=9_000_000),
        make_run("vgg-w1024-lr0.1-s0", "vgg11", seed=0, test_ua=0.35, val_ua=0.31, lr=0.1, features_uri=f,
                 params=9_000_000),
        # a second corpus: resnet18 trained on "other", tested on it and on demo
        make_run("r18-other-s0", "resnet18", seed=0, test_ua=0.70, val_ua=0.60, corpus="other",
                 features_uri=f, extra_evals={"test@demo": metrics(0.25)},
                 confusion=((5, 0, 0, 0), (0, 5, 0, 0), (0, 0, 0, 0), (1, 1, 1, 2))),
    ]


def write_features(root: Storage) -> str:
    feats = root.child("features", FEATURES_DIGEST)
    rows: list[dict[str, Any]] = []
    spec = [  # (split, label, label4, gender, age, speaker, seconds)
        ("train", "angry", 0, "F", "20-30", "s1", 2.0), ("train", "neutral", 1, "F", "20-30", "s1", 3.0),
        ("train", "happy", 2, "M", "30-40", "s2", 1.5), ("val", "sad", 3, "M", "30-40", "s3", 2.5),
        ("test", "excited", 2, "F", None, "s4", 4.0), ("test", "other", None, None, None, "s4", 1.0),
    ]
    for i, (split, label, l4, gender, age, spk, secs) in enumerate(spec):
        rows.append(dict(utt_id=f"u{i}", corpus="demo", speaker=spk, gender=gender, age=age, session=None,
                         label=label, label4=l4, split=split, start_s=1.0, end_s=1.0 + secs, sample_rate=16000,
                         n_mels=2, n_frames=1, logmel=[0.0, 0.0], waveform=None, clipped_samples=0))
    table = pa.Table.from_pylist(rows, schema=SHARD_SCHEMA)
    feats.makedirs("shards")
    with feats.filesystem.open_output_stream(feats.path("shards", "part-0.parquet")) as f:
        pq.write_table(table, f)
    feats.write_json({"digest": FEATURES_DIGEST, "rows_in": 7, "rows_out": 6, "rows_quarantined": 1,
                      "config": {"features": {"hop_length": 512, "win_length": 1024},
                                 "corpus": {"name": "demo", "split": "speaker"}},
                      "stats": {"hours": 0.0039}}, "_SUCCESS.json")
    return feats.uri


def write_runs(root: Storage, *, partial: bool = True) -> list[RunResults]:
    features_uri = write_features(root)
    runs = fixed_runs(features_uri)
    for r in runs:
        run = root.child("runs", r.run_name)
        run.write_json(r.to_dict(), "results.json")
        table = pa.table({"utt_id": ["a", "b"], "label4": [0, 1], "pred": [0, 0]})
        with run.filesystem.open_output_stream(run.path("predictions.parquet")) as f:
            pq.write_table(table, f)
    if partial:
        # a trial still running / stopped early: a checkpoint, no results.json
        root.child("runs", "still-running").write_bytes(b"x", "checkpoint_000000", "model.pt")
        # a crashed writer: torn JSON
        root.child("runs", "torn-json").write_bytes(b'{"run_name": "torn', "results.json")
    return runs


@pytest.fixture()
def runs_root(tmp_path) -> Storage:
    root = Storage(str(tmp_path / "store"))
    write_runs(root)
    return root
