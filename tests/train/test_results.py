"""results.json and checkpoint history: one (de)serialisation of Metrics and EpochRecord."""

from __future__ import annotations

import json
import math

from lssed.train.results import EpochRecord, Metrics, RunResults


def _metrics(**kw) -> Metrics:
    base = dict(n=4, wa=0.5, ua=0.5, macro_f1=0.4, per_class_recall=(1.0, 0.0, float("nan"), 0.5),
                confusion=((1, 0, 0, 0), (1, 0, 0, 0), (0, 0, 0, 0), (0, 1, 0, 1)), loss=1.25)
    return Metrics(**{**base, **kw})


def _record(epoch: int) -> EpochRecord:
    return EpochRecord(epoch=epoch, lr=0.01, train_loss=1.5 / epoch, val=_metrics(ua=0.1 * epoch), seconds=2.0,
                       train_seconds=1.5, samples=64, data_wait_seconds=0.25)


def test_epoch_record_round_trips_through_json():
    rec = _record(3)
    back = EpochRecord.from_dict(json.loads(json.dumps(rec.to_dict())))
    assert isinstance(back.val, Metrics)
    assert isinstance(back.val.confusion, tuple) and isinstance(back.val.confusion[0], tuple)
    # NaN (a class with no true samples) survives; compare the rest field by field
    assert math.isnan(back.val.per_class_recall[2])
    assert back.val.per_class_recall[:2] == rec.val.per_class_recall[:2]
    assert (back.epoch, back.lr, back.train_loss, back.samples, back.val.confusion) == \
        (rec.epoch, rec.lr, rec.train_loss, rec.samples, rec.val.confusion)


def test_older_and_newer_files_load():
    """Fields added later default when absent; fields a newer version added are ignored."""
    old = {"epoch": 1, "lr": 0.01, "train_loss": 1.0, "seconds": 3.0,
           "val": {k: v for k, v in _metrics().__dict__.items() if k != "loss"}}
    rec = EpochRecord.from_dict(old)
    assert rec.samples == 0 and rec.data_wait_seconds == 0.0 and rec.val.loss is None
    newer = {**_record(2).to_dict(), "future_field": 1}
    newer["val"] = {**newer["val"], "future_metric": 0.3}
    assert EpochRecord.from_dict(newer).epoch == 2


def test_run_results_history_uses_the_same_records():
    m = _metrics(per_class_recall=(1.0, 0.0, 0.5, 0.5))
    res = RunResults(run_name="r", model="resnet18", class_names=("a", "b", "c", "d"), train_corpus="x",
                     features_uri="f", features_digest="d", feature_config={}, train_config={}, seed=0,
                     num_params=1, epochs_completed=2, best_epoch=2, train_seconds=4.0,
                     history=(_record(1), _record(2)), val=m, evaluations={"test": m})
    again = RunResults.from_dict(json.loads(json.dumps(res.to_dict())))
    assert [h.epoch for h in again.history] == [1, 2]
    assert again.evaluations == {"test": m} and again.val == m
    assert again.history[1].val.ua == res.history[1].val.ua
