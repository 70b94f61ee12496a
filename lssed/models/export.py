"""Export a trained model to ONNX or TorchScript, with everything needed to use it embedded.

The exported graph maps a log-mel batch ``(B, 1, n_mels, T)`` (batch and time axes dynamic)
to class probabilities ``(B, num_classes)`` (softmax inside). Its metadata (one JSON value per
key: class names in output order, sample rate, every feature and preprocessing setting, the
model, training corpora, metrics) lives in ONNX ``metadata_props`` or in the TorchScript
archive's extra file ``lssed_metadata.json``, so a user without lssed can rebuild the input.

:func:`load_exported` reads either format back into an :class:`ExportedModel` (class names,
feature settings and a numpy callable); ``lssed predict --checkpoint model.onnx`` is meant to
run on it. No Ray in here.
"""

from __future__ import annotations

import json
import logging
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Literal, Mapping

import numpy as np
import torch
from torch import nn

from lssed.errors import UserError

log = logging.getLogger(__name__)

FORMATS = ("onnx", "torchscript")
METADATA_VERSION = 1
TORCHSCRIPT_METADATA_FILE = "lssed_metadata.json"
INPUT_NAME = "logmel"
OUTPUT_NAME = "probabilities"
ONNX_OPSET = 17


class ExportError(UserError):
    """An export could not be made or read; the message says what to do."""


