"""Dawid–Skene: each item's true class estimated with each annotator weighed by their reliability.

Dawid and Skene (1979): every annotator j has a confusion matrix pi[j, k, l], the chance that
they answer l when the truth is k, and the classes have priors p[k]. EM alternates between the
items' posteriors over the true class (E-step) and the priors and matrices that best explain
the answers under those posteriors (M-step). It starts from the majority vote (each item's
share of votes per class), which also fixes the classes' names: without it, EM could converge
to a relabelling of them.

Smoothing: every cell of a confusion row starts with `smoothing` pseudo-answers, and the
diagonal with `prior_correct` more (a Dirichlet prior: a new annotator is assumed a little
better than chance). So an annotator with a handful of answers gets a matrix close to that
prior instead of a degenerate one of zeros and ones, which would let one answer overrule every
other annotator. The priors get `smoothing` pseudo-items per class.

Single-label only: one true class per item. A multi-label project's labels are not exclusive
classes (each label is its own yes/no question), and the studio keeps majority vote for them.

NumPy arrays in, arrays out: no Django. The work per iteration is linear in the number of
answers (bincounts over them), so a dense items x annotators matrix is never needed; the
`dawid_skene` entry point takes one for convenience, `dawid_skene_answers` the answers as
(item, annotator, class) triples.
"""

from dataclasses import dataclass

import numpy as np

DEFAULT_TOLERANCE = 1e-6
DEFAULT_MAX_ITERATIONS = 200


@dataclass(frozen=True)
class DawidSkene:
    posterior: np.ndarray  # (items, classes): P(true class | answers); rows sum to 1
    priors: np.ndarray  # (classes,)
    confusion: np.ndarray  # (annotators, true class, given class); rows sum to 1
    unseen_confusion: np.ndarray  # (classes, classes): the matrix of an annotator with no answers
    iterations: int
    converged: bool

    @property
    def decision(self) -> np.ndarray:
        """Each item's most probable class (the first in class order on an exact tie)."""
        return self.posterior.argmax(axis=1)


def dawid_skene(
    labels,
    n_classes: int,
    *,
    known=None,
    tolerance: float = DEFAULT_TOLERANCE,
    max_iterations: int = DEFAULT_MAX_ITERATIONS,
    smoothing: float = 1.0,
    prior_correct: float = 1.0,
) -> DawidSkene:
    """Dawid–Skene on `labels`, an integer matrix items x annotators of classes 0..n_classes-1
    with -1 where an annotator did not answer.

    `known` (optional, one class per item, -1 where unknown) holds items whose truth is given
    (gold, reviewed): their posterior is fixed to it, so their answers measure the annotators.
    EM stops when no posterior moved by more than `tolerance`, or after `max_iterations`.
    """
    labels = np.asarray(labels)
    if labels.ndim != 2:
        raise ValueError("labels must be a matrix: items x annotators")
    if labels.size and not np.issubdtype(labels.dtype, np.integer):
        raise ValueError("labels must be integers (classes, -1 for no answer)")
    items, annotators = np.nonzero(labels != -1)
    return dawid_skene_answers(
        items=items,
        annotators=annotators,
        classes=labels[items, annotators],
        n_items=labels.shape[0],
        n_annotators=labels.shape[1],
        n_classes=n_classes,
        known=known,
        tolerance=tolerance,
        max_iterations=max_iterations,
        smoothing=smoothing,
        prior_correct=prior_correct,
    )


def dawid_skene_answers(
    *,
    items,
    annotators,
    classes,
    n_items: int,
    n_annotators: int,
    n_classes: int,
    known=None,
    tolerance: float = DEFAULT_TOLERANCE,
    max_iterations: int = DEFAULT_MAX_ITERATIONS,
    smoothing: float = 1.0,
    prior_correct: float = 1.0,
) -> DawidSkene:
    """Dawid–Skene on answers given as triples: annotator annotators[t] gave item items[t] the
    class classes[t]. At most one answer per (item, annotator); see dawid_skene for the rest."""
    items, annotators, classes = (np.asarray(a, dtype=np.int64).ravel() for a in (items, annotators, classes))
    _check(
        items, annotators, classes, n_items, n_annotators, n_classes, smoothing, prior_correct, max_iterations
    )
    known = _known(known, n_items, n_classes)
    is_known = known >= 0
    unseen = confusion_prior(n_classes=n_classes, smoothing=smoothing, prior_correct=prior_correct)
    answered = np.bincount(items, minlength=n_items) > 0
    informed = answered | is_known

    posterior = _majority(items, classes, n_items, n_classes)
    posterior[is_known] = np.eye(n_classes)[known[is_known]]
    iterations, converged = 0, False
    while iterations < max_iterations:
        iterations += 1
        priors, confusion = _m_step(
            posterior, informed, items, annotators, classes, n_annotators, n_classes, smoothing, prior_correct
        )
        updated = posterior_of(
            items=items,
            annotators=annotators,
            classes=classes,
            n_items=n_items,
            priors=priors,
            confusion=confusion,
        )
        updated[is_known] = posterior[is_known]
        moved = float(np.max(np.abs(updated - posterior), initial=0.0))
        posterior = updated
        if moved <= tolerance:
            converged = True
            break
    else:
        priors, confusion = _m_step(
            posterior, informed, items, annotators, classes, n_annotators, n_classes, smoothing, prior_correct
        )
    # An item nobody answered and whose truth is unknown can only follow the priors.
    posterior[~informed] = priors
    return DawidSkene(
        posterior=posterior,
        priors=priors,
        confusion=confusion,
        unseen_confusion=unseen,
        iterations=iterations,
        converged=converged,
    )


