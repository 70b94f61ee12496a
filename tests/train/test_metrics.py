"""WA / UA / macro-F1 / per-class recall / confusion against scikit-learn."""

from __future__ import annotations

import math

import numpy as np
import pytest
from sklearn import metrics as skm

from lssed.train.metrics import compute_metrics, confusion_matrix


@pytest.mark.parametrize("seed", range(6))
def test_metrics_match_sklearn(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(5, 200))
    present = rng.choice(4, size=int(rng.integers(2, 5)), replace=False)  # some classes may be missing
    y_true = rng.choice(present, size=n)
    y_pred = np.where(rng.random(n) < 0.6, y_true, rng.integers(0, 4, size=n))
    m = compute_metrics(y_true, y_pred, num_classes=4, loss=0.5)
    assert m.n == n
    assert m.loss == 0.5
    assert m.wa == pytest.approx(skm.accuracy_score(y_true, y_pred))
    assert m.ua == pytest.approx(skm.balanced_accuracy_score(y_true, y_pred))
    assert m.macro_f1 == pytest.approx(skm.f1_score(y_true, y_pred, average="macro", zero_division=0))
    np.testing.assert_array_equal(np.array(m.confusion), skm.confusion_matrix(y_true, y_pred, labels=range(4)))
    recall = skm.recall_score(y_true, y_pred, labels=range(4), average=None, zero_division=0)
    for c in range(4):
        if c in present:
            assert m.per_class_recall[c] == pytest.approx(recall[c])
        else:
            assert math.isnan(m.per_class_recall[c])


def test_perfect_and_constant_predictions():
    y = [0, 1, 2, 3, 1, 1]
    perfect = compute_metrics(y, y)
    assert (perfect.wa, perfect.ua, perfect.macro_f1) == (1.0, 1.0, 1.0)
    neutral = compute_metrics(y, [1] * len(y))  # "over-predicts neutral": WA 0.5 but UA 0.25
    assert neutral.wa == pytest.approx(0.5)
    assert neutral.ua == pytest.approx(0.25)


def test_bad_labels_raise_clear_errors():
    with pytest.raises(ValueError, match="outside 0..3"):
        confusion_matrix([0, 4], [0, 1], 4)
    with pytest.raises(ValueError, match="differ in length"):
        confusion_matrix([0, 1], [0], 4)
    with pytest.raises(ValueError, match="1-D"):
        confusion_matrix([[0, 1]], [[0, 1]], 4)
