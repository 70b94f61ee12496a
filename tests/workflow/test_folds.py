"""The k-fold protocol end to end on Ray: the train stage trains every fold of a k-fold feature
set as its own run (named -f<fold>), and each run tests on its fold."""

from __future__ import annotations

import pyarrow.dataset as pads
import pytest

from lssed.config import FeatureConfig, load_config
from lssed.storage import Storage
from lssed.train.data import describe_features
from lssed.train.synthetic import write_synthetic_features

from tests.evaluate.test_evaluate import with_folds

TINY = ["features.n_mels=64", "train.models=[resnet18]", "train.seeds=[0]", "train.epochs=1", "train.batch_size=8",
        "train.eval_batch_size=16", "train.crop_frames=32", "train.cpus_per_worker=1", "train.max_failures=0"]


@pytest.mark.ray
@pytest.mark.slow
def test_train_stage_trains_every_fold_and_tests_each_on_its_fold(ray_session, tmp_path):
    from lssed.train.runs import train_runs

    base = write_synthetic_features(Storage(str(tmp_path / "base")), features=FeatureConfig(n_mels=64), per_class=2)
    uri = with_folds(tmp_path, base, k=3)
    cfg = load_config(None, [*TINY, f"storage.root={tmp_path / 'out'}"])
    out = Storage(str(tmp_path / "out"))
    trained = train_runs(cfg, uri, "folded00000000", out=out)
    assert not trained.failures, trained.failures
    assert [r.run_name[-3:] for r in trained.runs] == ["-f0", "-f1", "-f2"]
    test_utts = pads.dataset(Storage(uri).path("shards"), format="parquet").to_table(columns=["utt_id", "fold", "label4"])
    for r in trained.runs:
        fold = r.train_config["fold"]
        expected = describe_features(load_config(None, [*TINY, f"train.fold={fold}"]), uri).split_counts
        assert r.evaluations["test"].n == expected["test"] and r.val.n == expected["val"]
        rows = [u for u, f, y in zip(*(test_utts.column(c).to_pylist() for c in ("utt_id", "fold", "label4")))
                if f == fold and y is not None]
        assert len(rows) == expected["test"]
