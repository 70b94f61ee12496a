"""One predictor over the three kinds of model `lssed predict` runs.

* a finished run (``--run URI``): its validation-selected ``best_model.pt``, class names and
  feature settings from ``results.json``, and the preprocessing settings its feature set
  committed (``_SUCCESS.json``), so the new media go through exactly the chain the shards did;
* an imported checkpoint (``--checkpoint STATE.pt`` from ``lssed models import``): the
  classes and the feature/preprocessing settings the user states (defaults: the paper's);
* an exported file (``--checkpoint model.onnx`` or a TorchScript export): everything from
  its embedded metadata (:mod:`lssed.models.export`).

:func:`resolve_model` runs on the driver and returns a small picklable :class:`ModelSpec`
(no weights); :func:`load_predictor` builds the callable inside each model actor, on its
GPU when it has one. No Ray in here.
"""

from __future__ import annotations

import logging
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Literal, Mapping

import numpy as np

from lssed.errors import InputNotFoundError, UserError
from lssed.workflow import WORKFLOW_SUMMARY

log = logging.getLogger(__name__)

Kind = Literal["run", "checkpoint", "exported"]


@dataclass(frozen=True)
class ModelSpec:
    """What a model actor needs to load the model, and the settings its inputs are made with."""

    kind: Kind
    uri: str  # run directory (local or s3://) or a local file
    model: str
    class_names: tuple[str, ...]
    features: Mapping[str, Any] = field(default_factory=dict)  # the features section, as a dict
    preprocess: Mapping[str, Any] = field(default_factory=dict)  # the preprocess section, as a dict
    model_kwargs: Mapping[str, Any] = field(default_factory=dict)
    settings_from: str = "run"  # "run" / "export": recorded with the model; "user": stated on the command line
    storage: Any = None  # a lssed.storage.Storage for a run on S3 (endpoint, region)
    trust_pickle: bool = False  # a checkpoint that is a whole pickled model (--trust-pickle)
    # The model file's bytes (kinds "checkpoint"/"exported"), read once by the driver so that
    # model actors on any node load them (:func:`with_file_bytes`); None: read ``uri`` itself.
    file_bytes: bytes | None = field(default=None, repr=False, compare=False)

    def chain_config(self) -> Any:
        """A :class:`lssed.config.Config` whose preprocess/features sections are the model's."""
        from lssed.config import config_from_dict

        return config_from_dict({"preprocess": dict(self.preprocess), "features": dict(self.features)})

    def describe(self) -> str:
        return f"{self.model} ({self.kind} {self.uri}; classes {', '.join(self.class_names)})"


def is_exported(path: str | Path) -> bool:
    """An ONNX file, or a TorchScript archive carrying lssed's metadata (a state_dict .pt is a zip too)."""
    from lssed.models.export import TORCHSCRIPT_METADATA_FILE

    path = Path(path)
    if path.suffix.lower() == ".onnx":
        return True
    if not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as zf:
        return any(n.endswith("/extra/" + TORCHSCRIPT_METADATA_FILE) for n in zf.namelist())


def best_workflow_run(root: Any) -> tuple[Any, Any]:
    """``root`` is a workflow's storage (it holds workflow.json): its finished run with the best
    validation UA (the selection the benchmark itself makes; test scores never choose a model)."""
    from lssed.train.outputs import read_results

    names = root.read_json(WORKFLOW_SUMMARY).get("runs") or []
    finished = [(run, res) for run in (root.child("runs", n) for n in names)
                if (res := read_results(run)) is not None and res.val is not None]
    if not finished:
        raise InputNotFoundError(f"--run {root.uri} is a workflow root, but none of its runs {names} has finished; "
                                 "pass a finished run directory (<root>/runs/NAME) or --checkpoint FILE")
    run, results = max(finished, key=lambda pair: pair[1].val.ua)
    log.info("--run %s is a workflow: predicting with its best run by validation UA, %s (val UA %.3f)",
             root.uri, results.run_name, results.val.ua)
    return run, results


def spec_from_run(run_uri: str, storage_cfg: Any = None) -> ModelSpec:
    """A finished run: everything read from the run and its feature set, nothing retyped."""
    from lssed.storage import SUCCESS_MARKER, storage_from_config
    from lssed.train.outputs import BEST_MODEL_FILE, read_results

    run = storage_from_config(storage_cfg, run_uri)
    results = read_results(run)
    if results is None and run.exists(WORKFLOW_SUMMARY):
        run, results = best_workflow_run(run)
    if results is None:
        raise InputNotFoundError(f"--run {run.uri} has no results.json: it is not a finished run (finish it with "
                                 "`lssed train`), or pass a model file with --checkpoint")
    if not run.exists(BEST_MODEL_FILE):
        raise InputNotFoundError(f"--run {run.uri} has no {BEST_MODEL_FILE}: restore it or retrain the run")
    features = run.at(results.features_uri)
    try:
        marker = features.read_json(SUCCESS_MARKER)
    except Exception as exc:  # noqa: BLE001 - moved, deleted or unreachable
        raise InputNotFoundError(
            f"the run's feature set {features.uri} cannot be read ({type(exc).__name__}: {exc}); predict makes "
            "its inputs with that set's preprocessing settings: restore it, or export the model "
            "(`lssed models export`) while it is readable and predict with --checkpoint FILE.onnx") from exc
    preprocess = (marker.get("config") or {}).get("preprocess")
    if not isinstance(preprocess, dict):
        raise UserError(f"{features.join_uri(SUCCESS_MARKER)} records no preprocess settings (an imported feature "
                        "set?): predict with --checkpoint and state the settings with --set preprocess.*")
    return ModelSpec(kind="run", uri=run.uri, model=results.model, class_names=tuple(results.class_names),
                     features=dict(results.feature_config), preprocess=dict(preprocess),
                     model_kwargs=dict(results.train_config.get("model_kwargs") or {}), settings_from="run",
                     storage=run)


