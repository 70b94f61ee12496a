"""Loading and importing model checkpoints.

Every load uses ``torch.load(..., weights_only=True)``, which only rebuilds tensors and plain
containers. The LSSED authors released their PyResNet weights as whole pickled modules
(``torch.save(model)``); reading those means unpickling, and unpickling can run arbitrary code
from the file, so it happens only when the caller passes ``trust_pickle=True``. Classes whose
module is not importable here (the authors' ``pyconvresnet``) are rebuilt as empty
``nn.Module`` shells that keep the parameters, which is all we need from them.
"""

from __future__ import annotations

import logging
import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import torch
from torch import nn

from lssed.errors import UserError

log = logging.getLogger(__name__)


class CheckpointError(UserError, ValueError):
    """A checkpoint could not be read; the message says why and what to do."""


class CheckpointMismatch(CheckpointError):
    """A state_dict does not fit the model: names the missing, unexpected and mis-shaped tensors."""


@dataclass(frozen=True)
class ImportResult:
    out: Path
    model: str
    num_classes: int
    num_tensors: int
    source_format: str  # "state_dict" or "pickled-module"
    also_fits: tuple[str, ...] = ()  # other zoo models with the same parameters (e.g. mts_resnetN)


class _ForeignModule(nn.Module):
    """Stand-in for a pickled module class whose code is not installed; keeps its tensors."""


class _ShimUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        try:
            return super().find_class(module, name)
        except (ModuleNotFoundError, AttributeError):
            log.info("checkpoint class %s.%s is not installed; loading its tensors into a shell", module, name)
            return type(name, (_ForeignModule,), {"__module__": __name__, "__qualname__": name})


class _ShimPickleModule:
    """What ``torch.load(pickle_module=...)`` needs: ``Unpickler`` and ``load``."""

    Unpickler = _ShimUnpickler
    __name__ = "lssed_shim_pickle"

    @staticmethod
    def load(f: Any, **kw: Any) -> Any:
        return _ShimUnpickler(f, **kw).load()


def _unwrap(obj: Any) -> tuple[dict[str, torch.Tensor], str]:
    """A flat state_dict from a module, a state_dict, or a training checkpoint dict."""
    if isinstance(obj, nn.Module):
        obj, fmt = obj.state_dict(), "pickled-module"
    else:
        fmt = "state_dict"
        if isinstance(obj, Mapping):
            for key in ("state_dict", "model_state_dict", "model", "net"):
                inner = obj.get(key)
                if isinstance(inner, nn.Module):
                    return _unwrap(inner)[0], "pickled-module"
                if isinstance(inner, Mapping) and inner and all(isinstance(v, torch.Tensor) for v in inner.values()):
                    obj = inner
                    break
    if not isinstance(obj, Mapping) or not obj or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise CheckpointError(
            f"the checkpoint holds a {type(obj).__name__}, not a state_dict (a mapping of parameter names "
            "to tensors) or a model; save one with torch.save(model.state_dict(), path)"
        )
    sd = dict(obj)
    # DataParallel / DistributedDataParallel / torch.compile prefixes
    for prefix in ("module.", "_orig_mod."):
        if all(k.startswith(prefix) for k in sd):
            sd = {k[len(prefix):]: v for k, v in sd.items()}
    return sd, fmt


