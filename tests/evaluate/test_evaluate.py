"""`lssed evaluate` and the cross-corpus pieces, without Ray: a finished run is written by hand
(real weights in best_model.pt, real results.json) and scored on real synthetic shards."""

from __future__ import annotations

import io

import numpy as np
import pyarrow as pa
import pyarrow.dataset as pads
import pyarrow.parquet as pq
import pytest
import torch

from lssed.config import FeatureConfig, config_to_dict, load_config
from lssed.errors import UserError
from lssed.evaluate.scoring import LabelSpaceMismatch, evaluate_on, read_evaluations
from lssed.labels import BENCHMARK_CLASSES
from lssed.models import create_model
from lssed.storage import Storage
from lssed.train.data import describe_features, row_splits, shard_tables, split_filter, utterances
from lssed.train.evaluate import evaluate
from lssed.train.results import Metrics, RunResults
from lssed.train.synthetic import write_synthetic_features

FEATURES = FeatureConfig(n_mels=64)


@pytest.fixture(scope="module")
def features(tmp_path_factory) -> str:
    return write_synthetic_features(Storage(str(tmp_path_factory.mktemp("feats"))), features=FEATURES)


def finished_run(root: Storage, name: str, *, feature_cfg: FeatureConfig = FEATURES,
                 classes: tuple[str, ...] = BENCHMARK_CLASSES, train_corpus: str = "elsewhere") -> Storage:
    """A run as training leaves it: best_model.pt and results.json (seeded random weights)."""
    torch.manual_seed(7)
    model = create_model("resnet18", num_classes=len(classes))
    run = root.child("runs", name)
    buf = io.BytesIO()
    torch.save(model.state_dict(), buf)
    run.write_bytes(buf.getvalue(), "best_model.pt")
    m = Metrics(n=1, wa=0.5, ua=0.5, macro_f1=0.5, per_class_recall=(0.5,) * len(classes),
                confusion=tuple(tuple(0 for _ in classes) for _ in classes))
    res = RunResults(run_name=name, model="resnet18", class_names=classes, train_corpus=train_corpus,
                     features_uri="elsewhere", features_digest="x" * 16, feature_config=config_to_dict(feature_cfg),
                     train_config={"lr": 0.01, "epochs": 1}, seed=0, num_params=1, epochs_completed=1, best_epoch=1,
                     train_seconds=1.0, history=(), val=m, evaluations={"test": m})
    run.write_json(res.to_dict(), "results.json")
    return run


def test_evaluate_writes_metrics_and_predictions_inside_the_run(tmp_path, features):
    root = Storage(str(tmp_path))
    run = finished_run(root, "r1")
    res = evaluate_on(run.uri, features)
    assert res.corpus == "synthetic" and res.split == "test" and not res.features_recomputed
    # the same numbers as scoring the weights directly
    cfg = load_config(None, ["features.n_mels=64"])
    src = describe_features(cfg, features)
    model = create_model("resnet18", num_classes=4)
    model.load_state_dict(torch.load(io.BytesIO(run.read_bytes("best_model.pt")), weights_only=True))
    expected, _ = evaluate(model, utterances(shard_tables(src, "test"), n_mels=64, recompute=False),
                           torch.device("cpu"), num_classes=4, amp=False)
    assert (res.metrics.ua, res.metrics.wa, res.metrics.confusion) == (expected.ua, expected.wa, expected.confusion)
    assert res.metrics.n == src.split_counts["test"]
    data = run.read_json("evaluations", "synthetic.json")
    assert {"wa", "ua", "macro_f1", "confusion", "n"} <= set(data) and data["n"] == res.metrics.n
    preds = pq.read_table(pa.BufferReader(run.read_bytes("evaluations", "synthetic.predictions.parquet")))
    assert preds.num_rows == res.metrics.n and set(preds.column("split").to_pylist()) == {"test"}
    found, problems = read_evaluations(run)
    assert [e.key for e in found] == ["test@synthetic"] and not problems