def spec_from_file(path: str, cfg: Any, *, class_names: tuple[str, ...] | None = None,
                   model: str | None = None, trust_pickle: bool = False) -> ModelSpec:
    """An exported file (settings from its metadata) or an imported checkpoint (settings from ``cfg``)."""
    import dataclasses

    p = Path(path)
    if "://" in path:
        raise UserError(f"--checkpoint {path}: model files are read from local disk; copy it here first")
    if not p.is_file():
        raise InputNotFoundError(f"--checkpoint {path} does not exist")
    if is_exported(p):
        from lssed.models.export import read_metadata

        if class_names or model:
            raise UserError("--classes and --model describe a checkpoint; an exported file records its own")
        meta = read_metadata(p)
        if not meta.get("preprocess"):
            raise UserError(f"{path} records no preprocess settings; re-export it with `lssed models export`")
        return ModelSpec(kind="exported", uri=str(p.resolve()), model=str(meta.get("model")),
                         class_names=tuple(meta["class_names"]), features=dict(meta["features"]),
                         preprocess=dict(meta["preprocess"]), model_kwargs=dict(meta.get("model_kwargs") or {}),
                         settings_from="export")
    from lssed.models.export import model_from_checkpoint

    # loading it here checks it (tensors against the model, classes against its outputs) before any Ray work
    _, meta = model_from_checkpoint(p, features=dataclasses.asdict(cfg.features),
                                    preprocess=dataclasses.asdict(cfg.preprocess), model=model,
                                    class_names=class_names, model_kwargs=cfg.train.model_kwargs,
                                    trust_pickle=trust_pickle)
    return ModelSpec(kind="checkpoint", uri=str(p.resolve()), model=str(meta["model"]),
                     class_names=tuple(meta["class_names"]), features=dict(meta["features"]),
                     preprocess=dict(meta["preprocess"]), model_kwargs=dict(cfg.train.model_kwargs or {}),
                     settings_from="user", trust_pickle=trust_pickle)


def with_file_bytes(spec: ModelSpec) -> ModelSpec:
    """``spec`` carrying its model file's bytes, for actors on nodes that cannot see the driver's
    disk (runs are read from their storage URI and need nothing)."""
    if spec.kind == "run" or spec.file_bytes is not None:
        return spec
    import dataclasses

    return dataclasses.replace(spec, file_bytes=Path(spec.uri).read_bytes())


class Predictor:
    """``predictor(logmel)``: (B, 1, n_mels, T) float32 -> (B, classes) probabilities (numpy)."""

    def __init__(self, spec: ModelSpec, run: Callable[[np.ndarray], np.ndarray], device: str) -> None:
        self.spec, self._run, self.device = spec, run, device

    @property
    def class_names(self) -> tuple[str, ...]:
        return self.spec.class_names

    def __call__(self, logmel: np.ndarray) -> np.ndarray:
        return np.asarray(self._run(np.ascontiguousarray(logmel, dtype=np.float32)), dtype=np.float32)


def load_predictor(spec: ModelSpec, *, device: str = "cpu", threads: int | None = None) -> Predictor:
    """The model of ``spec`` ready to run (torch models on ``device``; exports on the CPU)."""
    if spec.file_bytes is not None:  # the driver's file, shipped: load a local copy of it
        import dataclasses
        import tempfile

        with tempfile.TemporaryDirectory(prefix="lssed-model-") as tmp:
            local = Path(tmp) / Path(spec.uri).name
            local.write_bytes(spec.file_bytes)
            loaded = load_predictor(dataclasses.replace(spec, uri=str(local), file_bytes=None), device=device,
                                    threads=threads)
        return Predictor(spec, loaded._run, loaded.device)
    if spec.kind == "exported":
        from lssed.models.export import load_exported

        exported = load_exported(spec.uri, threads=threads)
        return Predictor(spec, exported, "cpu")
    import torch

    from lssed.models import create_model

    if spec.kind == "run":
        from lssed.storage import storage_from_config
        from lssed.train.outputs import read_best_state

        net = create_model(spec.model, num_classes=len(spec.class_names), **dict(spec.model_kwargs))
        net.load_state_dict(read_best_state(storage_from_config(spec.storage, spec.uri)))
    else:
        from lssed.models.checkpoints import read_state_dict

        state, _ = read_state_dict(spec.uri, trust_pickle=spec.trust_pickle)
        net = create_model(spec.model, num_classes=len(spec.class_names), **dict(spec.model_kwargs))
        net.load_state_dict(state)
    dev = torch.device(device)
    net = net.eval().to(dev)

    @torch.no_grad()
    def run(x: np.ndarray) -> np.ndarray:
        # fp32 on every device: the same numbers as the run's own evaluation on CPU
        logits = net(torch.from_numpy(x).to(dev))
        return torch.softmax(logits.float(), dim=1).cpu().numpy()

    return Predictor(spec, run, str(dev))
