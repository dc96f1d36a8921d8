"""Active-learning scores: how much the model would learn from labeling each item.

Arrays in, arrays out: `proba` is (n, k) class probabilities; every strategy returns an (n,)
float array where higher means "label this sooner". Single-label rows sum to 1; for multi-label
models each class is an independent yes/no, and the scores average over classes.

Batch-aware diversity (`margin_diversity`): the most uncertain candidates by margin (the top
`diversity_prefilter_size(batch)`) are clustered on the model's own inputs (k-means, `batch`
clusters, on a 64-d embedding of them), and served cluster by cluster in turn: cluster 1's most
uncertain, cluster 2's, …, then each cluster's second. The order is returned as ranks above every
other item's margin, so several annotators labeling at once do not all get near-duplicates and the
queue's query stays as it is. The cold start (`cold_start_order`) clusters the pool the same way
before any model exists, taking each cluster's most central item in turn. scikit-learn is imported
inside the functions that need it.
"""

from collections.abc import Sequence

import numpy as np

STRATEGIES = ("margin", "margin_diversity", "least_confidence", "entropy", "random")
# Diversity: candidates are the top max(FACTOR × batch, MIN) by margin; they are clustered on an
# embedding of EMBED_DIMS dimensions (a truncated SVD of the model's inputs).
DIVERSITY_PREFILTER_FACTOR = 10
DIVERSITY_PREFILTER_MIN = 2000
EMBED_DIMS = 64
GRAM_MAX_ROWS = 4000
KMEANS_FULL_MAX_ROWS = 20000  # plain k-means up to here (fast and tighter), mini-batch beyond


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


def random_scores(
    proba: np.ndarray, *, multi_label: bool = False, seed: int | Sequence[int] = 0
) -> np.ndarray:
    """Uniform random order (the baseline every strategy should beat)."""
    return np.random.default_rng(seed).random(proba.shape[0])


def scores(
    strategy: str, proba: np.ndarray, *, multi_label: bool, seed: int | Sequence[int] = 0
) -> np.ndarray:
    """The named strategy's scores for `proba`; ValueError names the known strategies."""
    proba = np.asarray(proba, dtype=np.float64)
    # margin_diversity scores each item by margin; its batch step (margin_diversity) needs features.
    if strategy in ("margin", "margin_diversity"):
        return margin(proba, multi_label=multi_label)
    if strategy == "least_confidence":
        return least_confidence(proba, multi_label=multi_label)
    if strategy == "entropy":
        return entropy(proba, multi_label=multi_label)
    if strategy == "random":
        return random_scores(proba, multi_label=multi_label, seed=seed)
    raise ValueError(f"unknown sampling strategy {strategy!r}; known: {', '.join(STRATEGIES)}")


def diversity_prefilter_size(batch: int) -> int:
    """How many of the most uncertain items the diversity step clusters for a batch of `batch`."""
    return max(DIVERSITY_PREFILTER_FACTOR * batch, DIVERSITY_PREFILTER_MIN)


def most_uncertain(uncertainty: np.ndarray, size: int) -> np.ndarray:
    """Indices of the `size` highest scores, highest first (ties: the lower index first)."""
    uncertainty = np.asarray(uncertainty, dtype=np.float64)
    size = min(size, len(uncertainty))
    if size <= 0:
        return np.zeros(0, dtype=np.int64)
    top = np.argpartition(-uncertainty, size - 1)[:size] if size < len(uncertainty) else np.arange(size)
    return top[np.lexsort((top, -uncertainty[top]))]


def embed(features, *, dims: int = EMBED_DIMS, seed: int = 0) -> np.ndarray:
    """Rows of `features` (dense, or a SciPy sparse matrix such as hashed n-grams) as dense unit
    vectors of at most `dims` dimensions: a truncated SVD (dense rows centred first), so that
    k-means on them is cheap and close to cosine k-means on the inputs."""
    import scipy.sparse as sp

    sparse = sp.issparse(features)
    X = features.tocsr().astype(np.float32) if sparse else np.asarray(features, dtype=np.float32)
    X = X.reshape(X.shape[0], -1) if not sparse else X
    if sparse:
        # Only the columns some row uses: hashed n-grams fill a few thousand of 2^19, and the
        # SVD's cost grows with the columns (10 s for 240 texts with all of them).
        X = X[:, np.unique(X.indices)]
    n, d = X.shape
    if not sparse:
        X = X - X.mean(axis=0, keepdims=True)
    if d > dims and n > 2:
        components = min(dims, n - 1, d - 1)
        if sparse and n < d and n <= GRAM_MAX_ROWS:
            # Fewer rows than columns (hashed n-grams): the SVD's left side from the rows' Gram
            # matrix, which costs n² instead of a randomized SVD's passes over d columns
            # (bench/bench_diversity.py, 100,000 items: median 6.3 s before, 2.8 s after, load ~5 on 2 cores).
            # Beyond GRAM_MAX_ROWS the n² matrix costs more than the passes: 10,000 snippets
            # took 20 s this way and 2.6 s with the randomized SVD (the cold start's set).
            from scipy.sparse.linalg import eigsh

            gram = (X @ X.T).toarray().astype(np.float64)
            v0 = np.random.default_rng(seed).random(n)
            values, vectors = eigsh(gram, k=components, which="LA", v0=v0)
            X = vectors * np.sqrt(np.maximum(values, 0.0))
        else:
            from sklearn.decomposition import TruncatedSVD

            X = TruncatedSVD(
                n_components=components, algorithm="randomized", n_iter=4, random_state=seed
            ).fit_transform(X)
    elif sparse:
        X = X.toarray()
    X = np.asarray(X, dtype=np.float64)
    norms = np.linalg.norm(X, axis=1, keepdims=True)
    return X / np.where(norms > 0, norms, 1.0)


