"""``stages.parallel_runs``: the workflow's runs (models x seeds) as concurrent Ray tasks, each driving
its own TorchTrainer, give exactly the results of the same runs trained one at a time."""

from __future__ import annotations

import logging

import pytest

from lssed.config import replace_section
from lssed.storage import Storage
from lssed.train.runs import train_runs

from .conftest import small_config

pytestmark = [pytest.mark.ray, pytest.mark.slow, pytest.mark.timeout(900)]


def test_parallel_runs_equal_the_same_runs_one_at_a_time(ray_session, synthetic_features, tmp_path, caplog):
    cfg = small_config("train.epochs=2", "train.models=[resnet18]", "train.seeds=[0,1]")
    digest = "synthetic0001"
    one_at_a_time = train_runs(cfg, synthetic_features, digest, out=Storage(str(tmp_path / "sequential")))
    with caplog.at_level(logging.INFO, logger="lssed.train.runs"):
        parallel = train_runs(replace_section(cfg, "stages", parallel_runs=2), synthetic_features, digest,
                              out=Storage(str(tmp_path / "parallel")))
    assert caplog.text.count("as a Ray task") == 2, "the runs did not go out as concurrent Ray tasks"
    assert not one_at_a_time.failures and not parallel.failures
    assert len(parallel.runs) == 2
    assert [r.run_name for r in parallel.runs] == [r.run_name for r in one_at_a_time.runs]
    assert parallel.runs[0].seed != parallel.runs[1].seed
    for seq, par in zip(one_at_a_time.runs, parallel.runs):
        assert [h.train_loss for h in par.history] == [h.train_loss for h in seq.history]
        assert [h.val for h in par.history] == [h.val for h in seq.history]
        assert par.evaluations["test"] == seq.evaluations["test"]
