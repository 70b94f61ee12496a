"""Per-utterance input normalisation, inside the model (``train.input_norm``).

``utterance``: each item's log-mel is standardised per mel band over its own valid frames
(mean 0, variance 1 per band; cepstral mean and variance normalisation, CMVN). It removes
what is constant over an utterance: the recording's level and channel colouring and much of
a speaker's timbre, which a model trained on a few voices otherwise learns as a cue
(docs/training.md "Held-out speakers"). Padded frames of a padded training batch
(``model(x, lengths)``) take no part in the statistics and come out as 0, so a padded item
is normalised exactly as the unpadded one alone (:mod:`lssed.models.masking`).

It is a forward pre-hook that :func:`lssed.models.create_model` registers, not a layer: the
model keeps its class, attributes and ``state_dict`` keys (checkpoints load either way, there
is nothing to learn), and whatever calls the model (training, evaluation, predict, the
traced ONNX/TorchScript exports, an embedding read from a layer's forward hook) normalises
alike. Calling ``forward_features`` directly bypasses it, as it bypasses ``forward``.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from lssed.models.masking import zero_past

INPUT_NORMS = ("none", "utterance")
# the std floor (log-mel units): a constant band (digital silence) maps to 0, not to a blow-up
STD_FLOOR = 1e-2


def utterance_norm(x: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
    """``x`` (B, C, n_mels, T) standardised per item and mel band over its first ``lengths[b]``
    frames (all when None); frames past the length are 0. Computed in float32."""
    xf = x.float()
    frames = xf.size(-1)
    if lengths is None:
        mean = xf.mean(dim=-1, keepdim=True)
        var = (xf - mean).pow(2).mean(dim=-1, keepdim=True)
        return ((xf - mean) / var.sqrt().clamp(min=STD_FLOOR)).to(x.dtype)
    valid = torch.as_tensor(lengths).to(xf.device).clamp(min=1, max=frames)
    count = valid.to(xf.dtype).view(-1, *([1] * (xf.dim() - 1)))
    xz = zero_past(xf, valid)
    mean = xz.sum(dim=-1, keepdim=True) / count
    var = zero_past(xf - mean, valid).pow(2).sum(dim=-1, keepdim=True) / count
    return zero_past((xf - mean) / var.sqrt().clamp(min=STD_FLOOR), valid).to(x.dtype)


class _UtteranceNormHook:
    """The forward pre-hook: normalises the input (positional or ``x=``) given ``lengths``."""

    kind = "utterance"

    def __call__(self, module: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]
                 ) -> tuple[tuple[Any, ...], dict[str, Any]]:
        if args:
            x, rest = args[0], args[1:]
        else:
            x, rest = kwargs.pop("x"), ()
        lengths = rest[0] if rest else kwargs.get("lengths")
        return (utterance_norm(x, lengths), *rest), kwargs


def apply_input_norm(model: nn.Module, kind: str) -> nn.Module:
    """Make ``model`` normalise its input (``kind`` in :data:`INPUT_NORMS`); returns it.

    Sets ``model.input_norm`` (what model cards and exports can report). ``none`` leaves the
    model as built.
    """
    if kind not in INPUT_NORMS:
        raise ValueError(f"unknown input_norm {kind!r}; choose one of {', '.join(INPUT_NORMS)}")
    if getattr(model, "input_norm", "none") != "none":
        raise ValueError(f"model already normalises its input ({model.input_norm})")
    model.input_norm = kind
    if kind == "utterance":
        model.register_forward_pre_hook(_UtteranceNormHook(), with_kwargs=True)
    return model
