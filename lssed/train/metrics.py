"""Classification metrics in numpy: WA, UA, macro-F1, per-class recall, confusion matrix.

Paper (LSSED): WA = overall accuracy; UA = mean of the per-class recalls. Conventions where a
class is missing from an evaluation set follow scikit-learn (the tests compare against it):
UA averages the recalls of the classes present in ``y_true`` (``balanced_accuracy_score``);
a missing class's recall is NaN in ``per_class_recall``; macro-F1 averages F1 over the classes
present in ``y_true`` or ``y_pred`` (``f1_score(average="macro")``), 0 where undefined.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from lssed.train.results import Metrics


def _as_labels(values: Sequence[int] | np.ndarray, name: str, num_classes: int) -> np.ndarray:
    arr = np.asarray(values)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be a 1-D sequence of class indices, got shape {arr.shape}")
    if arr.size and (not np.issubdtype(arr.dtype, np.integer)):
        if not np.all(np.equal(np.mod(arr, 1), 0)):
            raise ValueError(f"{name} must hold integer class indices, got dtype {arr.dtype}")
        arr = arr.astype(np.int64)
    arr = arr.astype(np.int64, copy=False)
    if arr.size and (arr.min() < 0 or arr.max() >= num_classes):
        raise ValueError(
            f"{name} holds class indices outside 0..{num_classes - 1} "
            f"(min {arr.min()}, max {arr.max()}); check num_classes or the labels"
        )
    return arr


def confusion_matrix(y_true: Sequence[int] | np.ndarray, y_pred: Sequence[int] | np.ndarray,
                     num_classes: int) -> np.ndarray:
    """``(num_classes, num_classes)`` int64 counts; rows = true class, columns = predicted."""
    t = _as_labels(y_true, "y_true", num_classes)
    p = _as_labels(y_pred, "y_pred", num_classes)
    if t.shape != p.shape:
        raise ValueError(f"y_true and y_pred differ in length ({t.size} vs {p.size})")
    return np.bincount(t * num_classes + p, minlength=num_classes * num_classes).reshape(
        num_classes, num_classes
    )


def per_class_recall(cm: np.ndarray) -> np.ndarray:
    """Recall of each class (NaN for a class with no true samples)."""
    support = cm.sum(axis=1).astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(support > 0, np.diag(cm) / np.where(support > 0, support, 1), np.nan)


def weighted_accuracy(cm: np.ndarray) -> float:
    total = cm.sum()
    return float(np.trace(cm) / total) if total else float("nan")


def unweighted_accuracy(cm: np.ndarray) -> float:
    recalls = per_class_recall(cm)
    present = ~np.isnan(recalls)
    return float(recalls[present].mean()) if present.any() else float("nan")


def macro_f1(cm: np.ndarray) -> float:
    tp = np.diag(cm).astype(np.float64)
    support = cm.sum(axis=1).astype(np.float64)
    predicted = cm.sum(axis=0).astype(np.float64)
    denom = support + predicted  # F1 = 2tp / (2tp + fp + fn) = 2tp / (support + predicted)
    present = denom > 0
    if not present.any():
        return float("nan")
    f1 = np.where(present, 2 * tp / np.where(present, denom, 1), 0.0)
    return float(f1[present].mean())


def compute_metrics(y_true: Sequence[int] | np.ndarray, y_pred: Sequence[int] | np.ndarray,
                    num_classes: int = 4, loss: float | None = None) -> Metrics:
    """All of the benchmark's metrics for one evaluation set."""
    cm = confusion_matrix(y_true, y_pred, num_classes)
    return Metrics(
        n=int(cm.sum()),
        wa=weighted_accuracy(cm),
        ua=unweighted_accuracy(cm),
        macro_f1=macro_f1(cm),
        per_class_recall=tuple(float(x) for x in per_class_recall(cm)),
        confusion=tuple(tuple(int(x) for x in row) for row in cm),
        loss=None if loss is None else float(loss),
    )
