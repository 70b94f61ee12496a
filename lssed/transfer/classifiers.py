"""Participant-level classifiers and their scores (DAIC-WOZ protocol, docs/transfer.md).

Classification of PHQ-8 binary (``logreg``: logistic regression, ``svm``: linear SVM) and
regression of the PHQ-8 score (``ridge``), each a scikit-learn pipeline of standardisation and
the estimator. Hyperparameters (C, alpha) are chosen by cross-validation over the *training*
participants only, in folds grouped by participant (stratified by label for the
classifiers); the chosen model is refit on all training participants and scored once on dev.
Nothing here ever sees dev data before that single prediction.

Scores on dev: F1 of the positive (depressed) class, macro-F1, UA (unweighted accuracy:
the mean recall of the two classes), MAE and RMSE of the score. The real dev set has only 35
participants, so every score comes with a seeded percentile bootstrap 95% interval over
participants (resampling the dev predictions, not refitting; for the classification scores,
resamples without both classes are left out, as their F1 and UA are undefined).
"""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from lssed.errors import UserError

log = logging.getLogger(__name__)

CLASSIFIERS: tuple[str, ...] = ("logreg", "svm")
REGRESSOR = "ridge"
C_GRID: tuple[float, ...] = (1e-3, 1e-2, 1e-1, 1.0, 10.0)
ALPHA_GRID: tuple[float, ...] = (1e-1, 1.0, 10.0, 100.0, 1000.0)
SCORE_RANGE = (0.0, 24.0)  # PHQ-8: regression predictions are clipped to it


class TransferError(UserError, ValueError):
    """The participants cannot support the protocol (too few, one class only); says what is needed."""


@dataclass(frozen=True)
class Selected:
    """A model chosen by cross-validation on training participants and refit on all of them."""

    estimator: Any
    params: dict[str, float]
    cv_score: float  # mean CV score of the chosen params (macro-F1, or -MAE for ridge)
    cv_folds: int


@dataclass(frozen=True)
class Scores:
    """One (features, classifier) row of Table 6 with its intervals."""

    classifier: str
    metrics: dict[str, float | None]  # f1_depressed, macro_f1, ua | mae, rmse
    ci: dict[str, tuple[float, float]]  # metric -> (low, high) percentile bootstrap 95%
    params: dict[str, float]
    cv_score: float
    cv_folds: int
    n_train: int
    n_dev: int
    predictions: dict[str, list] = field(default_factory=dict)  # participant ids, truth, prediction


def _pipeline(name: str, seed: int) -> Any:
    from sklearn.linear_model import LogisticRegression, Ridge
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.svm import LinearSVC

    if name == "logreg":
        # balanced: DAIC-WOZ train is ~30% depressed; unweighted fits would favour the majority
        # liblinear: exact and ~20x faster than lbfgs on a hundred participants x a thousand features
        est: Any = LogisticRegression(class_weight="balanced", solver="liblinear")
    elif name == "svm":
        est = LinearSVC(class_weight="balanced", max_iter=20000, random_state=seed)
    elif name == REGRESSOR:
        est = Ridge()
    else:
        raise TransferError(f"unknown classifier {name!r}; use one of {[*CLASSIFIERS, REGRESSOR]}")
    return Pipeline([("scale", StandardScaler()), ("est", est)])


def _folds(n_wanted: int, smallest_group: int, what: str) -> int:
    k = min(n_wanted, smallest_group)
    if k < 2:
        raise TransferError(f"cross-validation needs at least 2 training participants {what}, found "
                            f"{smallest_group}: use more participants (or a corpus whose train list has both classes)")
    return k


def select_classifier(name: str, x: np.ndarray, y: np.ndarray, groups: np.ndarray, *, folds: int,
                      seed: int) -> Selected:
    """Choose C by stratified participant-grouped CV (macro-F1) on (x, y) and refit on all of it."""
    from sklearn.model_selection import GridSearchCV, StratifiedGroupKFold

    classes, counts = np.unique(y, return_counts=True)
    if len(classes) < 2:
        raise TransferError(f"the training participants all have label {classes.tolist()}: a classifier "
                            "needs both classes")
    k = _folds(folds, int(counts.min()), "of each class")
    cv = StratifiedGroupKFold(n_splits=k, shuffle=True, random_state=seed)
    # macro-F1 selects: the depressed-class F1 alone swings wildly on folds of a few participants
    search = GridSearchCV(_pipeline(name, seed), {"est__C": list(C_GRID)}, scoring="f1_macro", cv=cv, refit=True)
    with warnings.catch_warnings():  # small folds: ill-defined F1 and slow convergence are expected
        warnings.simplefilter("ignore")
        search.fit(x, y, groups=groups)
    return Selected(search.best_estimator_, {"C": float(search.best_params_["est__C"])},
                    float(search.best_score_), k)


