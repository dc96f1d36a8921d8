"""How many labels random sampling would have needed for the model's accuracy (an estimate).

The random slice (annotate/queue_order.py) is a uniform random sample of the pool, drawn before
any of it was labeled: its labels alone are what a team labeling at random would have had. A
training run (training/versions.py) fits the project's own backend on nested random subsets of
them (RANDOM_CURVE_FRACTIONS of each fold's training side, every labeled slice item scored once
per subset size by the fold model that did not see it), which gives points (n, accuracy). The
curve acc(n) = a − b·n^(−c) is fitted to them (scipy's curve_fit, 0 < a ≤ 1, b ≥ 0, 0 < c ≤ 2;
a log fit acc = p + q·ln n when that fails), then inverted: the n at which it reaches the
model's accuracy. It is stored in the version's metrics["random_curve"].

The target accuracy is the version's cross-validated one when it is trained; the project page
re-inverts the stored fit at the active version's random-slice estimate once it has one
(`random_curve_for_page`), the unbiased figure. An n more than RANDOM_CURVE_EXTRAPOLATION times
the largest fitted n is reported as beyond the fitted range.

Classification backends (text n-grams, the image CNN). A CNN fit costs what a hundred n-gram
fits cost, so an image project's curve is smaller: IMAGE_CURVE_FOLDS × IMAGE_CURVE_FRACTIONS
fits on at most IMAGE_SLICE_MAX slice labels (a uniform sample of a uniform sample is one
still), about 9 fits of at most 100 images, a third of the run's own five k-fold fits at 500
labels; beyond the largest fitted n the estimate is an extrapolation and says so. Spans: the
span CRF on nested subsets of the slice texts, scored by exact match of each text's spans (the
measure the random slice estimates, training/proposals.py), inverted at the run's cross-validated
exact-match accuracy (metrics["exact_match"]). The fitting part (curve_points,
curve_fit_power, labels_needed) takes arrays and knows no Django; random_curve_measure picks the
slice items out of a run's snapshot.
"""

import math
import time
import warnings
from collections.abc import Callable

import numpy as np

MIN_SLICE_LABELS = 20
RANDOM_CURVE_FRACTIONS = (0.25, 0.5, 0.75, 1.0)
RANDOM_CURVE_EXTRAPOLATION = 3.0
RANDOM_CURVE_FOLDS = 5
IMAGE_CURVE_FRACTIONS = (1 / 3, 2 / 3, 1.0)
IMAGE_CURVE_FOLDS = 3
IMAGE_SLICE_MAX = 150
MIN_RISE = 1e-3  # accuracy gained over the fitted range, below which a fit is flat


# Fitting (arrays in, dicts out) ---------------------------------------------------------------


def nested_fold_points(
    *, fold_of: np.ndarray, fractions, seed: int, right_count: Callable[[np.ndarray, np.ndarray], int]
) -> list[dict]:
    """Points (n, accuracy) of a learning curve over k folds (`fold_of`, one fold per row).

    Within each fold's training side one seeded permutation, whose first `fraction` rows train
    a fresh model (so the subsets are nested); `right_count(rows, held_out)` fits on `rows` and
    counts the held-out rows it gets right. A point's accuracy pools every row's out-of-fold
    outcome at that fraction; its n is the mean training size over the folds.
    """
    k = int(fold_of.max()) + 1
    judged = int((fold_of >= 0).sum())  # a fold of −1 trains in every fold, judged in none
    rng = np.random.default_rng(seed)
    correct = np.zeros(len(fractions), dtype=np.int64)
    sizes = np.zeros(len(fractions), dtype=np.float64)
    for fold in range(k):
        held_out = np.flatnonzero(fold_of == fold)
        seen = rng.permutation(np.flatnonzero(fold_of != fold))
        for j, fraction in enumerate(fractions):
            rows = np.sort(seen[: max(2, round(fraction * len(seen)))])
            correct[j] += int(right_count(rows, held_out))
            sizes[j] += len(rows)
    return [
        {"n": round(float(sizes[j]) / k, 1), "accuracy": round(float(correct[j]) / judged, 4)}
        for j in range(len(fractions))
    ]


