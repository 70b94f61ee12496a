"""Participant pooling and the participant-level classifiers on embedding tables with a planted signal."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest
from sklearn.metrics import balanced_accuracy_score, f1_score

from lssed.transfer import classifiers as clf
from lssed.transfer.pooling import PoolingError, embedding_matrix, pool_participants, train_dev


def planted_table(*, train: int = 40, dev: int = 20, dim: int = 16, seed: int = 0, signal: float = 1.5) -> pa.Table:
    """Utterance embeddings whose first dims shift with the participant's PHQ-8 score."""
    rng = np.random.default_rng(seed)
    rows = {k: [] for k in ("utt_id", "corpus", "speaker", "session", "split", "label", "score", "start_s", "end_s",
                            "embedding")}
    for p in range(train + dev):
        pid = str(300 + p)
        depressed = rng.random() < 0.35
        score = float(rng.integers(10, 25) if depressed else rng.integers(0, 10))
        for u in range(int(rng.integers(3, 9))):
            e = rng.standard_normal(dim)
            # a class shift plus a score slope: both the classifiers and ridge have something to find
            e[:3] += signal * ((0.5 if depressed else -0.5) + (score - 12.0) / 12.0)
            for k, v in (("utt_id", f"{pid}_{u}"), ("corpus", "daicwoz"), ("speaker", pid), ("session", pid),
                         ("split", "train" if p < train else "test"),
                         ("label", "depressed" if depressed else "not-depressed"), ("score", score),
                         ("start_s", float(u)), ("end_s", u + 1.0), ("embedding", e.astype(np.float32).tolist())):
                rows[k].append(v)
    return pa.table({**{k: v for k, v in rows.items() if k not in ("score", "embedding")},
                     "score": pa.array(rows["score"], pa.float32()),
                     "embedding": pa.array(rows["embedding"], pa.list_(pa.float32()))})


@pytest.fixture(scope="module")
def planted():
    return planted_table()


def test_pooling_is_mean_std_and_count_per_participant(planted):
    parts = pool_participants(planted)
    emb = embedding_matrix(planted)
    speakers = np.asarray(planted.column("speaker").to_pylist())
    assert len(parts) == len(set(speakers)) == 60
    assert parts.features.shape == (60, 2 * 16 + 1)
    i = parts.ids.index("305")
    mine = emb[speakers == "305"].astype(np.float64)
    np.testing.assert_allclose(parts.features[i, :16], mine.mean(0), rtol=1e-6)
    np.testing.assert_allclose(parts.features[i, 16:32], mine.std(0), rtol=1e-6, atol=1e-7)
    assert parts.features[i, -1] == len(mine) == parts.n_utterances[i]
    labels = dict(zip(planted.column("speaker").to_pylist(), planted.column("label").to_pylist()))
    assert parts.labels[i] == int(labels["305"] == "depressed")
    tr, dev = train_dev(parts, "test")
    assert len(tr) == 40 and len(dev) == 20 and set(tr.ids).isdisjoint(dev.ids)


def test_pooling_rejects_a_participant_with_two_labels(planted):
    labels = planted.column("label").to_pylist()
    first = planted.column("speaker").to_pylist().index("300")
    labels[first] = "not-depressed" if labels[first] == "depressed" else "depressed"
    bad = planted.set_column(planted.column_names.index("label"), "label", pa.array(labels))
    with pytest.raises(PoolingError, match="participant 300 has several label"):
        pool_participants(bad)


def test_metrics_match_sklearn():
    rng = np.random.default_rng(1)
    t, p = rng.integers(0, 2, 30), rng.integers(0, 2, 30)
    assert clf.f1_positive(t, p) == pytest.approx(f1_score(t, p, pos_label=1))
    assert clf.macro_f1(t, p) == pytest.approx(f1_score(t, p, average="macro"))
    assert clf.unweighted_accuracy(t, p) == pytest.approx(balanced_accuracy_score(t, p))