def select_regressor(x: np.ndarray, score: np.ndarray, groups: np.ndarray, *, folds: int) -> Selected:
    """Choose ridge's alpha by participant-grouped CV (MAE) on (x, score) and refit on all of it."""
    from sklearn.model_selection import GridSearchCV, GroupKFold

    k = _folds(folds, len(score), "with a score")
    search = GridSearchCV(_pipeline(REGRESSOR, 0), {"est__alpha": list(ALPHA_GRID)},
                          scoring="neg_mean_absolute_error", cv=GroupKFold(n_splits=k), refit=True)
    search.fit(x, score, groups=groups)
    return Selected(search.best_estimator_, {"alpha": float(search.best_params_["est__alpha"])},
                    float(search.best_score_), k)


# --------------------------------------------------------------------------- metrics (vectorised)


def _binary_counts(y_true: np.ndarray, y_pred: np.ndarray) -> tuple[np.ndarray, ...]:
    """tp, fp, fn, tn along the last axis (works for one vector or a stack of bootstrap draws)."""
    t, p = y_true == 1, y_pred == 1
    return ((t & p).sum(-1), (~t & p).sum(-1), (t & ~p).sum(-1), (~t & ~p).sum(-1))


def _ratio(num: np.ndarray, den: np.ndarray, empty: float) -> np.ndarray:
    num, den = np.asarray(num, dtype=np.float64), np.asarray(den, dtype=np.float64)
    return np.where(den > 0, num / np.where(den > 0, den, 1.0), empty)


def f1_positive(y_true: np.ndarray, y_pred: np.ndarray) -> np.ndarray:
    tp, fp, fn, _ = _binary_counts(y_true, y_pred)
    return _ratio(2 * tp, 2 * tp + fp + fn, 0.0)  # sklearn's zero_division=0


def macro_f1(y_true: np.ndarray, y_pred: np.ndarray) -> np.ndarray:
    tp, fp, fn, tn = _binary_counts(y_true, y_pred)
    return (_ratio(2 * tp, 2 * tp + fp + fn, 0.0) + _ratio(2 * tn, 2 * tn + fn + fp, 0.0)) / 2


def unweighted_accuracy(y_true: np.ndarray, y_pred: np.ndarray) -> np.ndarray:
    """Mean recall over the classes present (sklearn's balanced accuracy)."""
    tp, fp, fn, tn = _binary_counts(y_true, y_pred)
    recalls = np.stack([_ratio(tp, tp + fn, np.nan), _ratio(tn, tn + fp, np.nan)])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.nanmean(recalls, axis=0)


def mae(y_true: np.ndarray, y_pred: np.ndarray) -> np.ndarray:
    return np.abs(y_true - y_pred).mean(-1)


def rmse(y_true: np.ndarray, y_pred: np.ndarray) -> np.ndarray:
    return np.sqrt(((y_true - y_pred) ** 2).mean(-1))


CLASSIFICATION_METRICS: dict[str, Callable[[np.ndarray, np.ndarray], np.ndarray]] = {
    "f1_depressed": f1_positive, "macro_f1": macro_f1, "ua": unweighted_accuracy}
REGRESSION_METRICS: dict[str, Callable[[np.ndarray, np.ndarray], np.ndarray]] = {"mae": mae, "rmse": rmse}


def bootstrap_intervals(y_true: np.ndarray, y_pred: np.ndarray,
                        metrics: dict[str, Callable[[np.ndarray, np.ndarray], np.ndarray]], *, n: int,
                        seed: int, both_classes: bool = False) -> dict[str, tuple[float, float]]:
    """Percentile 95% intervals of each metric over ``n`` participant resamples (seeded).

    ``both_classes``: leave out resamples whose truth has one class only; their F1 and UA are
    undefined (a resample of a few dev participants without a depressed one says nothing about
    the depressed class), and counting them as 0 would drag the interval to 0.
    """
    if n <= 0 or len(y_true) == 0:
        return {}
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(y_true), size=(n, len(y_true)))
    t, p = np.asarray(y_true)[idx], np.asarray(y_pred)[idx]
    if both_classes:
        keep = (t == 1).any(axis=1) & (t != 1).any(axis=1)
        if not keep.any():
            return {}
        t, p = t[keep], p[keep]
    out = {}
    for name, fn in metrics.items():
        values = np.asarray(fn(t, p), dtype=np.float64)
        lo, hi = np.nanpercentile(values, [2.5, 97.5])
        out[name] = (float(lo), float(hi))
    return out


