"""The per-worker training function without Ray (what the GPU benchmark calls)."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch

from lssed.storage import Storage
from lssed.train.data import collate_logmel_crops, describe_features, shard_tables, silence_value, utterances
from lssed.train.local import LocalContext, run_local
from lssed.train.loop import class_weights
from lssed.train.trainer import loop_config

from .conftest import small_config


@pytest.fixture(scope="module")
def local_inputs(synthetic_features):
    cfg = small_config("train.epochs=4", "train.batch_size=8")
    src = describe_features(cfg, synthetic_features)
    config = loop_config(cfg, src, out=Storage("/nonexistent"), model="resnet18", run_name="local")
    train = shard_tables(src, "train")
    crops = collate_logmel_crops(train, n_mels=64, crop_frames=32, seed=0, epoch=1,
                                 pad_value=silence_value(src.features))
    evals = {s: list(utterances(shard_tables(src, s), n_mels=64, recompute=False)) for s in ("val", "test")}
    return config, (torch.from_numpy(crops["x"]), torch.from_numpy(crops["y"])), evals


def _through_storage(state):
    """A checkpoint state saved and loaded as RayContext does (``torch.load(weights_only=True)``)."""
    buf = io.BytesIO()
    torch.save(state, buf)
    return torch.load(io.BytesIO(buf.getvalue()), map_location="cpu", weights_only=True)


def _run(config, data, evals, **kw):
    ctx = LocalContext(data, evals, device="cpu", **kw)
    return run_local(config, ctx), ctx


def test_loop_learns_selects_on_val_and_resumes_exactly(local_inputs):
    torch.set_num_threads(1)
    config, data, evals = local_inputs
    full, ctx = _run(config, data, evals)
    assert [r["epoch"] for r in ctx.reports] == [1, 2, 3, 4]
    assert {"epoch", "train_loss", "val_ua", "val_wa", "val_f1", "val_loss"} <= set(ctx.reports[0])
    assert full.history[-1].train_loss < full.history[0].train_loss
    best = max(full.history, key=lambda h: h.val.ua)
    assert full.best_epoch == min(h.epoch for h in full.history if h.val.ua == best.val.ua)
    # the final validation pass re-evaluates the selected weights: same as that epoch's
    assert full.val.ua == pytest.approx(full.history[full.best_epoch - 1].val.ua)
    assert full.evaluations["test"].n == 16
    assert set(full.predictions) == {"val", "test"}
    np.testing.assert_allclose(full.predictions["test"].probabilities.sum(axis=1), 1.0, atol=1e-5)

    # crash after epoch 2, resume from that checkpoint as storage returns it: identical to the
    # uninterrupted run
    cut, cut_ctx = _run(config, data, evals, stop_after_epoch=2)
    assert cut is None and len(cut_ctx.checkpoints) == 2
    resumed, _ = _run(config, data, evals, checkpoint=_through_storage(cut_ctx.checkpoints[-1]))
    assert resumed.restarts == 1
    assert [h.epoch for h in resumed.history] == [1, 2, 3, 4]
    computed = [(h.epoch, h.lr, h.train_loss, h.samples, h.val) for h in resumed.history]  # timings aside
    assert computed == [(h.epoch, h.lr, h.train_loss, h.samples, h.val) for h in full.history]
    assert resumed.evaluations["test"] == full.evaluations["test"]
    assert resumed.best_epoch == full.best_epoch


def test_same_seed_same_metrics_other_seed_differs(local_inputs):
    torch.set_num_threads(1)
    config, data, evals = local_inputs
    config = {**config, "train": {**config["train"], "epochs": 1}}
    a, _ = _run(config, data, evals)
    b, _ = _run(config, data, evals)
    assert [(h.train_loss, h.val) for h in a.history] == [(h.train_loss, h.val) for h in b.history]
    assert a.evaluations == b.evaluations
    other = {**config, "train": {**config["train"], "seed": 7}}
    c, _ = _run(other, data, evals, seed=7)
    assert c.history[0].train_loss != a.history[0].train_loss


def test_class_weights():
    w = class_weights([10, 30, 0, 20])
    assert w[2] == 0.0
    # N / (C * n_c): balanced classes get 1
    assert torch.allclose(class_weights([5, 5, 5, 5]), torch.ones(4))
    assert float(w[0]) == pytest.approx(60 / (4 * 10))


def test_default_run_name_is_stable_and_tracks_settings():
    from lssed.train.stage import default_run_name

    a = default_run_name(small_config(), "resnet18", "abcdef0123456789")
    assert a == default_run_name(small_config("train.max_failures=5"), "resnet18", "abcdef0123456789")
    assert a.startswith("resnet18-abcdef01-")
    assert a != default_run_name(small_config("train.lr=0.1"), "resnet18", "abcdef0123456789")
    assert a != default_run_name(small_config("features.win_length=400"), "resnet18", "abcdef0123456789")
    assert a != default_run_name(small_config(), "vgg11", "abcdef0123456789")


def test_spec_augment_changes_training_and_stays_repeatable(local_inputs):
    torch.set_num_threads(1)
    config, data, evals = local_inputs

    def losses(augment: bool):
        cfg = {**config, "train": {**config["train"], "epochs": 2, "spec_augment": augment}}
        out, _ = _run(cfg, data, evals)
        return [h.train_loss for h in out.history]

    plain, masked = losses(False), losses(True)
    assert masked == losses(True)
    assert not np.allclose(plain, masked)


def test_train_one_epoch_measures_the_wait_for_batches(local_inputs):
    import time

    from torch import nn

    from lssed.models import create_model
    from lssed.train.loop import eager_train_step, train_one_epoch

    _, (x, y), _ = local_inputs
    model = create_model("resnet18", num_classes=4)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)

    def slow_batches(delay_s):  # a data source that needs delay_s per batch
        for i in range(0, 48, 8):
            time.sleep(delay_s)
            yield {"x": x[i:i + 8], "y": y[i:i + 8]}

    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    step = eager_train_step(model, optimizer, nn.CrossEntropyLoss(), torch.device("cpu"), amp=False)
    _, seen = train_one_epoch(model, slow_batches(0.1), step, torch.device("cpu"), timings=timings)
    elapsed = time.perf_counter() - t0
    assert seen == 48
    assert 0.6 <= timings["data_wait_s"] < elapsed  # six batches, 0.1 s each, plus the training steps


def test_grouped_evaluation_equals_one_utterance_at_a_time(local_inputs):
    """Equal-shape utterances are batched for speed; each prediction is what it would be alone."""
    from lssed.models import create_model
    from lssed.train.evaluate import predict

    torch.set_num_threads(1)
    _, _, evals = local_inputs
    items = evals["val"] + evals["test"]
    same_shape = {u.data.shape for u in items}
    assert len(same_shape) < len(items), "the fixture should hold utterances of equal length to batch"
    torch.manual_seed(0)
    model = create_model("resnet18", num_classes=4)
    grouped = predict(model, items, torch.device("cpu"), amp=False)
    single = predict(model, items, torch.device("cpu"), amp=False, group=1)
    assert sorted(grouped.utt_ids) == sorted(single.utt_ids) == sorted(u.utt_id for u in items)
    order = {uid: i for i, uid in enumerate(single.utt_ids)}
    idx = [order[uid] for uid in grouped.utt_ids]
    np.testing.assert_allclose(grouped.probabilities, single.probabilities[idx], rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(grouped.labels, single.labels[idx])
    assert grouped.loss == pytest.approx(single.loss, rel=1e-5)