def test_evaluate_recomputes_features_with_the_runs_stft(tmp_path, features):
    run = finished_run(Storage(str(tmp_path)), "r400", feature_cfg=FeatureConfig(n_mels=64, win_length=400,
                                                                                  hop_length=200))
    res = evaluate_on(run.uri, features, corpus="other-corpus", split="val")
    assert res.features_recomputed and res.feature_config["win_length"] == 400
    assert res.key == "val@other-corpus" and run.exists("evaluations", "other-corpus.val.json")


def test_label_space_mismatch_names_both_class_lists(tmp_path, features):
    run = finished_run(Storage(str(tmp_path)), "two", classes=("angry", "neutral"))
    with pytest.raises(LabelSpaceMismatch) as err:
        evaluate_on(run.uri, features)
    assert "['angry', 'neutral']" in str(err.value) and "['angry', 'neutral', 'happy', 'sad']" in str(err.value)
    assert isinstance(err.value, UserError) and not run.exists("evaluations")


def test_unfinished_run_is_a_user_error_and_checkpoint_scores_into_it(tmp_path, features):
    root = Storage(str(tmp_path))
    with pytest.raises(UserError, match="has not finished"):
        evaluate_on(root.child("runs", "nothing").uri, features)
    torch.manual_seed(3)
    ckpt = tmp_path / "imported.pt"
    torch.save(create_model("resnet18", num_classes=4).state_dict(), ckpt)
    res = evaluate_on(root.child("runs", "imported").uri, features, checkpoint=str(ckpt), model="resnet18")
    assert res.checkpoint == str(ckpt) and res.metrics.n > 0


def test_cli_evaluate_prints_and_exits_2_on_user_errors(tmp_path, features, capsys):
    from lssed.cli import main

    run = finished_run(Storage(str(tmp_path)), "cli")
    assert main(["evaluate", run.uri, features, "--corpus", "syn"]) == 0
    out = capsys.readouterr().out
    assert "UA" in out and "syn.json" in out
    two = finished_run(Storage(str(tmp_path)), "cli2", classes=("angry", "neutral"))
    assert main(["evaluate", two.uri, features]) == 2


def test_report_reads_evaluations_as_test_at_corpus_and_fills_table4(tmp_path, features):
    from lssed.report.load import load_runs
    from lssed.report.tables import table4

    root = Storage(str(tmp_path))
    run = finished_run(root, "r1", train_corpus="elsewhere")
    res = evaluate_on(run.uri, features)
    loaded = load_runs(root.uri, with_features=False)
    (r,) = [x.results for x in loaded.runs]
    assert r.evaluations["test@synthetic"] == res.metrics
    t = table4([r])
    assert t.cell({"test_corpus": "synthetic"}, "ua") == pytest.approx(100 * res.metrics.ua)
    assert t.cell({"test_corpus": "synthetic"}, "cell") == "off-diagonal"
    assert t.cell({"test_corpus": "elsewhere"}, "cell") == "diagonal"


# --------------------------------------------------------------------------- k-fold splits


def with_folds(tmp_path, features: str, k: int = 3) -> str:
    """A copy of the synthetic feature set whose rows carry fold = speaker index mod k."""
    src = Storage(features)
    table = pads.dataset(src.path("shards"), format="parquet").to_table()
    folds = [int(s[1:]) % k for s in table.column("speaker").to_pylist()]
    column = pa.array(folds, pa.int8())
    table = (table.set_column(table.column_names.index("fold"), "fold", column) if "fold" in table.column_names
             else table.append_column("fold", column))
    dest = Storage(str(tmp_path / "folded"))
    dest.makedirs("shards")
    pq.write_table(table, dest.path("shards", "part-0.parquet"))
    marker = src.read_json("_SUCCESS.json")
    marker.pop("counts", None)
    dest.write_json(marker, "_SUCCESS.json")
    return dest.uri


def test_row_splits_and_filter_follow_the_fold_protocol():
    got = row_splits(["train"] * 4, [0, 1, 2, None], 1, 3)
    assert list(got) == ["train", "test", "val", None]
    assert list(row_splits(["train", "val"], None, None, None)) == ["train", "val"]
    table = pa.table({"fold": pa.array([0, 1, 2, None], pa.int8()), "split": ["train"] * 4,
                      "label4": pa.array([0, 1, 2, 3], pa.int8())})
    ds = pads.dataset(table)
    parts = {s: ds.to_table(filter=split_filter(s, 1, 3)).column("label4").to_pylist() for s in ("train", "val", "test")}
    assert parts == {"train": [0], "val": [2], "test": [1]}
    with pytest.raises(UserError, match="outside the 3 folds"):
        row_splits(["train"], [0], 3, 3)
    with pytest.raises(UserError, match="corpus.split=folds"):
        row_splits(["train"], None, 0, None)


