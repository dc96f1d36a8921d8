"""Metrics of a trained model version, as JSON-safe dicts, and the folds they are measured on.

Pure NumPy: no Django, no ORM, no scikit-learn at import time. A training run scores its
out-of-fold predictions (`fold_assignments`: every labeled item predicted by a model that did not
see it) with `evaluate()`, pooled, and `cross_validation_summary()`, per fold. The layout of the
dict returned by `evaluate()` is what the training run stores and what the pictures in
`training/pictures.py` read.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from annotate.quality.gold import Z_95
from annotate.quality.gold import wilson_interval as _wilson


def wilson_interval(successes: int, n: int, *, z: float = Z_95) -> tuple[float, float]:
    """Wilson score interval for a binomial proportion `successes / n` (95% by default): the
    gold accuracy's (annotate/quality/gold.py), refusing an empty or impossible count.

    Unlike the normal ("Wald") interval it stays inside [0, 1] and does not collapse to a single point
    at 0% or 100%, so it stays honest when the validation side holds only a few dozen items.
    """
    if n <= 0:
        raise ValueError("no validation items")
    if not 0 <= successes <= n:
        raise ValueError(f"successes must lie in [0, {n}], got {successes}")
    return _wilson(successes, n, z=z)


def evaluate(
    y_true: Sequence[Any] | np.ndarray,
    proba: Sequence[Sequence[float]] | np.ndarray,
    *,
    classes: list[str],
    multi_label: bool,
    threshold: float = 0.5,
    n_train: int,
) -> dict[str, Any]:
    """Score `proba` (n_validation x k, columns in `classes` order) against `y_true`.

    `y_true` is, for single-label, one class per item: an index into `classes` or the class name; for
    multi-label, either an n x k 0/1 indicator matrix or one list of class names per item.

    Predictions: single-label takes the argmax; multi-label marks every class with `proba >= threshold`.
    Accuracy is plain accuracy for single-label and subset (exact-match) accuracy for multi-label.
    Precision, recall and F1 of a class that is never predicted (or never true) count as 0.0, as with
    scikit-learn's `zero_division=0`.

    `accuracy_ci` is a 95% Wilson score interval on accuracy. It matters when the validation side is
    small: 45 right out of 50 reads as "90%", but the interval is roughly [0.79, 0.96], so a new version
    must move well past that before the difference means anything.

    Returns (all plain Python ints, floats, strings and lists, safe for `json.dumps(allow_nan=False)`)::

        {
            "classes": [...], "multi_label": bool, "threshold": float | None,
            "n_validation": int, "n_train": int,
            "accuracy": float, "accuracy_ci": [low, high], "ci_method": "wilson",
            "macro_f1": float, "micro_f1": float,          # micro_f1 only when multi_label
            "per_class": {name: {"precision", "recall", "f1", "support"}},
            "confusion_matrix": k x k (rows true, cols predicted)     # single-label
                              | k x [[tn, fp], [fn, tp]]             # multi-label, in `classes` order
        }

    Raises ValueError("no validation items") when there is nothing to score.
    """
    k = len(classes)
    if k == 0:
        raise ValueError("classes must not be empty")
    if len(set(classes)) != k:
        raise ValueError("classes must be unique")
    p = np.asarray(proba, dtype=float)
    if p.size == 0 or len(y_true) == 0:
        raise ValueError("no validation items")
    if p.ndim != 2 or p.shape[1] != k:
        raise ValueError(f"proba must have shape (n, {k}), got {p.shape}")
    n = p.shape[0]
    if len(y_true) != n:
        raise ValueError(f"y_true has {len(y_true)} items but proba has {n} rows")
    if n_train < 0:
        raise ValueError("n_train must not be negative")

    if multi_label:
        truth = _indicator_matrix(y_true, classes)
        pred = p >= threshold
        # Per class, the 2 x 2 counts; the rest follows from tp, fp, fn.
        tp = np.sum(truth & pred, axis=0)
        fp = np.sum(~truth & pred, axis=0)
        fn = np.sum(truth & ~pred, axis=0)
        tn = n - tp - fp - fn
        correct = int(np.sum(np.all(truth == pred, axis=1)))
        confusion: list[Any] = [[[int(tn[j]), int(fp[j])], [int(fn[j]), int(tp[j])]] for j in range(k)]
    else:
        truth_idx = _class_indices(y_true, classes)
        pred_idx = np.argmax(p, axis=1)
        cm = np.zeros((k, k), dtype=np.int64)
        np.add.at(cm, (truth_idx, pred_idx), 1)
        tp = np.diag(cm)
        fp = cm.sum(axis=0) - tp
        fn = cm.sum(axis=1) - tp
        correct = int(tp.sum())
        confusion = cm.tolist()

    precision = _safe_ratio(tp, tp + fp)
    recall = _safe_ratio(tp, tp + fn)
    f1 = _safe_ratio(2 * tp, 2 * tp + fp + fn)
    support = tp + fn

    low, high = wilson_interval(correct, n)
    result: dict[str, Any] = {
        "classes": list(classes),
        "multi_label": bool(multi_label),
        "threshold": float(threshold) if multi_label else None,
        "n_validation": int(n),
        "n_train": int(n_train),
        "accuracy": correct / n,
        "accuracy_ci": [low, high],
        "ci_method": "wilson",
        "macro_f1": float(np.mean(f1)),
    }
    if multi_label:
        tp_all, fp_all, fn_all = int(tp.sum()), int(fp.sum()), int(fn.sum())
        denom = 2 * tp_all + fp_all + fn_all
        result["micro_f1"] = 2 * tp_all / denom if denom else 0.0
    result["per_class"] = {
        name: {
            "precision": float(precision[j]),
            "recall": float(recall[j]),
            "f1": float(f1[j]),
            "support": int(support[j]),
        }
        for j, name in enumerate(classes)
    }
    result["confusion_matrix"] = confusion
    return result


def macro_f1_without_unjudged(metrics: dict[str, Any], names: Iterable[str]) -> None:
    """Take the classes in `names` that no scored row is, nor was predicted as, out of `metrics`'
    macro-F1, in place (scikit-learn's `f1_score(average="macro")` with `labels=None`: the labels
    present). Their per-class rows stay, support 0; a class of `names` some row was predicted as
    keeps its 0.0, as scikit-learn's does."""
    classes, matrix = metrics["classes"], metrics["confusion_matrix"]
    unjudged = set()
    for name in names:
        j = classes.index(name)
        predicted = matrix[j][0][1] + matrix[j][1][1] if metrics["multi_label"] else sum(r[j] for r in matrix)
        if metrics["per_class"][name]["support"] == 0 and predicted == 0:
            unjudged.add(name)
    kept = [row["f1"] for name, row in metrics["per_class"].items() if name not in unjudged]
    if unjudged and kept:
        metrics["macro_f1"] = float(np.mean(kept))


