"""Starting from pretrained weights (issue 12, item 5): train.init_from, train.freeze, head resizing,
train.model_kwargs; and the lengths of padded crops reaching the model (item 8). No Ray."""

from __future__ import annotations

import pytest
import torch

from lssed.models import create_model
from lssed.models.checkpoints import CheckpointMismatch, import_checkpoint
from lssed.storage import Storage
from lssed.train.data import collate_logmel_crops, describe_features, shard_tables, silence_value, utterances
from lssed.train.local import LocalContext, run_local
from lssed.train.pretrained import load_pretrained, read_init_state
from lssed.train.trainer import loop_config

from .conftest import small_config


@pytest.fixture(scope="module")
def inputs(synthetic_features):
    cfg = small_config("train.epochs=1", "train.batch_size=8")
    src = describe_features(cfg, synthetic_features)
    config = loop_config(cfg, src, out=Storage("/nonexistent"), model="resnet18", run_name="pre")
    crops = collate_logmel_crops(shard_tables(src, "train"), n_mels=64, crop_frames=32, seed=0, epoch=1,
                                 pad_value=silence_value(src.features))
    data = (torch.from_numpy(crops["x"]), torch.from_numpy(crops["y"]), torch.from_numpy(crops["lengths"]))
    evals = {s: list(utterances(shard_tables(src, s), n_mels=64, recompute=False)) for s in ("val", "test")}
    return config, data, evals


@pytest.fixture(scope="module")
def imported(tmp_path_factory):
    """A 'pretrained' resnet18 (4 classes, weights far from any init) through `lssed models import`."""
    torch.manual_seed(123)
    model = create_model("resnet18", num_classes=4)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    d = tmp_path_factory.mktemp("pretrained")
    torch.save(model.state_dict(), d / "raw.pt")
    result = import_checkpoint(d / "raw.pt", d / "resnet18.pt", model="resnet18")
    return str(result.out), model.state_dict()


def _with(config, **train):
    return {**config, "train": {**config["train"], **train}}


def _run(config, data, evals, **kw):
    ctx = LocalContext(data, evals, device="cpu", **kw)
    return run_local(config, ctx), ctx


def test_fine_tuning_starts_from_the_imported_weights(inputs, imported):
    torch.set_num_threads(1)
    config, data, evals = inputs
    path, weights = imported
    # weights equal at step 0: the model the loop builds is the checkpoint, buffers included
    from lssed.train.loop import LoopSettings, build_training

    start = _with(config, init_from=path)
    tr = build_training(start, LoopSettings.from_config(start), LocalContext(data, evals, device="cpu"))
    assert all(torch.equal(tr.core.state_dict()[k], v) for k, v in weights.items())
    tuned, _ = _run(_with(config, init_from=path), data, evals)
    scratch, _ = _run(config, data, evals)
    # the same seed and data from another start: the first epoch's loss differs
    assert tuned.history[0].train_loss != pytest.approx(scratch.history[0].train_loss, rel=1e-3)
    assert any(not torch.equal(tuned.best_state[k], v) for k, v in weights.items())  # and it trains


def test_the_head_is_resized_for_another_class_count(imported):
    path, weights = imported
    state = read_init_state(path)
    torch.manual_seed(0)
    model = create_model("resnet18", num_classes=3)
    fresh_fc = model.fc.weight.detach().clone()
    assert load_pretrained(model, state) == ["fc.weight", "fc.bias"]
    assert torch.equal(model.fc.weight, fresh_fc) and model.fc.out_features == 3
    assert torch.equal(model.layer4[1].conv2.weight, weights["layer4.1.conv2.weight"])
    with pytest.raises(CheckpointMismatch, match="missing from the checkpoint"):
        load_pretrained(create_model("resnet34"), state)  # another backbone is an error, not a partial load


def test_freeze_keeps_the_backbone_fixed(inputs, imported):
    torch.set_num_threads(1)
    config, data, evals = inputs
    path, weights = imported
    out, _ = _run(_with(config, init_from=path, freeze="backbone", epochs=2, num_classes=4), data, evals)
    backbone = {k: v for k, v in weights.items() if not k.startswith("fc.")}
    # parameters AND BatchNorm running statistics: the backbone computes exactly what it did
    assert all(torch.equal(out.best_state[k], v) for k, v in backbone.items())
    assert not torch.equal(out.best_state["fc.weight"], weights["fc.weight"])


def test_model_kwargs_reach_create_model(inputs):
    torch.set_num_threads(1)
    config, data, evals = inputs
    with pytest.raises(TypeError, match="no_such_option"):
        _run({**config, "model_kwargs": {"no_such_option": 1}}, data, evals)
    cfg = small_config("train.model_kwargs={zero_init_residual: true}")
    assert cfg.train.model_kwargs == {"zero_init_residual": True}


def test_padded_crops_carry_their_lengths_to_the_model(inputs):
    """The loop passes the collate's lengths on: a run without them trains differently."""
    torch.set_num_threads(1)
    config, (x, y, lengths), evals = inputs
    assert int(lengths.min()) < x.shape[-1], "the fixture should hold utterances shorter than the crop"
    masked, _ = _run(config, (x, y, lengths), evals)
    padded, _ = _run(config, (x, y), evals)
    assert masked.history[0].train_loss != padded.history[0].train_loss
