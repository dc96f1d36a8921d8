"""Active-learning scores: how much the model would learn from labeling each item.

Arrays in, arrays out: `proba` is (n, k) class probabilities; every strategy returns an (n,)
float array where higher means "label this sooner". Single-label rows sum to 1; for multi-label
models each class is an independent yes/no, and the scores average over classes.
"""

import numpy as np

STRATEGIES = ("margin", "least_confidence", "entropy", "random")


def _binary(proba: np.ndarray) -> np.ndarray:
    """Multi-label (n, k) sigmoids as (n, k, 2) yes/no distributions."""
    return np.stack([proba, 1.0 - proba], axis=-1)


def least_confidence(proba: np.ndarray, *, multi_label: bool = False) -> np.ndarray:
    """1 − the probability of the most likely answer."""
    if multi_label:
        return (1.0 - _binary(proba).max(axis=-1)).mean(axis=1)
    return 1.0 - proba.max(axis=1)


def margin(proba: np.ndarray, *, multi_label: bool = False) -> np.ndarray:
    """1 − (best − second best): near 1 when the two likeliest answers are neck and neck."""
    if multi_label:
        return 1.0 - np.abs(2.0 * proba - 1.0).mean(axis=1)
    if proba.shape[1] < 2:
        return np.zeros(proba.shape[0])
    top2 = np.sort(proba, axis=1)[:, -2:]
    return 1.0 - (top2[:, 1] - top2[:, 0])


def entropy(proba: np.ndarray, *, multi_label: bool = False) -> np.ndarray:
    """Shannon entropy, normalised to [0, 1] by its maximum."""
    if multi_label:
        p = np.clip(_binary(proba), 1e-12, 1.0)
        return (-(p * np.log(p)).sum(axis=-1) / np.log(2)).mean(axis=1)
    p = np.clip(proba, 1e-12, 1.0)
    k = proba.shape[1]
    return -(p * np.log(p)).sum(axis=1) / np.log(k) if k > 1 else np.zeros(proba.shape[0])


def random_scores(proba: np.ndarray, *, multi_label: bool = False, seed: int = 0) -> np.ndarray:
    """Uniform random order (the baseline every strategy should beat)."""
    return np.random.default_rng(seed).random(proba.shape[0])


def scores(strategy: str, proba: np.ndarray, *, multi_label: bool, seed: int = 0) -> np.ndarray:
    """The named strategy's scores for `proba`; ValueError names the known strategies."""
    proba = np.asarray(proba, dtype=np.float64)
    if strategy == "margin":
        return margin(proba, multi_label=multi_label)
    if strategy == "least_confidence":
        return least_confidence(proba, multi_label=multi_label)
    if strategy == "entropy":
        return entropy(proba, multi_label=multi_label)
    if strategy == "random":
        return random_scores(proba, multi_label=multi_label, seed=seed)
    raise ValueError(f"unknown sampling strategy {strategy!r}; known: {', '.join(STRATEGIES)}")


def proposals(proba: np.ndarray, classes: list[str], *, multi_label: bool, threshold: float = 0.5):
    """The proposed value and its confidence per row: the argmax class, or every class ≥ threshold."""
    proba = np.asarray(proba, dtype=np.float64)
    if multi_label:
        chosen = proba >= threshold
        values = [{"choices": [c for c, on in zip(classes, row, strict=True) if on]} for row in chosen]
        confidence = np.where(chosen, proba, 1.0 - proba).prod(axis=1)
        return values, confidence
    best = proba.argmax(axis=1)
    return [{"choices": [classes[i]]} for i in best], proba[np.arange(len(best)), best]