# --------------------------------------------------------------------------- one features set


def score_classifier(name: str, x_train: np.ndarray, y_train: np.ndarray, ids_train: np.ndarray,
                     x_dev: np.ndarray, y_dev: np.ndarray, ids_dev: np.ndarray, *, folds: int, bootstrap: int,
                     seed: int) -> Scores:
    """Select on train (grouped CV), refit, predict dev once, score with intervals."""
    if len(y_dev) == 0:
        raise TransferError("no dev participants with a label to score on: check transfer.dev_split")
    chosen = select_classifier(name, x_train, y_train, ids_train, folds=folds, seed=seed)
    pred = np.asarray(chosen.estimator.predict(x_dev)).astype(np.int64)
    metrics = {k: float(fn(y_dev, pred)) for k, fn in CLASSIFICATION_METRICS.items()}
    metrics.update(mae=None, rmse=None)
    ci = bootstrap_intervals(y_dev, pred, CLASSIFICATION_METRICS, n=bootstrap, seed=seed, both_classes=True)
    return Scores(name, metrics, ci, chosen.params, chosen.cv_score, chosen.cv_folds, len(y_train), len(y_dev),
                  {"participant": [str(i) for i in ids_dev], "true": [int(v) for v in y_dev],
                   "predicted": [int(v) for v in pred]})


def score_regressor(x_train: np.ndarray, s_train: np.ndarray, ids_train: np.ndarray, x_dev: np.ndarray,
                    s_dev: np.ndarray, ids_dev: np.ndarray, *, folds: int, bootstrap: int, seed: int) -> Scores:
    """Ridge regression of the score: select alpha on train (grouped CV), refit, score dev once."""
    if len(s_dev) == 0:
        raise TransferError("no dev participants with a score to regress on")
    chosen = select_regressor(x_train, s_train, ids_train, folds=folds)
    pred = np.clip(np.asarray(chosen.estimator.predict(x_dev), dtype=np.float64), *SCORE_RANGE)
    metrics: dict[str, float | None] = {"f1_depressed": None, "macro_f1": None, "ua": None}
    metrics.update({k: float(fn(s_dev, pred)) for k, fn in REGRESSION_METRICS.items()})
    ci = bootstrap_intervals(s_dev, pred, REGRESSION_METRICS, n=bootstrap, seed=seed)
    return Scores(REGRESSOR, metrics, ci, chosen.params, chosen.cv_score, chosen.cv_folds, len(s_train),
                  len(s_dev), {"participant": [str(i) for i in ids_dev], "true": [float(v) for v in s_dev],
                               "predicted": [round(float(v), 4) for v in pred]})


def score_participants(train: Any, dev: Any, *, classifiers: tuple[str, ...], folds: int, bootstrap: int,
                       seed: int) -> list[Scores]:
    """Every classifier (PHQ-8 binary) and ridge (PHQ-8 score, when scores exist) for one features set.

    ``train`` and ``dev`` are :class:`~lssed.transfer.pooling.Participants`; participants
    without a label (score) are left out of classification (regression).
    """
    ids_tr, ids_dev = np.asarray(train.ids, dtype=object), np.asarray(dev.ids, dtype=object)
    rows = []
    lab_tr, lab_dev = train.labels >= 0, dev.labels >= 0
    for name in classifiers:
        rows.append(score_classifier(name, train.features[lab_tr], train.labels[lab_tr].astype(np.int64),
                                     ids_tr[lab_tr], dev.features[lab_dev], dev.labels[lab_dev].astype(np.int64),
                                     ids_dev[lab_dev], folds=folds, bootstrap=bootstrap, seed=seed))
    sc_tr, sc_dev = ~np.isnan(train.scores), ~np.isnan(dev.scores)
    if sc_tr.sum() >= 2 and sc_dev.any():
        rows.append(score_regressor(train.features[sc_tr], train.scores[sc_tr], ids_tr[sc_tr],
                                    dev.features[sc_dev], dev.scores[sc_dev], ids_dev[sc_dev], folds=folds,
                                    bootstrap=bootstrap, seed=seed))
    else:
        log.info("no PHQ-8 scores on both sides (train %d, dev %d): ridge regression skipped",
                 int(sc_tr.sum()), int(sc_dev.sum()))
    return rows