class Probabilities(nn.Module):
    """``model`` followed by a softmax over classes: what the exported graph computes."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self.model(x).float(), dim=1)


class _MelPool(nn.Module):
    """``AdaptiveAvgPool2d((h, 1))`` (PyResNet) or ``((h, None))`` (CRNN) in exportable form.

    The same numbers: the mel axis is fixed by the features, so pooling it to ``h`` rows is a
    constant matrix, and a pool to one frame is the frame mean (which may go first). The ONNX
    exporter cannot size an adaptive pool over a dynamic axis, nor one whose output size does
    not divide its input (PyResNet at 64 mels), while a mean and a matrix product export.
    """

    def __init__(self, height: int, time_mean: bool) -> None:
        super().__init__()
        self.height = height
        self.time_mean = time_mean

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        bands = int(x.shape[2])  # fixed at export: the features' mel bands after the convs
        weights = torch.zeros(self.height, bands, dtype=x.dtype)
        for i in range(self.height):
            lo, hi = (i * bands) // self.height, -((-(i + 1) * bands) // self.height)
            weights[i, lo:hi] = 1.0 / (hi - lo)
        if self.time_mean:
            x = x.mean(dim=3, keepdim=True)
        return torch.matmul(weights.to(x.device), x)


def exportable(model: nn.Module) -> nn.Module:
    """A copy of ``model`` whose mel-axis adaptive pools export with a dynamic time axis."""
    import copy

    model = copy.deepcopy(model)
    for module in list(model.modules()):
        for name, child in list(module.named_children()):
            size = getattr(child, "output_size", None)
            if isinstance(child, nn.AdaptiveAvgPool2d) and isinstance(size, tuple) and size[1] in (1, None) \
                    and size[0] is not None and not (size[0] == 1 and size[1] == 1):
                setattr(module, name, _MelPool(int(size[0]), time_mean=size[1] == 1))
    return model


def min_frames(model: nn.Module) -> int:
    """The fewest frames the exported graph accepts as is.

    The model pads shorter inputs itself, but that branch is decided in Python at export time,
    so the graph keeps only the no-padding path; :class:`ExportedModel` pads to this on the host.
    """
    return max(int(getattr(model, "min_size", (1, 1))[1]), 1)


def _jsonable(value: Any) -> Any:
    return json.loads(json.dumps(value, default=str))


def build_metadata(*, model: str, class_names: tuple[str, ...] | list[str], features: Mapping[str, Any],
                   preprocess: Mapping[str, Any] | None, train_corpora: list[str] | tuple[str, ...] = (),
                   metrics: Mapping[str, Any] | None = None, source: str = "", run_name: str | None = None,
                   model_kwargs: Mapping[str, Any] | None = None, training_data: Mapping[str, Any] | None = None,
                   settings_from: str = "run", min_input_frames: int = 1) -> dict[str, Any]:
    """The metadata embedded in an export (every value JSON-serialisable)."""
    import lssed

    return _jsonable({
        "format_version": METADATA_VERSION,
        "model": model,
        "model_kwargs": dict(model_kwargs or {}),
        "class_names": list(class_names),
        "sample_rate": int(features["sample_rate"]),
        "features": dict(features),
        "preprocess": dict(preprocess) if preprocess is not None else None,
        "settings_from": settings_from,  # "run": read from the run; "user": stated on the command line
        "train_corpora": list(train_corpora),
        "training_data": dict(training_data or {}),
        "metrics": dict(metrics or {}),
        "source": source,
        "run_name": run_name,
        "input": {"name": INPUT_NAME, "shape": ["batch", 1, int(features["n_mels"]), "frames"],
                  "dtype": "float32", "min_frames": int(min_input_frames),
                  "what": "log-mel frames as lssed.features.logmel computes them from the preprocessed waveform"},
        "output": {"name": OUTPUT_NAME, "shape": ["batch", len(class_names)], "what": "softmax probabilities"},
        "lssed_version": lssed.__version__,
        "torch_version": torch.__version__,
    })


def export_model(model: nn.Module, metadata: Mapping[str, Any], fmt: Literal["onnx", "torchscript"],
                 out: str | Path) -> Path:
    """Write ``model`` (logits) as a probability graph with ``metadata`` to ``out``; returns the path."""
    if fmt not in FORMATS:
        raise ExportError(f"unknown export format {fmt!r}; choose one of {', '.join(FORMATS)}")
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    wrapped = Probabilities(exportable(model)).eval().float().cpu()
    n_mels = int(metadata["features"]["n_mels"])
    # the example's sizes must not coincide with any fixed size, or the tracer could bake them in
    example = torch.randn(2, 1, n_mels, max(min_frames(model), 67))
    with warnings.catch_warnings():
        # the tracer warns on every shape test in Python (the models' padding of short inputs):
        # expected, the graph keeps the no-padding path and the metadata's min_frames covers it
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        # the LSTM batch-size caveat (crnn_attn): its states are zeros built from the input's
        # batch, and the parity tests run the export at batch sizes 1-3
        warnings.filterwarnings("ignore", message="Exporting a model to ONNX with a batch_size other than 1")
        try:
            if fmt == "onnx":
                _export_onnx(wrapped, example, metadata, out)
            else:
                _export_torchscript(wrapped, example, metadata, out)
        finally:  # a failed export leaves no half-written file behind
            out.with_name(out.name + ".partial").unlink(missing_ok=True)
    log.info("exported %s (%s) -> %s", metadata.get("model"), fmt, out)
    return out


def _export_onnx(wrapped: nn.Module, example: torch.Tensor, metadata: Mapping[str, Any], out: Path) -> None:
    import onnx

    tmp = out.with_name(out.name + ".partial")
    with torch.no_grad():
        # the TorchScript-based exporter: works offline with torch 2.9 (the dynamo one needs onnxscript)
        torch.onnx.export(wrapped, (example,), str(tmp), input_names=[INPUT_NAME], output_names=[OUTPUT_NAME],
                          dynamic_axes={INPUT_NAME: {0: "batch", 3: "frames"}, OUTPUT_NAME: {0: "batch"}},
                          opset_version=ONNX_OPSET, dynamo=False)
    proto = onnx.load(str(tmp))
    del proto.metadata_props[:]
    for key, value in metadata.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, json.dumps(value)
    proto.producer_name = "lssed"
    onnx.checker.check_model(proto)
    onnx.save(proto, str(tmp))
    tmp.replace(out)  # a half-written file never carries the final name


def _export_torchscript(wrapped: nn.Module, example: torch.Tensor, metadata: Mapping[str, Any], out: Path) -> None:
    with torch.no_grad():
        traced = torch.jit.trace(wrapped, (example,), check_trace=False)
    tmp = out.with_name(out.name + ".partial")
    torch.jit.save(traced, str(tmp), _extra_files={TORCHSCRIPT_METADATA_FILE: json.dumps(metadata)})
    tmp.replace(out)


def detect_format(path: str | Path) -> str:
    """``onnx`` or ``torchscript`` from the file's first bytes (a TorchScript file is a zip)."""
    with open(path, "rb") as fh:
        head = fh.read(4)
    return "torchscript" if head[:2] == b"PK" else "onnx"


