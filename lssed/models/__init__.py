"""The model zoo (docs/paper.md "Models", Table 5): a registry of builders by name.

``create_model(name, num_classes=4, **kw)`` returns an ``nn.Module`` that maps log-mel input
``(B, 1, n_mels, T)`` (any ``n_mels >= 64``, any ``T >= 1``) to ``(B, num_classes)`` logits and
has ``forward_features`` / ``forward_head`` and a classifier named ``fc``; ``model(x, lengths)``
masks the padding of a padded batch (:mod:`lssed.models.masking`). No Ray in here.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Callable, Iterable

from torch import nn

log = logging.getLogger(__name__)

_REGISTRY: dict[str, Callable[..., nn.Module]] = {}


def register_model(fn: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
    """Register a builder under its function name (``pyresnet152`` lives in ``pyresnet.py``)."""
    if fn.__name__ in _REGISTRY:
        raise ValueError(f"model {fn.__name__!r} is registered twice")
    _REGISTRY[fn.__name__] = fn
    return fn


def list_models() -> list[str]:
    """All registered model names, sorted."""
    return sorted(_REGISTRY)


def unknown_models(names: Iterable[str]) -> list[str]:
    """Those of ``names`` that are not registered, in the order given, without repeats."""
    return [n for n in dict.fromkeys(names) if n not in _REGISTRY]


def unknown_model_message(names: Iterable[str]) -> str:
    """The one wording of an unknown-model error (the config check and :func:`create_model`)."""
    names = list(names)
    quoted = ", ".join(repr(n) for n in names)
    return (f"unknown model{'s' if len(names) > 1 else ''} {quoted}; available (`lssed models`): "
            f"{', '.join(list_models())}")


def create_model(name: str, num_classes: int = 4, *, checkpoint: str | Path | None = None,
                 input_norm: str = "none", **kw) -> nn.Module:
    """Build model ``name`` for ``num_classes`` classes; extra keywords go to the family's class.

    ``input_norm``: ``utterance`` standardises each item's log-mel per mel band over its valid
    frames inside the model (:mod:`lssed.models.input_norm`; ``train.input_norm``).

    ``checkpoint``: a state_dict file (see ``lssed models import``) loaded strictly with
    ``weights_only=True``; a mismatch raises :class:`lssed.models.checkpoints.CheckpointMismatch`.
    """
    if name not in _REGISTRY:
        raise ValueError(unknown_model_message([name]))
    if not isinstance(num_classes, int) or isinstance(num_classes, bool) or num_classes < 1:
        raise ValueError(f"num_classes must be a positive integer, got {num_classes!r}")
    model = _REGISTRY[name](num_classes=num_classes, **kw)
    model.model_name = name
    if input_norm != "none":
        from lssed.models.input_norm import apply_input_norm

        apply_input_norm(model, input_norm)
    if checkpoint is not None:
        from lssed.models.checkpoints import load_into

        load_into(model, checkpoint)
    return model


# Importing the family modules registers their builders.
from lssed.models import crnn, mts, pyresnet, resnet, vgg  # noqa: E402,F401

__all__ = ["create_model", "list_models", "register_model", "unknown_model_message", "unknown_models"]
