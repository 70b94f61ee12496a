"""The per-worker training function without Ray (what the GPU benchmark calls)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lssed.storage import Storage
from lssed.train.data import collate_logmel_crops, describe_features, shard_tables, silence_value, utterances
from lssed.train.loop import LocalContext, class_weights, run_local
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

    # crash after epoch 2, resume from that checkpoint: identical to the uninterrupted run
    cut, cut_ctx = _run(config, data, evals, stop_after_epoch=2)
    assert cut is None and len(cut_ctx.checkpoints) == 2
    resumed, _ = _run(config, data, evals, checkpoint=cut_ctx.checkpoints[-1])
    assert resumed.restarts == 1
    assert [h.epoch for h in resumed.history] == [1, 2, 3, 4]
    assert [h.train_loss for h in resumed.history] == [h.train_loss for h in full.history]
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
    from lssed.train.loop import train_one_epoch

    _, (x, y), _ = local_inputs
    model = create_model("resnet18", num_classes=4)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)

    def slow_batches(delay_s):  # a data source that needs delay_s per batch
        for i in range(0, 48, 8):
            time.sleep(delay_s)
            yield {"x": x[i:i + 8], "y": y[i:i + 8]}

    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    _, seen = train_one_epoch(model, slow_batches(0.1), optimizer, nn.CrossEntropyLoss(), torch.device("cpu"),
                              amp=False, timings=timings)
    elapsed = time.perf_counter() - t0
    assert seen == 48
    assert 0.6 <= timings["data_wait_s"] < elapsed  # six batches, 0.1 s each, plus the training steps