def read_metadata(path: str | Path) -> dict[str, Any]:
    """The metadata embedded in an exported file (either format)."""
    path = Path(path)
    if not path.is_file():
        raise ExportError(f"exported model {path} does not exist")
    if detect_format(path) == "torchscript":
        files = {TORCHSCRIPT_METADATA_FILE: ""}
        try:
            torch.jit.load(str(path), map_location="cpu", _extra_files=files)
        except Exception as exc:  # noqa: BLE001 - any load failure means a bad file
            raise ExportError(f"{path} is not a loadable TorchScript file: {exc}") from exc
        raw = files[TORCHSCRIPT_METADATA_FILE]
        text = raw.decode() if isinstance(raw, bytes) else raw
        if not text:
            raise ExportError(f"{path} has no {TORCHSCRIPT_METADATA_FILE}: export it with `lssed models export`")
        return json.loads(text)
    import onnx

    try:
        proto = onnx.load(str(path), load_external_data=False)
    except Exception as exc:  # noqa: BLE001
        raise ExportError(f"{path} is neither a TorchScript nor an ONNX file ({exc})") from exc
    meta = {p.key: json.loads(p.value) for p in proto.metadata_props}
    if "class_names" not in meta:
        raise ExportError(f"{path} carries no lssed metadata: export it with `lssed models export`")
    return meta


@dataclass
class ExportedModel:
    """An exported file ready to run: ``model(logmel)`` -> (B, classes) probabilities (numpy)."""

    path: Path
    format: str
    metadata: dict[str, Any]
    _run: Callable[[np.ndarray], np.ndarray] = field(repr=False)

    @property
    def class_names(self) -> tuple[str, ...]:
        return tuple(self.metadata["class_names"])

    @property
    def features(self) -> dict[str, Any]:
        return dict(self.metadata["features"])

    @property
    def preprocess(self) -> dict[str, Any] | None:
        return self.metadata.get("preprocess")

    def __call__(self, logmel: np.ndarray) -> np.ndarray:
        x = np.asarray(logmel, dtype=np.float32)
        if x.ndim != 4 or x.shape[1] != 1:
            raise ValueError(f"expected log-mel of shape (batch, 1, n_mels, frames), got {x.shape}")
        need = int(self.metadata["input"]["min_frames"]) - x.shape[3]
        if need > 0:  # what the model does itself in torch: zeros past the end
            x = np.pad(x, ((0, 0), (0, 0), (0, 0), (0, need)))
        return self._run(np.require(x, requirements=["C", "W"]))  # torch.from_numpy needs a writable array


def load_exported(path: str | Path, *, threads: int | None = None) -> ExportedModel:
    """An exported file (ONNX through onnxruntime, TorchScript through torch) on the CPU."""
    path = Path(path)
    meta = read_metadata(path)
    fmt = detect_format(path)
    if fmt == "onnx":
        import onnxruntime as ort

        opts = ort.SessionOptions()
        if threads:
            opts.intra_op_num_threads = threads
        session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])

        def run(x: np.ndarray) -> np.ndarray:
            return session.run([OUTPUT_NAME], {INPUT_NAME: x})[0]
    else:
        module = torch.jit.load(str(path), map_location="cpu").eval()

        def run(x: np.ndarray) -> np.ndarray:
            with torch.no_grad():
                return module(torch.from_numpy(x)).numpy()
    return ExportedModel(path=path, format=fmt, metadata=meta, _run=run)