def test_classifiers_find_the_planted_signal_with_intervals(planted):
    tr, dev = train_dev(pool_participants(planted), "test")
    rows = clf.score_participants(tr, dev, classifiers=clf.CLASSIFIERS, folds=5, bootstrap=500, seed=0)
    by = {r.classifier: r for r in rows}
    assert set(by) == {"logreg", "svm", "ridge"}
    for name in ("logreg", "svm"):
        r = by[name]
        assert r.n_train == 40 and r.n_dev == 20 and r.cv_folds == 5
        assert r.metrics["f1_depressed"] >= 0.75 and r.metrics["ua"] >= 0.75, r.metrics
        for metric in ("f1_depressed", "macro_f1", "ua"):
            lo, hi = r.ci[metric]
            assert lo <= r.metrics[metric] <= hi and hi - lo > 0, (name, metric, r.ci)
        assert r.predictions["participant"] == list(dev.ids)
    ridge = by["ridge"]
    # the mean predictor's MAE on dev is the bar the planted signal must clear
    assert ridge.metrics["mae"] < np.abs(dev.scores - tr.scores.mean()).mean() * 0.7
    lo, hi = ridge.ci["mae"]
    assert lo <= ridge.metrics["mae"] <= hi
    # seeded: the same call gives the same intervals
    again = clf.score_participants(tr, dev, classifiers=("logreg",), folds=5, bootstrap=500, seed=0)
    assert again[0].ci == by["logreg"].ci and again[0].params == by["logreg"].params


def test_no_signal_no_skill():
    tr, dev = train_dev(pool_participants(planted_table(signal=0.0, seed=3)), "test")
    rows = clf.score_participants(tr, dev, classifiers=("logreg",), folds=5, bootstrap=200, seed=0)
    lo, hi = rows[0].ci["ua"]
    assert lo < 0.5 + 0.15  # chance stays inside the interval's reach: nothing leaks from dev


def test_selection_never_sees_dev(planted):
    """Model selection reads the training participants only: dev features can be anything."""
    tr, dev = train_dev(pool_participants(planted), "test")
    a = clf.select_classifier("svm", tr.features, tr.labels.astype(int), np.asarray(tr.ids), folds=5, seed=0)
    noise = np.random.default_rng(9).standard_normal(dev.features.shape)
    r1 = clf.score_classifier("svm", tr.features, tr.labels.astype(int), np.asarray(tr.ids), dev.features,
                              dev.labels.astype(int), np.asarray(dev.ids), folds=5, bootstrap=0, seed=0)
    r2 = clf.score_classifier("svm", tr.features, tr.labels.astype(int), np.asarray(tr.ids), noise,
                              dev.labels.astype(int), np.asarray(dev.ids), folds=5, bootstrap=0, seed=0)
    assert r1.params == r2.params == a.params and r1.cv_score == r2.cv_score == a.cv_score
    # and the CV folds split participants, never one participant across train and test folds
    from sklearn.model_selection import StratifiedGroupKFold

    cv = StratifiedGroupKFold(n_splits=5, shuffle=True, random_state=0)
    for fit, held in cv.split(tr.features, tr.labels, groups=np.asarray(tr.ids)):
        assert set(np.asarray(tr.ids)[fit]).isdisjoint(np.asarray(tr.ids)[held])


def test_one_class_in_train_says_what_is_needed(planted):
    tr, dev = train_dev(pool_participants(planted), "test")
    with pytest.raises(clf.TransferError, match="both classes"):
        clf.select_classifier("logreg", tr.features, np.zeros(len(tr), dtype=int), np.asarray(tr.ids), folds=5,
                              seed=0)


def test_intervals_leave_out_resamples_without_both_classes():
    """A perfect classifier on four dev participants: F1 is 1 in every resample that has a depressed one."""
    truth, pred = np.array([1, 0, 0, 1]), np.array([1, 0, 0, 1])
    ci = clf.bootstrap_intervals(truth, pred, clf.CLASSIFICATION_METRICS, n=300, seed=0, both_classes=True)
    assert ci == {"f1_depressed": (1.0, 1.0), "macro_f1": (1.0, 1.0), "ua": (1.0, 1.0)}
    counted = clf.bootstrap_intervals(truth, pred, clf.CLASSIFICATION_METRICS, n=300, seed=0)
    assert counted["f1_depressed"][0] == 0.0  # what counting one-class resamples as F1 0 would report
