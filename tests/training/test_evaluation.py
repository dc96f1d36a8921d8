"""evaluate() against scikit-learn on seeded random predictions; no database needed."""

import json
import math

import numpy as np
import pytest
from sklearn.metrics import (
    accuracy_score,
    confusion_matrix,
    f1_score,
    multilabel_confusion_matrix,
    precision_recall_fscore_support,
)

from training.evaluation import evaluate, macro_f1_without_unjudged, wilson_interval

CLASSES = ["cat", "dog", "bird", "fish", "never_true"]


def _single_label_case(seed=0, n=120):
    """Random labels over 5 classes where class 3 ("fish") is never predicted and class 4 never true."""
    rng = np.random.default_rng(seed)
    y_true = rng.integers(0, 4, size=n)
    proba = rng.dirichlet(np.ones(5), size=n)
    proba[:, 3] = 0.0  # never the argmax
    # Make roughly 60% of items right, so the metrics are not degenerate.
    right = rng.random(n) < 0.6
    proba[right & (y_true != 3), y_true[right & (y_true != 3)]] += 1.0
    proba /= proba.sum(axis=1, keepdims=True)
    return y_true, proba


def _multi_label_case(seed=1, n=150):
    """Random indicator labels; column 3 is never predicted, column 4 is never true."""
    rng = np.random.default_rng(seed)
    y_true = (rng.random((n, 5)) < 0.4).astype(int)
    y_true[:, 4] = 0
    proba = np.clip(0.55 * y_true + rng.random((n, 5)) * 0.6, 0.0, 1.0)
    proba[:, 3] = 0.1
    return y_true, proba


def _sklearn_per_class(y_true, y_pred):
    return precision_recall_fscore_support(
        y_true, y_pred, labels=None if y_true.ndim == 2 else range(5), average=None, zero_division=0
    )


def test_macro_f1_without_the_unjudged_classes_is_sklearns_over_the_labels_present():
    y_true, proba = _single_label_case()
    # Class 4 is never true; as predicted, it stays in the macro-F1 with its 0.0, as in scikit-learn.
    result = evaluate(y_true, proba, classes=CLASSES, multi_label=False, n_train=300)
    y_pred = proba.argmax(axis=1)
    assert 4 in set(y_pred)
    macro_f1_without_unjudged(result, ["never_true", "fish"])  # fish is true: it stays too
    assert result["macro_f1"] == pytest.approx(f1_score(y_true, y_pred, average="macro", zero_division=0))
    # Never predicted either: out of it, and its per-class row stays (support 0).
    proba[:, 4] = 0.0
    result = evaluate(y_true, proba, classes=CLASSES, multi_label=False, n_train=300)
    y_pred = proba.argmax(axis=1)
    before = result["macro_f1"]
    macro_f1_without_unjudged(result, ["never_true"])
    assert result["macro_f1"] == pytest.approx(f1_score(y_true, y_pred, average="macro", zero_division=0))
    assert result["macro_f1"] > before and result["per_class"]["never_true"]["support"] == 0
    # Multi-label: scikit-learn counts every column, so the kept columns are named.
    y_true, proba = _multi_label_case()
    proba[:, 4] = 0.0
    result = evaluate(y_true, proba, classes=CLASSES, multi_label=True, n_train=300)
    macro_f1_without_unjudged(result, ["never_true"])
    y_pred = (proba >= 0.5).astype(int)
    assert result["macro_f1"] == pytest.approx(
        f1_score(y_true, y_pred, labels=range(4), average="macro", zero_division=0)
    )


def test_single_label_metrics_match_sklearn():
    y_true, proba = _single_label_case()
    y_pred = proba.argmax(axis=1)

    result = evaluate(y_true, proba, classes=CLASSES, multi_label=False, n_train=300)

    assert result["accuracy"] == pytest.approx(accuracy_score(y_true, y_pred))
    assert result["macro_f1"] == pytest.approx(
        f1_score(y_true, y_pred, labels=range(5), average="macro", zero_division=0)
    )
    assert result["confusion_matrix"] == confusion_matrix(y_true, y_pred, labels=range(5)).tolist()
    precision, recall, f1, support = _sklearn_per_class(y_true, y_pred)
    for j, name in enumerate(CLASSES):
        got = result["per_class"][name]
        assert got["precision"] == pytest.approx(precision[j])
        assert got["recall"] == pytest.approx(recall[j])
        assert got["f1"] == pytest.approx(f1[j])
        assert got["support"] == support[j]
    assert "micro_f1" not in result


def test_single_label_class_never_predicted_and_class_never_true_score_zero():
    y_true, proba = _single_label_case()

    result = evaluate(y_true, proba, classes=CLASSES, multi_label=False, n_train=300)

    fish_support = int(np.sum(y_true == 3))
    assert fish_support > 0
    assert result["per_class"]["fish"] == {
        "precision": 0.0,
        "recall": 0.0,
        "f1": 0.0,
        "support": fish_support,
    }
    assert result["per_class"]["never_true"]["support"] == 0
    assert result["per_class"]["never_true"]["recall"] == 0.0
    assert result["per_class"]["never_true"]["f1"] == 0.0


def test_single_label_accepts_class_names():
    y_true, proba = _single_label_case()
    names = [CLASSES[i] for i in y_true]

    by_name = evaluate(names, proba, classes=CLASSES, multi_label=False, n_train=1)
    by_index = evaluate(y_true, proba, classes=CLASSES, multi_label=False, n_train=1)

    assert by_name == by_index