def posterior_of(*, items, annotators, classes, n_items: int, priors, confusion) -> np.ndarray:
    """The E-step: each item's posterior over the true class given its answers (triples as in
    dawid_skene_answers), the class priors and the annotators' confusion matrices. Also how a
    fitted model judges answers it was not fitted on (the recompute's re-read under lock)."""
    items, annotators, classes = (np.asarray(a, dtype=np.int64).ravel() for a in (items, annotators, classes))
    priors, confusion = np.asarray(priors, dtype=float), np.asarray(confusion, dtype=float)
    n_classes = priors.shape[0]
    # Logs, summed per item: a product of many small chances underflows.
    log_confusion = np.log(confusion)
    per_answer = log_confusion[annotators, :, classes]  # (answers, true class)
    log_post = np.tile(np.log(priors), (n_items, 1))
    for k in range(n_classes):
        log_post[:, k] += np.bincount(items, weights=per_answer[:, k], minlength=n_items)
    log_post -= log_post.max(axis=1, keepdims=True)
    post = np.exp(log_post)
    return post / post.sum(axis=1, keepdims=True)


def confusion_prior(*, n_classes: int, smoothing: float = 1.0, prior_correct: float = 1.0) -> np.ndarray:
    """The confusion matrix the smoothing alone gives (an annotator without answers)."""
    counts = np.full((n_classes, n_classes), float(smoothing)) + prior_correct * np.eye(n_classes)
    return counts / counts.sum(axis=1, keepdims=True)


def _check(
    items, annotators, classes, n_items, n_annotators, n_classes, smoothing, prior_correct, max_iterations
):
    if n_classes < 1:
        raise ValueError("n_classes must be at least 1")
    if not (len(items) == len(annotators) == len(classes)):
        raise ValueError("items, annotators and classes must have the same length")
    if max_iterations < 0:
        raise ValueError("max_iterations must not be negative")
    if smoothing <= 0 or prior_correct < 0:
        raise ValueError("smoothing must be positive and prior_correct not negative")
    for name, values, bound in (
        ("items", items, n_items),
        ("annotators", annotators, n_annotators),
        ("classes", classes, n_classes),
    ):
        if len(values) and (values.min() < 0 or values.max() >= bound):
            raise ValueError(f"{name} must lie in 0..{bound - 1}")
    if len(items) and np.unique(items * max(n_annotators, 1) + annotators).size != len(items):
        raise ValueError("an annotator answers each item at most once")


def _known(known, n_items: int, n_classes: int) -> np.ndarray:
    if known is None:
        return np.full(n_items, -1, dtype=np.int64)
    known = np.asarray(known, dtype=np.int64).ravel()
    if known.shape != (n_items,):
        raise ValueError("known must hold one class (or -1) per item")
    if known.size and (known.min() < -1 or known.max() >= n_classes):
        raise ValueError(f"known must lie in -1..{n_classes - 1}")
    return known


def _majority(items, classes, n_items: int, n_classes: int) -> np.ndarray:
    """Each item's share of votes per class (uniform for an item nobody answered)."""
    votes = np.zeros((n_items, n_classes))
    np.add.at(votes, (items, classes), 1.0)
    total = votes.sum(axis=1, keepdims=True)
    return np.divide(votes, total, out=np.full_like(votes, 1.0 / n_classes), where=total > 0)


def _m_step(
    posterior, informed, items, annotators, classes, n_annotators, n_classes, smoothing, prior_correct
):
    """Priors and confusion matrices that best explain the answers under `posterior`, smoothed."""
    priors = posterior[informed].sum(axis=0) + smoothing
    priors /= priors.sum()
    cell = annotators * n_classes + classes  # (annotator, given class) of each answer
    counts = np.empty((n_annotators, n_classes, n_classes))
    for k in range(n_classes):
        counts[:, k, :] = np.bincount(
            cell, weights=posterior[items, k], minlength=n_annotators * n_classes
        ).reshape(n_annotators, n_classes)
    counts += smoothing
    counts += prior_correct * np.eye(n_classes)
    return priors, counts / counts.sum(axis=2, keepdims=True)