def _safe_ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """num / den elementwise, with 0.0 where den is 0 (scikit-learn's zero_division=0)."""
    num = np.asarray(num, dtype=float)
    den = np.asarray(den, dtype=float)
    out = np.zeros_like(num)
    np.divide(num, den, out=out, where=den > 0)
    return out


def _class_indices(y_true: Sequence[Any] | np.ndarray, classes: list[str]) -> np.ndarray:
    index = {name: i for i, name in enumerate(classes)}
    out = np.empty(len(y_true), dtype=np.int64)
    for row, value in enumerate(y_true):
        if isinstance(value, str):
            if value not in index:
                raise ValueError(f"unknown class {value!r} in y_true")
            out[row] = index[value]
        else:
            i = int(value)
            if not 0 <= i < len(classes):
                raise ValueError(f"class index {i} out of range for {len(classes)} classes")
            out[row] = i
    return out


def _indicator_matrix(y_true: Sequence[Any] | np.ndarray, classes: list[str]) -> np.ndarray:
    k = len(classes)
    if isinstance(y_true, np.ndarray) and y_true.ndim == 2:
        names = False
    else:
        # An indicator row is never empty (k >= 1), so an empty row is an item with no labels.
        names = all(not isinstance(row, str) and all(isinstance(x, str) for x in row) for row in y_true)
    if not names:
        truth = np.asarray(y_true)
        if truth.ndim != 2 or truth.shape[1] != k:
            raise ValueError(f"y_true must have shape (n, {k}), got {truth.shape}")
        if not np.isin(truth, (0, 1)).all():
            raise ValueError("multi-label y_true must hold only 0 and 1")
        return truth.astype(bool)
    index = {name: i for i, name in enumerate(classes)}
    truth = np.zeros((len(y_true), k), dtype=bool)
    for row, labels in enumerate(y_true):
        for name in labels:
            if name not in index:
                raise ValueError(f"unknown class {name!r} in y_true")
            truth[row, index[name]] = True
    return truth


# Cross-validation --------------------------------------------------------------------------

CV_FOLDS = 5


# The fold of an item that trains every fold model and is judged by none (a class's only item).
TRAINED_ONLY = -1