def curve_points(
    *,
    make_backend: Callable[[], object],
    X,
    Y: np.ndarray,
    classes: list[str],
    multi_label: bool,
    fractions=RANDOM_CURVE_FRACTIONS,
    folds: int = RANDOM_CURVE_FOLDS,
    seed: int = 0,
    fit_extra: dict | None = None,
) -> list[dict]:
    """Points (n, accuracy) of the backend's learning curve on these labels alone (k-fold,
    nested subsets: nested_fold_points). Exact match of the choices (subset accuracy, proba ≥
    0.5, for multi-label), as the version's own accuracy is. `fit_extra` goes to every fit, as
    the version's own fits get it (the unlabeled items' inputs)."""
    from training.evaluation import fold_assignments

    Y = np.asarray(Y)

    def right_count(rows, held_out):
        model = make_backend()
        model.fit(X[rows], Y[rows], classes=classes, multi_label=multi_label, seed=seed, **(fit_extra or {}))
        proba = model.predict_proba(X[held_out])
        if multi_label:
            return np.all((proba >= 0.5) == (Y[held_out] == 1), axis=1).sum()
        return (proba.argmax(axis=1) == Y[held_out]).sum()

    fold_of = fold_assignments(Y, multi_label=multi_label, folds=folds, seed=seed)
    return nested_fold_points(fold_of=fold_of, fractions=fractions, seed=seed, right_count=right_count)


def span_curve_points(
    *,
    make_backend: Callable[[], object],
    documents: list,
    spans: list[list[dict]],
    classes: list[str],
    fractions=RANDOM_CURVE_FRACTIONS,
    folds: int = RANDOM_CURVE_FOLDS,
    seed: int = 0,
) -> list[dict]:
    """curve_points for the span CRF: a point's accuracy is the share of texts whose predicted
    spans (start, end, label) are exactly the labeled ones."""
    from training.backends.spans import spans_exact_key
    from training.evaluation import span_fold_assignments

    truth = [spans_exact_key(s) for s in spans]

    def right_count(rows, held_out):
        model = make_backend()
        model.fit([documents[i] for i in rows], [spans[i] for i in rows], classes=classes, seed=seed)
        predicted = model.predict_marginals([documents[i] for i in held_out])
        return sum(spans_exact_key(p.spans) == truth[i] for i, p in zip(held_out, predicted, strict=True))

    fold_of = span_fold_assignments(len(documents), folds=folds, seed=seed)
    return nested_fold_points(fold_of=fold_of, fractions=fractions, seed=seed, right_count=right_count)


def _power(n, a, b, c):
    return a - b * np.power(n, -c)


def curve_fit_power(points: list[dict]) -> dict:
    """acc(n) = a − b·n^(−c) fitted to the points (bounded), else acc = p + q·ln n, else none.

    Returns {"kind": "power", "a", "b", "c"}, {"kind": "log", "p", "q"} or
    {"kind": "none", "reason": ...}; a fit that does not rise with n cannot be inverted and is
    "none" too.
    """
    from scipy.optimize import OptimizeWarning, curve_fit

    n = np.asarray([p["n"] for p in points], dtype=np.float64)
    acc = np.asarray([p["accuracy"] for p in points], dtype=np.float64)
    distinct = len(np.unique(n))
    if distinct < 2:
        return {"kind": "none", "reason": "not enough points: fewer than 2 distinct label counts"}
    if distinct >= 3:
        a0 = min(1.0, float(acc.max()) + 0.05)
        c0 = 0.5
        b0 = max(1e-3, (a0 - float(acc[n.argmin()])) * float(n.min()) ** c0)
        try:
            with warnings.catch_warnings():
                # An exactly determined or flat fit has no covariance; only the parameters are used.
                warnings.simplefilter("ignore", OptimizeWarning)
                (a, b, c), _ = curve_fit(
                    _power,
                    n,
                    acc,
                    p0=[a0, b0, c0],
                    bounds=([1e-6, 0.0, 1e-6], [1.0, np.inf, 2.0]),
                    maxfev=20000,
                )
        except (RuntimeError, ValueError):
            pass
        else:
            # A curve that barely rises over the fitted range says nothing of where it would go.
            if _power(n.max(), a, b, c) - _power(n.min(), a, b, c) > MIN_RISE:
                return {"kind": "power", "a": float(a), "b": float(b), "c": float(c)}
    q, p = np.polyfit(np.log(n), acc, 1)
    if q <= 0:
        return {"kind": "none", "reason": "not enough points: accuracy does not rise with the labels"}
    return {"kind": "log", "p": float(p), "q": float(q)}


def labels_needed(fit: dict, target: float) -> float | None:
    """The n at which the fitted curve reaches `target`, or None where it never does (the power
    curve's plateau a at or below the target, or no fit)."""
    if fit.get("kind") == "power":
        a, b, c = fit["a"], fit["b"], fit["c"]
        if target >= a or b <= 0:
            return None
        return float((b / (a - target)) ** (1.0 / c))
    if fit.get("kind") == "log":
        exponent = (target - fit["p"]) / fit["q"]
        return float(math.exp(exponent)) if exponent < 700 else None
    return None