def test_describe_features_with_a_fold_takes_its_splits_from_the_fold_column(tmp_path, features):
    uri = with_folds(tmp_path, features)
    cfg = load_config(None, ["features.n_mels=64", "train.fold=2"])
    src = describe_features(cfg, uri)
    assert (src.fold, src.folds) == (2, 3)
    test = shard_tables(src, "test", columns=["utt_id", "split", "label4"])
    speakers = {u.split("_")[1] for u in test.column("utt_id").to_pylist()}
    assert set(test.column("split").to_pylist()) == {"test"} and test.num_rows == src.split_counts["test"]
    assert sum(src.split_counts.values()) + src.rows_unlabelled == src.rows_total
    assert speakers == {"s02", "s05"}  # fold 2 = speakers 2 and 5 (index mod 3)


def test_training_start_rejects_a_speaker_in_two_splits(tmp_path, features):
    src = Storage(features)
    table = pads.dataset(src.path("shards"), format="parquet").to_table()
    speakers = np.asarray(table.column("speaker").to_pylist(), dtype=object)
    speakers[:] = "same-voice"
    table = table.set_column(table.column_names.index("speaker"), "speaker", pa.array(list(speakers), pa.string()))
    dest = Storage(str(tmp_path / "leaky"))
    dest.makedirs("shards")
    pq.write_table(table, dest.path("shards", "part-0.parquet"))
    marker = src.read_json("_SUCCESS.json")
    marker.pop("counts", None)
    dest.write_json(marker, "_SUCCESS.json")
    cfg = load_config(None, ["features.n_mels=64"])
    with pytest.raises(UserError, match="same-voice"):
        describe_features(cfg, dest.uri)
    assert describe_features(cfg, dest.uri, for_training=False).split_counts["test"] > 0  # evaluation only
    # the user's own leaky choice (corpus.split=utterance) trains, with a warning
    leaky = load_config(None, ["features.n_mels=64", "corpus.split=utterance"])
    assert describe_features(leaky, dest.uri).split_counts["train"] > 0


def test_plan_trains_every_fold_with_the_fold_in_the_run_name():
    from lssed.train.runs import plan_runs

    cfg = load_config(None, ["train.models=[resnet18]", "train.seeds=[0]"])
    plans = plan_runs(cfg, "f" * 16, folds=3)
    assert [p.fold for p in plans] == [0, 1, 2] and [p.cfg.train.fold for p in plans] == [0, 1, 2]
    assert [p.run_name[-3:] for p in plans] == ["-f0", "-f1", "-f2"] and len({p.run_name for p in plans}) == 3
    only = plan_runs(load_config(None, ["train.fold=1"]), "f" * 16, folds=3)
    assert [p.fold for p in only] == [1]
    assert [p.fold for p in plan_runs(cfg, "f" * 16, folds=None)] == [None]
    assert not plan_runs(cfg, "f" * 16)[0].run_name.endswith("-f0")


@pytest.mark.ray
def test_ray_split_datasets_with_a_fold_match_the_pyarrow_split(ray_session, tmp_path, features):
    """The Ray Data filter (training's train split) and the pyarrow one (evaluation) agree per fold."""
    from lssed.train.data import split_datasets

    uri = with_folds(tmp_path, features)
    for fold in (0, 2):
        src = describe_features(load_config(None, ["features.n_mels=64", f"train.fold={fold}"]), uri)
        parts = split_datasets(src, ("train", "val", "test"))
        for split in ("train", "val", "test"):
            got = sorted(parts[split].to_pandas()["utt_id"])
            assert got == shard_tables(src, split).column("utt_id").to_pylist(), (fold, split)
            assert len(got) == src.split_counts[split] > 0