def read_state_dict(path: str | Path, *, trust_pickle: bool = False) -> tuple[dict[str, torch.Tensor], str]:
    """The state_dict in ``path`` and its format (``state_dict`` or ``pickled-module``).

    Reads with ``weights_only=True``; a whole pickled module needs ``trust_pickle=True``.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        if "Unsupported global" not in str(exc):
            raise CheckpointError(f"{path} is not a readable PyTorch checkpoint: {str(exc).splitlines()[0]}") from exc
        if not trust_pickle:
            raise CheckpointError(
                f"{path} is not a plain state_dict: it holds pickled Python objects (probably a whole saved "
                f"model, the format of the LSSED authors' release). Unpickling runs code from the file, so "
                f"it is refused by default; if you trust where the file came from, pass --trust-pickle "
                f"(trust_pickle=True). ({str(exc).splitlines()[0]})"
            ) from exc
        log.warning("unpickling %s with weights_only=False: this runs code from the file", path)
        try:
            obj = torch.load(path, map_location="cpu", weights_only=False, pickle_module=_ShimPickleModule)
        except Exception as exc2:  # noqa: BLE001 - any unpickling failure is a bad file
            raise CheckpointError(f"could not unpickle {path}: {exc2}") from exc2
    except (RuntimeError, EOFError, OSError) as exc:
        raise CheckpointError(f"{path} is not a readable PyTorch checkpoint: {exc}") from exc
    return _unwrap(obj)


def check_state_dict(model: nn.Module, state: Mapping[str, torch.Tensor], *, model_name: str = "") -> None:
    """Raise :class:`CheckpointMismatch` unless ``state`` fits ``model`` exactly (names and shapes)."""
    expected = model.state_dict()
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    shapes = [f"{k}: checkpoint {tuple(state[k].shape)} vs model {tuple(v.shape)}"
              for k, v in expected.items() if k in state and tuple(state[k].shape) != tuple(v.shape)]
    if not (missing or unexpected or shapes):
        return

    def few(items: list[str]) -> str:
        return ", ".join(items[:8]) + (f" ... ({len(items)} in all)" if len(items) > 8 else "")

    parts = []
    if shapes:
        parts.append(f"shape mismatches: {few(shapes)}")
    if missing:
        parts.append(f"missing from the checkpoint: {few(missing)}")
    if unexpected:
        parts.append(f"not in the model: {few(unexpected)}")
    hint = ""
    if any(s.startswith("fc.") for s in shapes):
        hint = " (the classifier differs: pass the checkpoint's number of classes, or replace model.fc after loading)"
    elif missing or unexpected:
        hint = " (a different architecture: choose the model the checkpoint was trained as)"
    name = model_name or getattr(model, "model_name", type(model).__name__)
    raise CheckpointMismatch(f"checkpoint does not fit {name}: " + "; ".join(parts) + hint)


def load_into(model: nn.Module, path: str | Path, *, trust_pickle: bool = False) -> nn.Module:
    """Load ``path`` into ``model`` strictly (after :func:`check_state_dict`)."""
    state, _ = read_state_dict(path, trust_pickle=trust_pickle)
    check_state_dict(model, state)
    model.load_state_dict(state, strict=True)
    return model


def infer_num_classes(state: Mapping[str, torch.Tensor]) -> int:
    w = state.get("fc.weight")
    if w is None or w.dim() != 2:
        raise CheckpointError("the checkpoint has no 'fc.weight' matrix; pass the model and number of classes")
    return int(w.shape[0])


def _family_hint(keys: Mapping[str, Any]) -> tuple[str, ...]:
    """Name prefixes worth trying first (building every 152-layer model is slow)."""
    if any(".conv2.conv2_" in k for k in keys):
        return ("pyresnet",)
    if any(k.startswith("features.") for k in keys):
        return ("vgg",)
    if any(k.startswith("lstm.") for k in keys):
        return ("crnn",)
    return ("resnet", "mts_resnet")


def matching_models(state: Mapping[str, torch.Tensor], num_classes: int) -> list[str]:
    """Registered models whose state_dict names and shapes equal ``state``'s, shortest name first.

    Several can match: ``mts_resnetN`` has exactly ``resnetN``'s parameters (MTS adds none).
    """
    from lssed.models import create_model, list_models

    keys = {k: tuple(v.shape) for k, v in state.items()}
    hint = _family_hint(keys)
    # weight layers, counting a pyramid (conv2.conv2_*) and the shortcut convs as in "ResNet-50"
    depth = 1 + sum(1 for k, s in keys.items() if len(s) == 4 and "downsample" not in k
                    and (".conv2_" not in k or k.endswith("conv2_1.weight")))

    def digits(name: str) -> int:
        tail = "".join(c for c in reversed(name) if c.isdigit())[::-1]
        return int(tail) if tail else 0

    names = list_models()
    ordered = sorted(names, key=lambda n: (not n.startswith(hint), abs(digits(n) - depth), n))
    found: list[str] = []
    for name in ordered:
        if found and (not name.startswith(hint) or digits(name) != digits(found[0])):
            break
        with torch.device("meta"):
            candidate = create_model(name, num_classes=num_classes)
        if {k: tuple(v.shape) for k, v in candidate.state_dict().items()} == keys:
            found.append(name)
    return sorted(found, key=lambda n: (len(n), n))


def infer_model(state: Mapping[str, torch.Tensor], num_classes: int) -> str:
    """The registered model that fits ``state`` (the plainest one when several do)."""
    found = matching_models(state, num_classes)
    if not found:
        raise CheckpointError(
            "no registered model has exactly this checkpoint's parameter names and shapes; pass --model NAME "
            "to see which tensors differ"
        )
    if len(found) > 1:
        log.info("the checkpoint fits %s; taking %s (pass --model to choose)", ", ".join(found), found[0])
    return found[0]


def import_checkpoint(path: str | Path, out: str | Path, *, model: str | None = None,
                      num_classes: int | None = None, trust_pickle: bool = False) -> ImportResult:
    """Read any supported checkpoint, check it against a zoo model, write a plain state_dict.

    The output loads with ``torch.load(out, weights_only=True)`` and
    ``create_model(model, num_classes, checkpoint=out)``.
    """
    from lssed.models import create_model

    state, fmt = read_state_dict(path, trust_pickle=trust_pickle)
    n = num_classes if num_classes is not None else infer_num_classes(state)
    also: tuple[str, ...] = ()
    if model is None:
        found = matching_models(state, n)
        if not found:
            infer_model(state, n)  # raises the explanation
        name, also = found[0], tuple(found[1:])
    else:
        name = model
    with torch.device("meta"):
        target = create_model(name, num_classes=n)
    check_state_dict(target, state, model_name=name)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    torch.save({k: v.detach().cpu().contiguous() for k, v in state.items()}, tmp)
    tmp.replace(out)
    log.info("imported %s (%s, %d classes, %d tensors) -> %s", path, name, n, len(state), out)
    return ImportResult(out=out, model=name, num_classes=n, num_tensors=len(state), source_format=fmt,
                        also_fits=also)
