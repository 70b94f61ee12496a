"""train.materialize_mb: the pure ingest decision (numbers in, decision out) and its config rules."""

from __future__ import annotations

import logging
from types import SimpleNamespace

import pytest

from lssed.config import ConfigError, load_config
from lssed.train.ingest_plan import (
    SAFETY_FRACTION,
    concurrent_runs,
    ingest_plan_for,
    plan_ingest,
    split_bytes,
)
from lssed.validate import validate_config

MB = 2**20
GB = 2**30


def test_auto_materializes_a_split_below_the_budget_and_streams_one_above():
    store = 8 * GB
    budget = int(store * SAFETY_FRACTION)
    below = plan_ingest("auto", budget, object_store_bytes=store, concurrent=1)
    above = plan_ingest("auto", budget + 1, object_store_bytes=store, concurrent=1)
    assert below.materialize and not above.materialize
    assert below.budget_bytes == above.budget_bytes == budget
    # the reason carries the numbers the decision was made from
    assert "4096 MB" in below.reason and "8192 MB" in below.reason and "1 concurrent" in below.reason


def test_concurrent_runs_divide_the_object_store():
    store, split = 16 * GB, 2 * GB
    alone = plan_ingest("auto", split, object_store_bytes=store, concurrent=1)
    eight = plan_ingest("auto", split, object_store_bytes=store, concurrent=8)
    assert alone.materialize and not eight.materialize  # 2 GB split: 8 GB budget alone, 1 GB among 8
    assert eight.budget_bytes == int(store / 8 * SAFETY_FRACTION) == GB
    assert plan_ingest("auto", GB, object_store_bytes=store, concurrent=8).materialize  # exactly the budget
    assert eight.concurrent_runs == 8 and "8 concurrent" in eight.reason


def test_auto_without_object_store_numbers_streams():
    plan = plan_ingest("auto", 1, object_store_bytes=None)
    assert not plan.materialize and "no object-store memory" in plan.reason


def test_fixed_setting_ignores_the_object_store():
    assert plan_ingest(256, 256 * MB, object_store_bytes=1).materialize
    assert not plan_ingest(256, 256 * MB + 1, object_store_bytes=100 * GB).materialize
    zero = plan_ingest(0, 0, object_store_bytes=100 * GB)
    assert not zero.materialize and "always streamed" in zero.reason


def test_split_share_and_concurrency_helpers():
    assert split_bytes(1000, 600, 1000) == 600
    assert split_bytes(1000, 5, 0) == 1000  # no row counts: the whole shards
    assert concurrent_runs(1, None) == 1
    assert concurrent_runs(2, 8) == 8 and concurrent_runs(8, None) == 8 and concurrent_runs(None, 3) == 3


def test_plan_for_a_run_reads_config_and_feature_source(caplog):
    cfg = load_config(None, ["stages.parallel_runs=4", "train.materialize_mb=1"])
    source = SimpleNamespace(shards_bytes=3 * MB, split_counts={"train": 50, "val": 25, "test": 25}, rows_total=100,
                             rows_unlabelled=0)
    with caplog.at_level(logging.INFO, logger="lssed.train.ingest_plan"):
        plan = ingest_plan_for(cfg, source)
    assert plan.split_bytes == int(1.5 * MB) and not plan.materialize  # 1.5 MB > 1 MB
    assert "streamed" in caplog.text and "1.5 MB" in caplog.text


def test_config_accepts_auto_or_an_integer_and_rejects_the_rest():
    assert load_config(None, []).train.materialize_mb == "auto"  # the default
    assert validate_config(load_config(None, ["train.materialize_mb=512"]), "train").train.materialize_mb == 512
    with pytest.raises(ConfigError, match="materialize_mb"):
        load_config(None, ["train.materialize_mb=lots"])
    with pytest.raises(ConfigError, match="materialize_mb"):
        validate_config(load_config(None, ["train.materialize_mb=-1"]), "train")


@pytest.mark.ray
@pytest.mark.parametrize("parallel_runs, materialized", [(1, True), (100_000, False)])
def test_make_trainer_follows_the_auto_plan_on_the_live_cluster(ray_session, synthetic_features, tmp_path, caplog,
                                                                parallel_runs, materialized):
    """The default (auto) reads the session Ray's object store (512 MB): the tiny synthetic split fits
    it alone, not split among 100,000 concurrent runs."""
    from ray.data.dataset import MaterializedDataset

    from lssed.storage import Storage
    from lssed.train.trainer import make_trainer

    from .conftest import small_config

    cfg = small_config(f"stages.parallel_runs={parallel_runs}")
    with caplog.at_level(logging.INFO, logger="lssed.train.ingest_plan"):
        trainer = make_trainer(cfg, synthetic_features, out=Storage(str(tmp_path)), model="resnet18", run_name="plan")
    assert isinstance(trainer.datasets["train"], MaterializedDataset) is materialized
    assert "object store 512 MB" in caplog.text and f"/ {parallel_runs} concurrent" in caplog.text