# --------------------------------------------------------------------------- sources


def model_from_run(run_uri: str, storage_cfg: Any = None, *,
                   preprocess: Mapping[str, Any] | None = None) -> tuple[nn.Module, dict[str, Any]]:
    """A finished run's selected model and its metadata (local or s3:// run directory).

    ``preprocess``: the settings to record when the run's feature set (its ``_SUCCESS.json``)
    cannot be read; they are marked as stated by the user.
    """
    from lssed.errors import InputNotFoundError
    from lssed.models import create_model
    from lssed.report.modelcard import run_card_metadata, training_data_summary
    from lssed.storage import storage_from_config
    from lssed.train.outputs import read_best_state, read_results

    run = storage_from_config(storage_cfg, run_uri)
    results = read_results(run)
    if results is None:
        raise InputNotFoundError(f"{run.uri} has no results.json: it is not a finished run (finish it with "
                                 "`lssed train`), or pass a checkpoint file from `lssed models import`")
    summary = training_data_summary(run.at(results.features_uri))
    meta = run_card_metadata(results, summary, source=run.uri)
    if meta["preprocess"] is None and preprocess is not None:
        meta["preprocess"], meta["settings_from"] = dict(preprocess), "user"
    net = create_model(results.model, num_classes=len(results.class_names), **(meta["model_kwargs"] or {}))
    net.load_state_dict(read_best_state(run))
    meta["input"]["min_frames"] = min_frames(net)
    return net.eval(), meta


def model_from_checkpoint(path: str | Path, *, features: Mapping[str, Any], preprocess: Mapping[str, Any],
                          model: str | None = None, class_names: tuple[str, ...] | None = None,
                          model_kwargs: Mapping[str, Any] | None = None,
                          trust_pickle: bool = False) -> tuple[nn.Module, dict[str, Any]]:
    """An imported checkpoint (``lssed models import``) with the settings the user states.

    ``class_names`` default to the benchmark's order, which is the LSSED authors' PyResNet
    order (angry, neutral, happy, sad).
    """
    from lssed.labels import BENCHMARK_CLASSES
    from lssed.models import create_model, unknown_model_message, unknown_models
    from lssed.models.checkpoints import check_state_dict, infer_model, infer_num_classes, read_state_dict

    state, _ = read_state_dict(path, trust_pickle=trust_pickle)
    n = infer_num_classes(state)
    if class_names is None:
        if n > len(BENCHMARK_CLASSES):
            raise ExportError(f"{path} has {n} outputs; name them in order with --class-names a,b,c,...")
        class_names = tuple(BENCHMARK_CLASSES[:n])
    if len(class_names) != n:
        raise ExportError(f"--class-names names {len(class_names)} classes but {path} has {n} outputs")
    if model and unknown_models([model]):
        raise ExportError(f"--model: {unknown_model_message([model])}")
    name = model or infer_model(state, n)
    net = create_model(name, num_classes=n, **dict(model_kwargs or {}))
    check_state_dict(net, state, model_name=name)
    net.load_state_dict(state)
    meta = build_metadata(model=name, class_names=class_names, features=features, preprocess=preprocess,
                          source=str(Path(path).resolve()), model_kwargs=model_kwargs, settings_from="user",
                          min_input_frames=min_frames(net))
    return net.eval(), meta


@dataclass(frozen=True)
class ExportResult:
    out: Path
    card: Path
    metadata: dict[str, Any]


def export_with_card(net: nn.Module, meta: Mapping[str, Any], fmt: Literal["onnx", "torchscript"],
                     out: str | Path) -> ExportResult:
    """:func:`export_model` plus the card beside the file (:func:`lssed.report.modelcard.export_card_path`)."""
    from lssed.report.modelcard import export_card_path, render_card

    embedded = _jsonable(dict(meta))
    path = export_model(net, embedded, fmt, out)
    card = export_card_path(path)
    card.write_text(render_card(meta, artifact=path.name))
    return ExportResult(out=path, card=card, metadata=embedded)
