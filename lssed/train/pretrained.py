"""Starting a run from pretrained weights (``train.init_from``, ``train.freeze``).

``init_from`` is a checkpoint file written by ``lssed models import`` (a plain state_dict) or
a finished run (its directory or URI: the validation-selected ``best_model.pt``). The backbone
loads strictly, every tensor name and shape must match, so a checkpoint of another
architecture fails with the names that differ. The classifier ``fc`` is the exception: when
its shape differs (another class count) the model keeps its freshly initialised ``fc``, which
is how a head is resized for fine-tuning.

``freeze="backbone"`` trains only ``fc``: the other parameters get no gradient and their
BatchNorm layers stay in eval mode (running statistics fixed too), so the backbone's
function is exactly the pretrained one.

Workers call :func:`read_init_state` themselves (a 200 MB state does not travel in the loop
config); the driver calls :func:`check_init_from` first, so a wrong path fails before Ray.
"""

from __future__ import annotations

import io
import logging
from pathlib import Path
from typing import Any, Mapping

import torch
from torch import nn

log = logging.getLogger(__name__)

HEAD = "fc."  # every zoo model's classifier (lssed.models)


def read_init_state(init_from: str, storage: Mapping[str, Any] | None = None) -> dict[str, torch.Tensor]:
    """The state_dict ``init_from`` names: a local checkpoint file, or a run directory / URI.

    ``storage``: ``{"endpoint_url", "region"}`` to reach an ``s3://`` URI.
    """
    from lssed.models.checkpoints import read_state_dict

    local = Path(init_from).expanduser()
    if "://" not in init_from and local.is_file():
        state, _ = read_state_dict(local)
        return state
    from lssed.storage import Storage
    from lssed.train.outputs import BEST_MODEL_FILE, read_best_state

    opts = {k: v for k, v in (storage or {}).items() if k in ("endpoint_url", "region")}
    run = Storage(uri=init_from, **opts)
    if run.exists(BEST_MODEL_FILE):
        return read_best_state(run)
    parent, _, name = init_from.rstrip("/").rpartition("/")
    if parent and name and Storage(uri=parent, **opts).exists(name):  # a checkpoint file in object storage
        data = Storage(uri=parent, **opts).read_bytes(name)
        return torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    raise FileNotFoundError(f"train.init_from={init_from}: neither a checkpoint file (`lssed models import`) nor "
                            f"a finished run (no {BEST_MODEL_FILE}); train that run first or fix the path")


def check_init_from(init_from: str, storage: Mapping[str, Any] | None = None) -> None:
    """Fail before Ray when ``init_from`` names nothing loadable (reads only what it must)."""
    local = Path(init_from).expanduser()
    if "://" not in init_from and local.is_file():
        return
    from lssed.storage import Storage
    from lssed.train.outputs import BEST_MODEL_FILE

    opts = {k: v for k, v in (storage or {}).items() if k in ("endpoint_url", "region")}
    if Storage(uri=init_from, **opts).exists(BEST_MODEL_FILE):
        return
    parent, _, name = init_from.rstrip("/").rpartition("/")
    if "://" in init_from and parent and Storage(uri=parent, **opts).exists(name):
        return
    raise FileNotFoundError(f"train.init_from={init_from}: neither a checkpoint file (`lssed models import`) nor "
                            f"a finished run (no {BEST_MODEL_FILE}); train that run first or fix the path")


def load_pretrained(model: nn.Module, state: Mapping[str, torch.Tensor]) -> list[str]:
    """Load ``state`` into ``model``: the backbone strictly, ``fc`` only where its shape fits.

    Returns the ``fc`` tensors kept at their fresh initialisation (empty when the head loaded).
    Raises :class:`lssed.models.checkpoints.CheckpointMismatch` naming any other difference.
    """
    from lssed.models.checkpoints import check_state_dict

    own = model.state_dict()
    resized = [k for k in own if k.startswith(HEAD) and k in state and tuple(state[k].shape) != tuple(own[k].shape)]
    usable = {k: v for k, v in state.items() if k not in resized}
    usable.update({k: own[k] for k in resized})  # the new head: its fresh weights
    check_state_dict(model, usable)
    model.load_state_dict(usable, strict=True)
    if resized:
        log.info("init_from: classifier resized to %d classes (%s newly initialised)",
                 int(own[HEAD + "weight"].shape[0]), ", ".join(resized))
    return resized


def freeze_backbone(model: nn.Module) -> int:
    """Stop gradients to every parameter outside ``fc``; returns how many parameters still train."""
    trainable = 0
    for name, p in model.named_parameters():
        p.requires_grad_(name.startswith(HEAD))
        trainable += p.numel() if p.requires_grad else 0
    if trainable == 0:
        raise ValueError("train.freeze=backbone left nothing to train: the model has no `fc` classifier")
    return trainable


def backbone_eval(model: nn.Module) -> None:
    """After ``model.train()``: the frozen backbone's BatchNorm/Dropout back in eval mode."""
    for name, m in model.named_modules():
        if name and not (name == HEAD[:-1] or name.startswith(HEAD)):
            m.eval()
