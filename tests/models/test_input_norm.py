"""train.input_norm=utterance: per-utterance, per-band standardisation inside the model."""

from __future__ import annotations

import pytest
import torch

from lssed.config import ConfigError, load_config
from lssed.models import create_model
from lssed.models.input_norm import apply_input_norm, utterance_norm

N_MELS = 64


def test_utterance_norm_uses_only_valid_frames_and_zeroes_padding():
    torch.manual_seed(0)
    x = torch.randn(2, 1, N_MELS, 30) * 3 + 5
    lengths = torch.tensor([30, 12])
    padded = x.clone()
    padded[1, ..., 12:] = -13.8  # the log floor training pads with
    out = utterance_norm(padded, lengths)
    valid = out[1, ..., :12]
    assert torch.allclose(valid.mean(dim=-1), torch.zeros(1, N_MELS), atol=1e-5)
    assert torch.allclose(valid.std(dim=-1, unbiased=False), torch.ones(1, N_MELS), atol=1e-4)
    assert torch.count_nonzero(out[1, ..., 12:]) == 0
    # the padded item is normalised exactly as the item alone, unpadded
    assert torch.allclose(valid, utterance_norm(x[1:, ..., :12])[0], atol=1e-5)
    assert torch.allclose(out[0], utterance_norm(x[:1])[0], atol=1e-5)


def test_constant_band_maps_to_zero_not_infinity():
    x = torch.full((1, 1, N_MELS, 20), -13.8)
    assert utterance_norm(x).abs().max() < 1e-3


@pytest.fixture(scope="module")
def pair():
    """The same resnet18 weights without and with input_norm=utterance, in eval mode."""
    torch.manual_seed(0)
    plain = create_model("resnet18").eval()
    normed = create_model("resnet18", input_norm="utterance").eval()
    normed.load_state_dict(plain.state_dict())  # nothing learned: the same keys load strictly
    return plain, normed


def test_state_dict_unchanged_and_normalisation_applied(pair):
    plain, normed = pair
    assert list(plain.state_dict()) == list(normed.state_dict())
    assert normed.input_norm == "utterance" and getattr(plain, "input_norm", "none") == "none"
    torch.manual_seed(1)
    x = torch.randn(3, 1, N_MELS, 40)
    with torch.no_grad():
        assert torch.allclose(normed(x), plain(utterance_norm(x)), atol=1e-5)
        # a per-band offset and scale (level, channel colouring) changes nothing for the normed model
        shifted = x * 2.5 + torch.linspace(-4, 4, N_MELS).view(1, 1, N_MELS, 1)
        assert torch.allclose(normed(shifted), normed(x), atol=1e-4)
        assert not torch.allclose(plain(shifted), plain(x), atol=1e-2)


def test_padded_batch_gives_each_item_alone(pair):
    _, normed = pair
    torch.manual_seed(2)
    x = torch.randn(2, 1, N_MELS, 48)
    lengths = torch.tensor([48, 20])
    padded = x.clone()
    padded[1, ..., 20:] = -13.8
    with torch.no_grad():
        out = normed(padded, lengths)
        alone = normed(x[1:, ..., :20])
        unmasked = normed(padded)
    assert torch.allclose(out[1], alone[0], atol=1e-4)
    assert torch.allclose(out[0], normed(x[:1])[0], atol=1e-4)
    assert not torch.allclose(unmasked[1], alone[0], atol=1e-3)  # the padding would matter without lengths


@pytest.mark.filterwarnings("ignore::torch.jit.TracerWarning")
def test_traced_model_keeps_the_normalisation(pair):
    """What `lssed models export` records (a trace) normalises too."""
    _, normed = pair
    torch.manual_seed(3)
    with torch.no_grad():
        traced = torch.jit.trace(normed, (torch.randn(2, 1, N_MELS, 67),), check_trace=False)
        x = torch.randn(2, 1, N_MELS, 51)  # another length: the statistics follow the time axis
        assert torch.allclose(traced(x), normed(x), atol=1e-4)
        assert torch.allclose(traced(x + 3.0), normed(x), atol=1e-4)


def test_unknown_norm_and_double_application_fail():
    with pytest.raises(ValueError, match="unknown input_norm"):
        create_model("crnn_attn", input_norm="speaker")
    with pytest.raises(ValueError, match="already normalises"):
        apply_input_norm(create_model("crnn_attn", input_norm="utterance"), "utterance")


def test_config_key_reaches_the_run_model_kwargs(tmp_path):
    """train.input_norm is checked, names the run, and lands in the run's model_kwargs (which
    evaluate, export, predict and embed rebuild the model from)."""
    from lssed.config import config_to_dict
    from lssed.storage import Storage
    from lssed.train.data import FeatureSource
    from lssed.train.stage import default_run_name
    from lssed.train.trainer import loop_config
    from lssed.validate import validate_config

    with pytest.raises(ConfigError, match="train.input_norm"):
        load_config(None, ["train.input_norm=speaker"])
    with pytest.raises(ConfigError, match="set train.input_norm instead"):
        validate_config(load_config(None, ["train.model_kwargs={input_norm: utterance}"]), "train",
                        models=["resnet18"])
    plain, normed = load_config(None, []), load_config(None, ["train.input_norm=utterance"])
    assert default_run_name(plain, "resnet18", "d" * 16) != default_run_name(normed, "resnet18", "d" * 16)
    features = {**config_to_dict(plain.features), "sample_rate": 16000}
    source = FeatureSource(uri=str(tmp_path), digest="d" * 16, shards_path=str(tmp_path), stored_features=features,
                           features=features, recompute=False, n_mels=128, split_counts={}, class_counts=(1, 1, 1, 1),
                           train_corpora=("demo",), rows_total=4, rows_unlabelled=0, storage=Storage(str(tmp_path)))
    out = Storage(str(tmp_path / "run"))
    config = loop_config(normed, source, out=out, model="resnet18", run_name="r")
    assert config["model_kwargs"] == {"input_norm": "utterance"}
    assert config["train"]["model_kwargs"] == {"input_norm": "utterance"}  # what results.json keeps
    assert loop_config(plain, source, out=out, model="resnet18", run_name="r")["model_kwargs"] == {}