def fold_assignments(Y: np.ndarray, *, multi_label: bool, folds: int = CV_FOLDS, seed: int = 0) -> np.ndarray:
    """The fold (0 … k−1) of each labeled row for k-fold cross-validation, seeded.

    Single-label rows are stratified: every fold holds each class in about its overall share. k is
    `folds`, or the smallest count of a class with 2 items or more when that is lower, so that
    every such class has an item in every fold and each fold's training side still has it. The one
    item of a class with a single item gets fold −1 (TRAINED_ONLY): it is on the training side of
    every fold and held out of none, so every fold model knows the class and the item is never
    judged (training/datasets.py lets such a class train). Multi-label rows are shuffled into
    k = min(`folds`, rows) plain folds: stratifying label sets would need a library of its own,
    and a class missing from a fold's training side is one the backends already handle.

    Raises ValueError when fewer than two folds are possible (no class with 2 items).
    """
    from sklearn.model_selection import KFold, StratifiedKFold

    Y = np.asarray(Y)
    n = len(Y)
    if multi_label:
        k = min(int(folds), n)
        splitter = KFold(n_splits=k, shuffle=True, random_state=seed) if k >= 2 else None
    else:
        counts = np.bincount(Y.astype(np.int64)) if n else np.zeros(0, dtype=np.int64)
        judged = np.flatnonzero(counts[Y.astype(np.int64)] >= 2) if n else np.zeros(0, dtype=np.int64)
        k = min(int(folds), int(counts[counts >= 2].min())) if len(judged) else 0
        splitter = StratifiedKFold(n_splits=k, shuffle=True, random_state=seed) if k >= 2 else None
    if splitter is None:
        raise ValueError("cross-validation needs at least 2 labeled items of a class")
    fold_of = np.full(n, TRAINED_ONLY, dtype=np.int64)
    if multi_label:
        judged = np.arange(n)
    for fold, (_, held_out) in enumerate(
        splitter.split(np.zeros((len(judged), 1)), None if multi_label else Y[judged])
    ):
        fold_of[judged[held_out]] = fold
    return fold_of


def cross_validation_summary(
    y_true: np.ndarray,
    proba: np.ndarray,
    fold_of: np.ndarray,
    *,
    classes: list[str],
    multi_label: bool,
    threshold: float = 0.5,
) -> dict[str, Any]:
    """Accuracy and macro-F1 of each fold's out-of-fold predictions, with their mean and spread.

    `proba` holds, for every row, the probabilities of the fold model that did not see it (as
    `evaluate` reads them); the spread is the sample standard deviation over the folds, so a
    difference between two versions smaller than it means little. JSON-safe::

        {"folds": k, "stratified": bool, "n_per_fold": [...],
         "accuracy": {"mean", "std", "per_fold": [...]}, "macro_f1": {"mean", "std", "per_fold": [...]}}
    """
    y_true, proba, fold_of = np.asarray(y_true), np.asarray(proba, dtype=float), np.asarray(fold_of)
    per_fold: dict[str, list[float]] = {"accuracy": [], "macro_f1": []}
    sizes = []
    for fold in np.unique(fold_of):
        held_out = fold_of == fold
        scored = evaluate(
            y_true[held_out], proba[held_out], classes=classes, multi_label=multi_label,
            threshold=threshold, n_train=int((~held_out).sum()),
        )  # fmt: skip
        sizes.append(int(held_out.sum()))
        for name in per_fold:
            per_fold[name].append(float(scored[name]))
    summary: dict[str, Any] = {"folds": len(sizes), "stratified": not multi_label, "n_per_fold": sizes}
    for name, values in per_fold.items():
        spread = float(np.std(values, ddof=1)) if len(values) > 1 else 0.0
        summary[name] = {"mean": float(np.mean(values)), "std": spread, "per_fold": values}
    return summary


def labels_line(metrics: dict) -> str:
    """What a version's metrics were measured on, in words, for the admin and the train command."""
    cv = metrics.get("cv")
    if cv:
        n, judged = metrics.get("n_train", 0), metrics.get("n_validation", 0)
        if cv.get("trained_only") and judged < n:  # a class's single label is trained on, not judged
            return f"cross-validated on {judged} of {n} labels ({cv.get('folds', '?')} folds)"
        return f"cross-validated on {n} labels ({cv.get('folds', '?')} folds)"
    return f"{metrics.get('n_train', 0)} training / {metrics.get('n_validation', 0)} validation labels"


# Text spans ---------------------------------------------------------------------------------


