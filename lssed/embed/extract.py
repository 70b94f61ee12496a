"""What one model computes as an utterance's embedding (torch and numpy only; no Ray, no storage).

* default: the input of the classifier ``fc`` (a forward pre-hook on it), i.e. the pooled
  penultimate features every zoo model hands its last layer (after dropout, which eval mode
  makes the identity);
* ``layer="layer3"`` (any name of ``model.named_modules()``): that module's output, averaged
  over every axis but batch and channels (time and frequency of a conv map; time of a
  batch-first RNN's ``(B, T, H)``).

Whole utterances are embedded one at a time through :func:`lssed.train.evaluate.utterance_batches`
(the input path evaluation uses): no padding and no batch neighbours, so an utterance's vector
is bitwise the same whichever rows share its actor call.
"""

from __future__ import annotations

from typing import Any, Iterable

import numpy as np
import pyarrow as pa
import torch
from torch import nn

from lssed.errors import UserError
from lssed.train.types import Utterance

PENULTIMATE = "fc"  # the default: the classifier's input


def pool(output: Any, module: nn.Module | None = None) -> torch.Tensor:
    """A module's output as ``(B, D)``: conv maps ``(B, C, F, T)`` / ``(B, C, T)`` averaged over
    frequency and time, a batch-first RNN's ``(B, T, H)`` over time; tuples: the first item."""
    if isinstance(output, (tuple, list)):
        output = output[0]
    if isinstance(output, nn.utils.rnn.PackedSequence):
        raise UserError("the layer outputs a packed sequence; choose the module after it")
    if not isinstance(output, torch.Tensor) or output.dim() < 2:
        raise UserError(f"the layer's output ({type(output).__name__}) is not a (batch, features, ...) tensor")
    x = output.float()
    if x.dim() == 2:
        return x
    if x.dim() == 3 and isinstance(module, nn.RNNBase) and module.batch_first:
        return x.mean(dim=1)
    return x.flatten(2).mean(dim=2)


def find_layer(model: nn.Module, layer: str | None) -> tuple[str, nn.Module]:
    """(name, module) to hook: ``fc`` by default, else the named module (error lists the choices)."""
    modules = dict(model.named_modules())
    name = layer or PENULTIMATE
    if name in modules and name != "":
        return name, modules[name]
    top = [n for n in modules if n and "." not in n]
    if layer is None:
        raise UserError(f"{type(model).__name__} has no classifier `fc` whose input is the penultimate "
                        f"feature; name a layer with --layer (top-level modules: {', '.join(top)})")
    raise UserError(f"--layer {layer!r} is not a module of {type(model).__name__}; top-level modules: "
                    f"{', '.join(top)} (nested ones as e.g. layer4.1.conv2)")


class Embedder:
    """``embedder(x)`` -> ``(B, D)`` float32 numpy: the hooked module's pooled input or output."""

    def __init__(self, model: nn.Module, layer: str | None = None) -> None:
        self.model = model.eval()
        self.layer = layer
        self.name, self.module = find_layer(model, layer)
        self._got: list[torch.Tensor] = []

    def _pre_hook(self, _module: nn.Module, args: tuple[Any, ...]) -> None:
        self._got.append(pool(args[0]))

    def _hook(self, module: nn.Module, _args: tuple[Any, ...], output: Any) -> None:
        self._got.append(pool(output, module))

    @torch.no_grad()
    def __call__(self, x: torch.Tensor) -> np.ndarray:
        self._got.clear()
        if self.layer is None:
            handle = self.module.register_forward_pre_hook(self._pre_hook)
        else:
            handle = self.module.register_forward_hook(self._hook)
        try:
            self.model(x)
        finally:
            handle.remove()
        if len(self._got) != 1:  # a module used twice in one forward has no single output
            raise UserError(f"module {self.name!r} ran {len(self._got)} times in one forward pass; choose another "
                            "--layer")
        return self._got[0].cpu().numpy().astype(np.float32, copy=False)


def embed_utterances(embedder: Embedder, items: Iterable[Utterance], device: torch.device,
                     features: dict[str, Any] | None = None) -> dict[str, np.ndarray]:
    """utt_id -> embedding of every utterance (``features``: the settings to compute log-mel
    with when the items are waveforms)."""
    from lssed.train.evaluate import utterance_batches

    out: dict[str, np.ndarray] = {}
    for same, x in utterance_batches(items, features, device, group=1):
        vectors = embedder(x)
        out.update((u.utt_id, v) for u, v in zip(same, vectors))
    return out


def table_utterances(table: pa.Table, *, n_mels: int, recompute: bool) -> list[Utterance]:
    """Every row of a shard table as an :class:`Utterance` (label -1: embeddings need none).

    ``recompute``: the ``waveform`` column (int16 PCM) to make log-mel from, else ``logmel``."""
    from lssed.train.data import utterances

    column = "waveform" if recompute else "logmel"
    nulls = table.column(column).null_count
    if nulls:
        raise UserError(f"{nulls} rows have no {column!r}: " + (
            "imported shards hold no waveform, so they cannot be embedded with other STFT settings; embed with "
            "a model trained on these settings" if recompute else "the shards are incomplete; rerun preprocess"))
    return list(utterances(table, n_mels=n_mels, recompute=recompute, labelled=False))