def cluster_interleave(
    features, *, clusters: int, priority: np.ndarray | None = None, seed: int = 0
) -> np.ndarray:
    """An order of the rows of `features`: k-means into `clusters` groups, then round robin over
    the groups, each group's rows best first. Best is the highest `priority` (e.g. uncertainty),
    or without one the nearest its centroid (the most typical). Groups take turns in the order of
    their best row. Returns row indices, a permutation of range(n)."""
    n = features.shape[0]
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    X = embed(features, seed=seed)
    k = max(1, min(clusters, n))
    if k == n:
        group = np.arange(n)
        key = np.zeros(n) if priority is None else -np.asarray(priority, dtype=np.float64)
    else:
        from sklearn.cluster import KMeans, MiniBatchKMeans

        if n <= KMEANS_FULL_MAX_ROWS:
            model = KMeans(n_clusters=k, random_state=seed, n_init=3)
        else:
            model = MiniBatchKMeans(n_clusters=k, random_state=seed, n_init=3, batch_size=1024)
        group = model.fit_predict(X)
        if priority is None:
            key = ((X - model.cluster_centers_[group]) ** 2).sum(axis=1)  # nearest the centroid first
        else:
            key = -np.asarray(priority, dtype=np.float64)
    rows = np.lexsort((np.arange(n), key, group))  # by group, then best first within it
    sorted_groups = group[rows]
    starts = np.flatnonzero(np.r_[True, sorted_groups[1:] != sorted_groups[:-1]])
    within = np.arange(n) - np.repeat(starts, np.diff(np.r_[starts, n]))  # 0 for each group's best
    # Groups take turns in the order of their best rows' keys.
    turn = np.empty(int(group.max()) + 1, dtype=np.int64)
    turn[sorted_groups[starts]] = np.argsort(np.argsort(key[rows[starts]], kind="stable"), kind="stable")
    return rows[np.lexsort((turn[sorted_groups], within))]


def rank_scores(order: np.ndarray, n: int, *, floor: float = 1.0) -> np.ndarray:
    """Scores for `n` rows that make a queue serve `order` first: floor + (m − rank) / m for the
    m rows in `order` (all in (floor, floor + 1]), NaN for the others (the caller's to fill)."""
    out = np.full(n, np.nan)
    m = len(order)
    out[order] = floor + (m - np.arange(m)) / max(m, 1)
    return out


def margin_diversity(
    proba: np.ndarray, features, *, batch: int, multi_label: bool = False, seed: int = 0
) -> np.ndarray:
    """Margin, with the most uncertain candidates reordered for diversity (see the module's
    docstring): (n,) scores, the candidates' interleaved ranks in (1, 2] above the others'
    margins in [0, 1]. `features` is (n, d) dense or sparse, rows in `proba`'s order."""
    uncertainty = margin(np.asarray(proba, dtype=np.float64), multi_label=multi_label)
    candidates = most_uncertain(uncertainty, diversity_prefilter_size(batch))
    order = cluster_interleave(
        features[candidates], clusters=batch, priority=uncertainty[candidates], seed=seed
    )
    ranks = rank_scores(candidates[order], len(uncertainty))
    return np.where(np.isnan(ranks), uncertainty, ranks)


def cold_start_order(features, *, clusters: int, seed: int = 0) -> np.ndarray:
    """A diverse seed set before any model exists: every row of `features` (hashed text features
    or pixels) in round-robin order over `clusters` k-means groups, each group's most typical
    row first. Returns row indices."""
    return cluster_interleave(features, clusters=clusters, seed=seed)


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


def sequence_scores(
    strategy: str, marginals: list[np.ndarray], *, seed: int | Sequence[int] = 0
) -> np.ndarray:
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