def evaluate_spans(
    true_tags: Sequence[Sequence[str]],
    pred_tags: Sequence[Sequence[str]],
    *,
    classes: list[str],
    n_train: int,
) -> dict[str, Any]:
    """Entity-level precision, recall and F1 of IOB2 tag sequences (seqeval, strict IOB2 mode).

    An entity counts as found only when its label, first and last token all match (strict mode:
    no partial credit, no I- without its B-). Per label, and micro over all entities (`f1`) and
    macro over the labels (`macro_f1`); a label never predicted or never true scores 0.0, as
    with `zero_division=0`. JSON-safe::

        {"task": "spans", "scheme": "IOB2 strict (seqeval)", "classes": [...],
         "n_validation": texts, "n_train": int, "n_entities": true entities,
         "precision", "recall", "f1", "macro_f1",
         "per_class": {name: {"precision", "recall", "f1", "support"}}}

    Raises ValueError("no validation items") when there is nothing to score.
    """
    from seqeval.metrics import classification_report
    from seqeval.scheme import IOB2

    true_tags, pred_tags = [list(t) for t in true_tags], [list(t) for t in pred_tags]
    if not true_tags:
        raise ValueError("no validation items")
    if len(true_tags) != len(pred_tags) or any(
        len(t) != len(p) for t, p in zip(true_tags, pred_tags, strict=True)
    ):
        raise ValueError("true and predicted tags must have one tag per token of the same texts")
    names = set(classes)
    per_class = {name: {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 0} for name in classes}
    micro = {"precision": 0.0, "recall": 0.0, "f1-score": 0.0}
    has_entities = any(tag != "O" for seq in (*true_tags, *pred_tags) for tag in seq)
    if has_entities:
        report = classification_report(
            true_tags, pred_tags, mode="strict", scheme=IOB2, output_dict=True, zero_division=0
        )
        for name, row in report.items():
            if name in names:
                per_class[name] = {
                    "precision": float(row["precision"]),
                    "recall": float(row["recall"]),
                    "f1": float(row["f1-score"]),
                    "support": int(row["support"]),
                }
        micro = report.get("micro avg", micro)
    return {
        "task": "spans",
        "scheme": "IOB2 strict (seqeval)",
        "classes": list(classes),
        "n_validation": len(true_tags),
        "n_train": int(n_train),
        "n_entities": sum(row["support"] for row in per_class.values()),
        "precision": float(micro["precision"]),
        "recall": float(micro["recall"]),
        "f1": float(micro["f1-score"]),
        "macro_f1": float(np.mean([row["f1"] for row in per_class.values()])) if per_class else 0.0,
        "per_class": per_class,
    }


def span_fold_assignments(n: int, *, folds: int = CV_FOLDS, seed: int = 0) -> np.ndarray:
    """The fold of each of `n` labeled texts: k = min(`folds`, n) shuffled plain folds, seeded.

    Not stratified: a text holds any number of entities of any labels. Raises ValueError below
    two texts (no fold would have a training side).
    """
    from sklearn.model_selection import KFold

    k = min(int(folds), n)
    if k < 2:
        raise ValueError("cross-validation needs at least 2 labeled texts")
    fold_of = np.empty(n, dtype=np.int64)
    splitter = KFold(n_splits=k, shuffle=True, random_state=seed)
    for fold, (_, held_out) in enumerate(splitter.split(np.zeros((n, 1)))):
        fold_of[held_out] = fold
    return fold_of


def span_cross_validation_summary(
    true_tags: Sequence[Sequence[str]],
    pred_tags: Sequence[Sequence[str]],
    fold_of: np.ndarray,
    *,
    classes: list[str],
) -> dict[str, Any]:
    """Entity precision, recall and F1 of each fold's out-of-fold tags, with mean and spread (as
    `cross_validation_summary` does for classification)::

        {"folds": k, "stratified": False, "n_per_fold": [...],
         "f1": {"mean", "std", "per_fold"}, "precision": {...}, "recall": {...}}
    """
    fold_of = np.asarray(fold_of)
    per_fold: dict[str, list[float]] = {"f1": [], "precision": [], "recall": []}
    sizes = []
    for fold in np.unique(fold_of):
        rows = np.flatnonzero(fold_of == fold)
        scored = evaluate_spans(
            [true_tags[r] for r in rows], [pred_tags[r] for r in rows], classes=classes,
            n_train=int(len(fold_of) - len(rows)),
        )  # fmt: skip
        sizes.append(len(rows))
        for name in per_fold:
            per_fold[name].append(float(scored[name]))
    summary: dict[str, Any] = {"folds": len(sizes), "stratified": False, "n_per_fold": sizes}
    for name, values in per_fold.items():
        spread = float(np.std(values, ddof=1)) if len(values) > 1 else 0.0
        summary[name] = {"mean": float(np.mean(values)), "std": spread, "per_fold": values}
    return summary