def test_multi_label_metrics_match_sklearn():
    y_true, proba = _multi_label_case()
    y_pred = (proba >= 0.5).astype(int)

    result = evaluate(y_true, proba, classes=CLASSES, multi_label=True, threshold=0.5, n_train=80)

    assert result["accuracy"] == pytest.approx(accuracy_score(y_true, y_pred))
    assert result["macro_f1"] == pytest.approx(f1_score(y_true, y_pred, average="macro", zero_division=0))
    assert result["micro_f1"] == pytest.approx(f1_score(y_true, y_pred, average="micro", zero_division=0))
    assert result["confusion_matrix"] == multilabel_confusion_matrix(y_true, y_pred).tolist()
    precision, recall, f1, support = _sklearn_per_class(y_true, y_pred)
    for j, name in enumerate(CLASSES):
        got = result["per_class"][name]
        assert got["precision"] == pytest.approx(precision[j])
        assert got["recall"] == pytest.approx(recall[j])
        assert got["f1"] == pytest.approx(f1[j])
        assert got["support"] == support[j]
    assert result["per_class"]["fish"]["precision"] == 0.0
    assert result["per_class"]["never_true"]["support"] == 0


def test_multi_label_threshold_changes_predictions():
    y_true, proba = _multi_label_case()
    y_pred = (proba >= 0.8).astype(int)

    result = evaluate(y_true, proba, classes=CLASSES, multi_label=True, threshold=0.8, n_train=80)

    assert result["threshold"] == 0.8
    assert result["micro_f1"] == pytest.approx(f1_score(y_true, y_pred, average="micro", zero_division=0))


def test_multi_label_accepts_lists_of_class_names():
    y_true, proba = _multi_label_case()
    names = [[CLASSES[j] for j in np.flatnonzero(row)] for row in y_true]

    by_name = evaluate(names, proba, classes=CLASSES, multi_label=True, n_train=80)
    by_matrix = evaluate(y_true, proba, classes=CLASSES, multi_label=True, n_train=80)

    assert by_name == by_matrix


@pytest.mark.parametrize("multi_label", [False, True])
def test_result_is_json_safe_and_counts_items(multi_label):
    y_true, proba = _multi_label_case() if multi_label else _single_label_case()

    result = evaluate(y_true, proba, classes=CLASSES, multi_label=multi_label, n_train=42)

    assert json.loads(json.dumps(result, allow_nan=False)) == result
    assert result["n_validation"] == len(y_true)
    assert result["n_train"] == 42
    assert result["ci_method"] == "wilson"
    low, high = result["accuracy_ci"]
    assert 0.0 <= low <= result["accuracy"] <= high <= 1.0


def test_wilson_interval_matches_hand_computed_45_of_50():
    # p = 0.9, z = 1.96: centre = (0.9 + z²/100) / (1 + z²/50), half = z/(1 + z²/50) * sqrt(0.09/50 + z²/10⁴)
    z2 = 1.959963984540054**2
    denom = 1 + z2 / 50
    centre = (0.9 + z2 / 100) / denom
    half = math.sqrt(z2) / denom * math.sqrt(0.09 / 50 + z2 / 10_000)

    low, high = wilson_interval(45, 50)

    assert (low, high) == pytest.approx((centre - half, centre + half))
    assert (low, high) == pytest.approx((0.7864, 0.9565), abs=1e-4)


def test_wilson_interval_matches_scipy():
    from scipy.stats import binomtest

    ci = binomtest(37, 61).proportion_ci(confidence_level=0.95, method="wilson")

    assert wilson_interval(37, 61) == pytest.approx((ci.low, ci.high))


def test_wilson_interval_shrinks_as_n_grows():
    widths = []
    for n in (10, 50, 200, 1000):
        low, high = wilson_interval(round(0.8 * n), n)
        assert low <= 0.8 <= high
        widths.append(high - low)

    assert widths == sorted(widths, reverse=True)
    assert widths[-1] < widths[0] / 5


def test_wilson_interval_stays_in_unit_range_at_the_ends():
    assert wilson_interval(0, 20)[0] == 0.0
    assert wilson_interval(20, 20)[1] == 1.0
    assert wilson_interval(20, 20)[0] < 1.0


def test_accuracy_ci_in_result_is_the_wilson_interval_of_correct_items():
    y_true, proba = _single_label_case(n=50)

    result = evaluate(y_true, proba, classes=CLASSES, multi_label=False, n_train=10)

    correct = round(result["accuracy"] * 50)
    assert result["accuracy_ci"] == pytest.approx(list(wilson_interval(correct, 50)))


@pytest.mark.parametrize("multi_label", [False, True])
def test_no_validation_items_raises(multi_label):
    empty = np.zeros((0, len(CLASSES)))

    with pytest.raises(ValueError, match="no validation items"):
        evaluate([], empty, classes=CLASSES, multi_label=multi_label, n_train=5)


def test_mismatched_shapes_raise():
    y_true, proba = _single_label_case(n=10)

    with pytest.raises(ValueError, match="shape"):
        evaluate(y_true, proba[:, :3], classes=CLASSES, multi_label=False, n_train=5)
    with pytest.raises(ValueError, match="rows"):
        evaluate(y_true[:5], proba, classes=CLASSES, multi_label=False, n_train=5)