def random_curve_estimate(*, points: list[dict], fit: dict, target: float, target_source: str) -> dict:
    """The inversion at `target`, as the page reads it: status "estimated", "beyond the fitted
    range" (more than RANDOM_CURVE_EXTRAPOLATION × the largest n), "unreachable" or "no fit"."""
    largest = max((p["n"] for p in points), default=0)
    estimate = {"target": round(float(target), 4), "target_source": target_source, "labels_needed": None}
    if fit.get("kind") == "none":
        return {**estimate, "status": "no fit", "reason": fit["reason"]}
    needed = labels_needed(fit, target)
    if needed is None:
        return {
            **estimate,
            "status": "unreachable",
            "reason": "the fitted curve levels off below this accuracy",
        }
    estimate["labels_needed"] = max(1, math.ceil(needed))
    beyond = needed > RANDOM_CURVE_EXTRAPOLATION * largest
    return {**estimate, "status": "beyond the fitted range" if beyond else "estimated"}


# The run's part ----------------------------------------------------------------------------------


def random_curve_measure(
    *,
    project,
    snapshot,
    X,
    Y: np.ndarray,
    make_backend: Callable[[], object],
    target: float,
    seed: int = 0,
    fit_extra: dict | None = None,
) -> dict:
    """metrics["random_curve"] for a run (classification or spans): the slice labels among the snapshot's,
    the points, the fit and the estimate at `target` (the run's cross-validated accuracy), or
    {"status": ..., "reason": ...} saying why there is none.

    The honest set: the snapshot's items whose pick_kind is still "random". An item is marked
    only while nobody has labeled or leased it (`_random_slice_mark`) and redraws give back only
    unlabeled ones, so every labeled slice item was drawn uniformly from the pool before its
    label existed. (Items a lead later made gold are no longer random and drop out.)

    `fit_extra` (classification) goes to every curve fit: the image network's fits then learn
    from the unlabeled images as the version's own did, so the curve is the same learner's.
    """
    from annotate.models import Item, PickKind, Project

    started = time.perf_counter()
    base = {"model_labels": len(snapshot.item_ids), "min_slice_labels": MIN_SLICE_LABELS}
    slice_ids = set(
        Item.objects.filter(project=project, pick_kind=PickKind.RANDOM).values_list("pk", flat=True)
    )
    rows = np.asarray(
        [r for r, item_id in enumerate(snapshot.item_ids) if item_id in slice_ids], dtype=np.int64
    )
    base["slice_labels"] = len(rows)
    if len(rows) < MIN_SLICE_LABELS:
        return {
            **base,
            "status": "too few",
            "reason": f"{len(rows)} labeled random-slice item{'' if len(rows) == 1 else 's'},"
            f" {MIN_SLICE_LABELS} needed",
        }
    spans = project.task_type == Project.TaskType.TEXT_SPANS
    schedule = {}
    if project.is_image:
        schedule = {"fractions": IMAGE_CURVE_FRACTIONS, "folds": IMAGE_CURVE_FOLDS}
        if len(rows) > IMAGE_SLICE_MAX:
            rows = np.sort(np.random.default_rng(seed).choice(rows, IMAGE_SLICE_MAX, replace=False))
        base["slice_labels_used"] = len(rows)
    try:
        if spans:
            points = span_curve_points(
                make_backend=make_backend, documents=[X[r] for r in rows], spans=[Y[r] for r in rows],
                classes=snapshot.classes, seed=seed,
            )  # fmt: skip
        else:
            points = curve_points(
                make_backend=make_backend, X=X[rows], Y=np.asarray(Y)[rows], classes=snapshot.classes,
                multi_label=snapshot.multi_label, seed=seed, fit_extra=fit_extra, **schedule,
            )  # fmt: skip
    except ValueError as exc:  # no class with 2 slice items: no two folds
        return {**base, "status": "too few", "reason": str(exc)}
    fit = curve_fit_power(points)
    estimate = random_curve_estimate(points=points, fit=fit, target=target, target_source="cross-validated")
    return {
        **base,
        "points": points,
        "fit": fit,
        **estimate,
        "seconds": round(time.perf_counter() - started, 3),
    }


def random_curve_for_page(*, metrics: dict, slice_accuracy: float | None) -> dict | None:
    """The version's stored curve, re-inverted at its random-slice estimate when it has one (the
    unbiased target); as stored otherwise. None for a version trained before the curve existed."""
    curve = metrics.get("random_curve")
    if not curve:
        return None
    if slice_accuracy is None or "fit" not in curve:
        return curve
    estimate = random_curve_estimate(
        points=curve["points"], fit=curve["fit"], target=slice_accuracy, target_source="random slice"
    )
    return {**curve, **estimate}
