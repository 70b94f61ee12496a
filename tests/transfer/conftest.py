"""Fixtures of the transfer tests: one file of generated wav2vec2 weights for the session."""

from __future__ import annotations

import pytest
import torch
import torchaudio


@pytest.fixture(scope="session")
def generated_wav2vec2_weights(tmp_path_factory) -> str:
    """WAV2VEC2_ASR_BASE_960H's architecture with seeded random weights, saved as the hub's file is: a
    plain state dict whose CTC output still has fairseq's three unused rows (1, 2, 3), which the
    loader drops as torchaudio does. Such weights make `untrained` rows in Table 6."""
    bundle = torchaudio.pipelines.WAV2VEC2_ASR_BASE_960H
    torch.manual_seed(0)
    state = torchaudio.models.wav2vec2_model(**bundle._params).state_dict()
    for key in ("aux.weight", "aux.bias"):
        state[key] = torch.cat([state[key][:1], torch.full_like(state[key][:3], 7.0), state[key][1:]])
    path = tmp_path_factory.mktemp("wav2vec2") / "untrained-wav2vec2-base.pt"
    torch.save(state, path)
    return str(path)
