"""A finished run's files in ``<out>/runs/<run name>/``: predictions, selected weights, results.

``results.json`` is written last and marks the run complete (a rerun returns it instead of
training again). ``best_model.pt`` is the validation-UA-selected state_dict (load it with
``torch.load(..., weights_only=True)``).
"""

from __future__ import annotations

import io
import logging
import platform
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from lssed.labels import BENCHMARK_CLASSES
from lssed.report.modelcard import write_run_card
from lssed.storage import Storage, StorageError
from lssed.train.types import LoopOutcome, Predictions
from lssed.train.results import PREDICTIONS_FILE, RESULTS_FILE, RunResults

log = logging.getLogger(__name__)

BEST_MODEL_FILE = "best_model.pt"

PREDICTIONS_SCHEMA = pa.schema(
    [
        ("utt_id", pa.string()),
        ("split", pa.string()),
        ("label", pa.int8()),  # true label4 index
        ("predicted", pa.int8()),
        ("probabilities", pa.list_(pa.float32())),  # softmax, class order = RunResults.class_names
    ]
)


def predictions_table(preds: dict[str, Predictions]) -> pa.Table:
    """All evaluated rows, sorted by (split, utt_id)."""
    rows: list[tuple[str, str, int, int, np.ndarray]] = []
    for p in preds.values():
        predicted = p.predicted
        for i, uid in enumerate(p.utt_ids):
            rows.append((p.splits[i], uid, int(p.labels[i]), int(predicted[i]), p.probabilities[i]))
    rows.sort(key=lambda r: (r[0], r[1]))
    return pa.table(
        {
            "utt_id": pa.array([r[1] for r in rows], pa.string()),
            "split": pa.array([r[0] for r in rows], pa.string()),
            "label": pa.array([r[2] for r in rows], pa.int8()),
            "predicted": pa.array([r[3] for r in rows], pa.int8()),
            "probabilities": pa.array([r[4].tolist() for r in rows], pa.list_(pa.float32())),
        },
        schema=PREDICTIONS_SCHEMA,
    )


def versions() -> dict[str, str]:
    import torch

    import lssed

    out = {"lssed": lssed.__version__, "torch": torch.__version__, "python": platform.python_version()}
    try:
        import ray

        out["ray"] = ray.__version__
    except ImportError:  # pragma: no cover
        pass
    return out


def build_results(outcome: LoopOutcome, config: dict[str, Any]) -> RunResults:
    train = config["train"]
    return RunResults(
        run_name=config["run_name"],
        model=config["model"],
        class_names=tuple(config.get("class_names") or BENCHMARK_CLASSES[: config["num_classes"]]),
        train_corpus="+".join(config.get("train_corpora") or ()),
        features_uri=config["features_uri"],
        features_digest=config["features_digest"],
        feature_config=dict(config["features"]),
        train_config=dict(train),
        seed=int(train["seed"]),
        num_params=outcome.num_params,
        epochs_completed=len(outcome.history),
        best_epoch=outcome.best_epoch,
        train_seconds=float(sum(h.seconds for h in outcome.history)),
        history=outcome.history,
        val=outcome.val,
        evaluations=dict(outcome.evaluations),
        num_workers=int(config.get("num_workers", 1)),
        device=outcome.device,
        tune_trial=config.get("tune_trial"),
        versions=versions(),
        restarts=outcome.restarts,
        features_recomputed=bool(config["recompute"]),
    )


def write_run_outputs(run: Storage, outcome: LoopOutcome, config: dict[str, Any]) -> RunResults:
    """predictions.parquet, best_model.pt, MODEL_CARD.md, then results.json (the completion marker)."""
    import torch

    results = build_results(outcome, config)
    sink = pa.BufferOutputStream()
    pq.write_table(predictions_table(outcome.predictions), sink, compression="zstd")
    run.write_bytes(sink.getvalue().to_pybytes(), PREDICTIONS_FILE)
    buf = io.BytesIO()
    torch.save(outcome.best_state, buf)
    run.write_bytes(buf.getvalue(), BEST_MODEL_FILE)
    write_run_card(run, results, config)  # MODEL_CARD.md (lssed.report.modelcard)
    run.write_json(results.to_dict(), RESULTS_FILE)
    log.info("wrote %s (test UA %.4f, WA %.4f)", run.join_uri(RESULTS_FILE),
             results.evaluations["test"].ua, results.evaluations["test"].wa)
    return results


def read_results(run: Storage) -> RunResults | None:
    """The run's results, or None when it has not finished."""
    if not run.exists(RESULTS_FILE):
        return None
    return RunResults.from_dict(run.read_json(RESULTS_FILE))


def read_predictions(run: Storage) -> pa.Table:
    return pq.read_table(pa.BufferReader(run.read_bytes(PREDICTIONS_FILE)))


def read_best_state(run: Storage) -> dict[str, Any]:
    import torch

    data = run.read_bytes(BEST_MODEL_FILE)
    try:
        return torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except Exception as exc:  # a torn or foreign file: name it, never evaluate garbage
        raise StorageError(f"{run.join_uri(BEST_MODEL_FILE)} does not load as a weights file ({len(data)} bytes: "
                           f"{exc}); retrain the run (`lssed train --force`) or restore the file") from exc
