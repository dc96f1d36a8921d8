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


def sequence_scores(strategy: str, marginals: list[np.ndarray], *, seed: int = 0) -> np.ndarray:
    """Scores of token sequences (text spans) from their token marginals: one (n_tokens, n_tags)
    array per text, rows summing to 1. Returns (n,) floats, higher is "label this sooner".

    A text scores its *least certain token*: the strategy's score of each token's tag distribution
    (least confidence 1 − max marginal, margin, or normalised entropy), maximised over its
    tokens; a text with no tokens scores 0. Why the maximum: one unsure decision (is this word
    the end of an organisation?) is what a label settles, wherever it is. A mean would drown it
    in the sure "O" tokens around it, so that short texts win by being short; a sum (or the
    whole sequence's probability) grows with every token, so that long texts win by being long.
    The maximum grows only with the chance that a text holds an uncertain token at all.
    "random" draws one score per text, as it does for classification.
    """
    if strategy == "random":
        return np.random.default_rng(seed).random(len(marginals))
    lengths = np.asarray([len(m) for m in marginals], dtype=np.int64)
    out = np.zeros(len(marginals), dtype=np.float64)
    if not lengths.sum():
        return out
    rows = np.concatenate([np.asarray(m, dtype=np.float64) for m in marginals if len(m)])
    token_scores = scores(strategy, rows, multi_label=False)
    starts = np.concatenate([[0], np.cumsum(lengths[lengths > 0])[:-1]])
    out[lengths > 0] = np.maximum.reduceat(token_scores, starts)
    return out
