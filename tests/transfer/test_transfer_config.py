"""The `transfer:` section: its rules name the key and the valid values; the workflow checks it when it has a corpus."""

from __future__ import annotations

import pytest

from lssed.config import ConfigError, load_config
from lssed.validate import validate_config


@pytest.mark.parametrize("override, message", [
    ("transfer.baselines=[mfcc,openl3]", "transfer.baselines=[mfcc,openl3]: must list distinct baselines"),
    ("transfer.baselines=[mfcc,mfcc]", "transfer.baselines=[mfcc,mfcc]: must list distinct baselines"),
    ("transfer.classifiers=[]", "transfer.classifiers=[]: must list one or more"),
    ("transfer.classifiers=[rf]", "transfer.classifiers=[rf]: must list one or more"),
    ("transfer.cv_folds=1", "transfer.cv_folds=1: must be an integer >= 2"),
    ("transfer.bootstrap=-1", "transfer.bootstrap=-1: must be an integer >= 0"),
    ("transfer.wav2vec2_layer=0", "transfer.wav2vec2_layer=0: must be an integer >= 1"),
    ("transfer.name=a/b", "transfer.name=a/b: must be 1-120 letters"),
    ("transfer.positive_label=' '", "transfer.positive_label= : must name the positive class"),
])
def test_bad_transfer_keys_are_named(override, message):
    with pytest.raises(ConfigError) as err:
        validate_config(load_config(None, [override]), "transfer")
    assert message in str(err.value)


def test_weights_file_and_transfer_corpus_are_checked(tmp_path):
    cfg = load_config(None, ["transfer.baselines=[mfcc,wav2vec2]", f"transfer.wav2vec2_weights={tmp_path}/none.pth",
                             f"transfer.corpus={{name: daicwoz, root: {tmp_path}/missing}}"])
    with pytest.raises(ConfigError) as err:
        validate_config(cfg, "workflow")  # a transfer corpus puts the transfer stage in the workflow
    text = str(err.value)
    assert f"transfer.wav2vec2_weights={tmp_path}/none.pth: is not a file" in text
    assert f"transfer.corpus.root={tmp_path}/missing: does not exist" in text
    ok = load_config(None, [f"transfer.corpus={{name: daicwoz, root: {tmp_path}}}"])
    assert validate_config(ok, "workflow").transfer.corpus.root == str(tmp_path)
