"""Pseudo-labels by label spreading (training/backends/pseudo_labels.py), checked on the digits."""

import numpy as np
import pytest
from sklearn.semi_supervised import LabelSpreading

from tests.training.data import digits
from training.backends.pseudo_labels import pseudo_labels, spread_features


def test_spread_features_are_block_means_of_each_channel():
    X = np.arange(2 * 3 * 32 * 32, dtype=np.float32).reshape(2, 3, 32, 32)
    features = spread_features(X)
    assert features.shape == (2, 3 * 8 * 8)
    assert features[1, 64 + 8 + 2] == pytest.approx(X[1, 1, 4:8, 8:12].mean())
    # An edge that does not divide is cropped; an image smaller than 8 a side keeps its pixels.
    assert spread_features(np.zeros((1, 1, 30, 30))).shape == (1, 64)
    assert spread_features(np.ones((1, 1, 4, 4))).shape == (1, 16)


def test_digits_pseudo_labels_are_mostly_right_and_each_class_keeps_its_confident_half():
    X, y = digits(32)
    rng = np.random.default_rng(0)
    labeled = np.concatenate([rng.choice(np.flatnonzero(y == c), 4, replace=False) for c in range(10)])
    unlabeled = np.setdiff1d(np.arange(len(X)), labeled)
    rows, classes = pseudo_labels(X[labeled], y[labeled], X[unlabeled])
    assert len(rows) == len(set(rows.tolist())) and 0.45 * len(unlabeled) <= len(rows) <= 0.55 * len(
        unlabeled
    )
    accuracy = float(np.mean(classes == y[unlabeled][rows]))
    # What scikit-learn's spreading gets on every unlabeled digit: the kept half is better than that.
    spreading = LabelSpreading(kernel="knn", n_neighbors=10, alpha=0.8, max_iter=200)
    targets = np.full(len(X), -1)
    targets[labeled] = y[labeled]
    spreading.fit(spread_features(X), targets)
    everything = float(np.mean(spreading.transduction_[unlabeled] == y[unlabeled]))
    assert accuracy > max(0.95, everything), (accuracy, everything)
    # Every class that has labels takes about half of what spreading gave it.
    given = np.bincount(spreading.transduction_[unlabeled], minlength=10)
    kept = np.bincount(classes, minlength=10)
    assert np.all(np.abs(kept - given / 2) <= 1), (kept, given)


def test_no_pseudo_labels_from_a_single_class_or_for_no_items():
    X, y = digits(16)
    assert [len(a) for a in pseudo_labels(X[:5], np.zeros(5, dtype=int), X[5:50])] == [0, 0]
    assert [len(a) for a in pseudo_labels(X[:20], y[:20], X[:0])] == [0, 0]
