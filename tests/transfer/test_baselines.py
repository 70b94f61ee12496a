"""Baseline embeddings: MFCC + prosody functionals on real synthesized speech, the wav2vec2 ASR encoder
loaded by the real loading code from a file of generated weights, eGeMAPS when openSMILE is installed."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torchaudio

from lssed.corpora.speech import Prosody, synthesize_batch
from lssed.errors import is_user_error
from lssed.transfer import baselines as bl

SR = 16000
TEXT = "I have been feeling tired, and I do not sleep well at night."


@pytest.fixture(scope="module")
def speech() -> dict[str, np.ndarray]:
    """The same sentence said briskly and loudly, and slowly, low and quietly (16 kHz float)."""
    items = [(TEXT, "en-us", Prosody(rate=190, volume=120, pitch=60, range=70), 1),
             (TEXT, "en-us", Prosody(rate=100, volume=50, pitch=30, range=15), 1)]
    out = {}
    for key, pcm in zip(("brisk", "slow"), synthesize_batch(items)):
        x = torch.from_numpy(pcm.astype(np.float32) / 32768.0)
        out[key] = torchaudio.functional.resample(x, 22050, SR).numpy()
    return out


def test_mfcc_prosody_functionals_follow_the_prosody(speech):
    brisk = bl.mfcc_prosody_functionals(speech["brisk"], SR)
    slow = bl.mfcc_prosody_functionals(speech["slow"], SR)
    assert brisk.shape == slow.shape == (73,) and brisk.dtype == np.float32
    assert np.all(np.isfinite(brisk)) and np.all(np.isfinite(slow))
    names = {"energy_mean": 60, "pitch_median": 64, "pitch_mad": 65, "duration": 72}
    assert slow[names["duration"]] > 1.4 * brisk[names["duration"]]  # slower speech, same words
    assert slow[names["energy_mean"]] < brisk[names["energy_mean"]] - 3  # quieter (dB)
    assert slow[names["pitch_median"]] < brisk[names["pitch_median"]]  # lower
    assert slow[names["pitch_mad"]] < brisk[names["pitch_mad"]]  # flatter
    np.testing.assert_array_equal(brisk, bl.mfcc_prosody_functionals(speech["brisk"], SR))  # deterministic


def test_a_clip_shorter_than_one_window_still_embeds():
    v = bl.mfcc_prosody_functionals(np.zeros(100, dtype=np.float32), SR)
    assert v.shape == (73,) and np.all(np.isfinite(v))


def test_wav2vec2_loads_generated_weights_through_the_real_loader(generated_wav2vec2_weights, speech):
    model, info = bl.load_wav2vec2("WAV2VEC2_ASR_BASE_960H", generated_wav2vec2_weights)
    assert info["window_samples"] == 400 and info["hop_samples"] == 320  # 25 ms windows, 20 ms hop
    saved = torch.load(generated_wav2vec2_weights, weights_only=True)
    loaded = model.state_dict()
    assert set(loaded) == set(saved)
    key = "encoder.transformer.layers.0.attention.k_proj.weight"
    torch.testing.assert_close(loaded[key], saved[key])
    assert model.aux.weight.shape[0] == 29 and not torch.any(model.aux.weight == 7.0)  # the unused rows dropped
    torch.testing.assert_close(loaded["aux.weight"], torch.cat([saved["aux.weight"][:1], saved["aux.weight"][4:]]))
    base = bl.wav2vec2_embedder(model, info, layer=2, untrained=True, device="cpu")
    assert base.window_ms == 25.0 and base.hop_ms == 20.0 and base.meta["untrained"] is True
    clip = speech["brisk"][: SR]  # one second keeps the test short
    v = base.embed(clip, SR)
    assert v.shape == (768,) and np.all(np.isfinite(v))
    with torch.inference_mode():
        feats, _ = model.extract_features(torch.from_numpy(clip)[None], num_layers=2)
    np.testing.assert_allclose(v, feats[-1][0].mean(0).numpy(), rtol=1e-5, atol=1e-6)
    with pytest.raises(bl.BaselineError, match="layers 1..12"):
        bl.wav2vec2_embedder(model, info, layer=13)


def test_wav2vec2_without_weights_is_a_user_error_saying_where_to_put_them(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch-home"))  # an empty hub cache
    with pytest.raises(bl.BaselineError) as err:
        bl.load_wav2vec2("WAV2VEC2_ASR_BASE_960H", None)
    text = str(err.value)
    assert is_user_error(err.value)
    assert str(tmp_path / "torch-home" / "hub" / "checkpoints" / "wav2vec2_fairseq_base_ls960_asr_ls960.pth") in text
    assert "transfer.wav2vec2_weights" in text
    wrong = tmp_path / "wrong.pt"
    torch.save({"not": torch.zeros(1)}, wrong)
    with pytest.raises(bl.BaselineError, match="not a state dict of WAV2VEC2_ASR_BASE_960H"):
        bl.load_wav2vec2("WAV2VEC2_ASR_BASE_960H", str(wrong))
    with pytest.raises(bl.BaselineError, match="not a torchaudio wav2vec2 bundle"):
        bl.load_wav2vec2("NOT_A_BUNDLE", str(wrong))


def test_egemaps_when_opensmile_is_installed(speech):
    if not bl.opensmile_available():
        with pytest.raises(bl.BaselineError, match=r"lssed\[opensmile\]"):
            bl.egemaps_baseline()
        pytest.skip("openSMILE's Python package is not installed (optional extra lssed[opensmile])")
    base = bl.egemaps_baseline()
    v = base.embed(speech["brisk"], SR)
    assert v.shape == (88,) and np.all(np.isfinite(v))
    assert not np.array_equal(v, base.embed(speech["slow"], SR))
