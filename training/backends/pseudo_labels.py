"""Pseudo-labels for a fit with few labels: label spreading over the labeled and unlabeled items.

Arrays in, arrays out (no Django): the image network calls `pseudo_labels` when it is given the
project's unlabeled items and has fewer than `below` labels per class. Every item, labeled or not,
is a point in a small pixel space (each channel averaged down to 8×8 blocks); scikit-learn's
LabelSpreading (k-nearest-neighbour graph, Zhou et al. 2004) lets the labels flow along that
graph, and each unlabeled item takes the class that reaches it most. The network then trains on
the labels and the pseudo-labels together, so the model people download is still the network;
the pseudo-labels are never stored and never shown as proposals.

Why: with a few labels per class the network alone knows little of what the pool looks like.
On the digits demo (3 splits, 20 k-means seed labels) the network alone scored 0.87–0.90 and
with the pseudo-labels 0.92–0.95; with 200 random labels they no longer help (0.972 → 0.969),
hence the bound (bench/README.md, "Pseudo-labels").
"""

import numpy as np

SPREAD_SIDE = 8  # each channel averaged down to this many blocks a side
NEIGHBOURS = 10
ALPHA = 0.8  # how much of each point's label comes from its neighbours (scikit-learn's alpha)
MAX_ITER = 200
KEEP = 0.5  # of each class's pseudo-labels, the most confident share is kept


def spread_features(X: np.ndarray, side: int = SPREAD_SIDE) -> np.ndarray:
    """Images (n, c, h, w) as (n, c·side·side) block means; an edge that does not divide is cropped."""
    X = np.asarray(X, dtype=np.float32)
    n, c, h, w = X.shape
    fh, fw = max(1, h // side), max(1, w // side)
    sh, sw = min(side, h), min(side, w)
    cropped = X[:, :, : sh * fh, : sw * fw]
    return cropped.reshape(n, c, sh, fh, sw, fw).mean(axis=(3, 5)).reshape(n, -1)


def pseudo_labels(
    labeled: np.ndarray,
    y: np.ndarray,
    unlabeled: np.ndarray,
    *,
    neighbours: int = NEIGHBOURS,
    keep: float = KEEP,
) -> tuple[np.ndarray, np.ndarray]:
    """Spread the class indices `y` of the `labeled` images over the `unlabeled` ones.

    Returns (rows, classes): the positions in `unlabeled` that received a label and the class index
    each took (from the classes in `y`). A point no label reaches (an isolated one) gets none.
    """
    from sklearn.semi_supervised import LabelSpreading

    y = np.asarray(y, dtype=np.int64)
    if len(unlabeled) == 0 or len(np.unique(y)) < 2:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    features = spread_features(np.concatenate([labeled, unlabeled]))
    targets = np.concatenate([y, np.full(len(unlabeled), -1, dtype=np.int64)])
    k = max(1, min(int(neighbours), len(features) - 1))
    model = LabelSpreading(kernel="knn", n_neighbors=k, alpha=ALPHA, max_iter=MAX_ITER)
    with np.errstate(divide="ignore", invalid="ignore"):
        model.fit(features, targets)
    spread = model.label_distributions_[len(labeled) :]
    reached = np.flatnonzero(np.isfinite(spread).all(axis=1) & (np.nan_to_num(spread).sum(axis=1) > 0))
    spread = spread[reached]
    taken, confidence = spread.argmax(axis=1), spread.max(axis=1)
    kept = []
    for c in np.unique(taken):  # each class's most confident share, so no class is crowded out
        rows = np.flatnonzero(taken == c)
        rows = rows[np.argsort(-confidence[rows], kind="stable")]
        kept.append(rows[: max(1, round(len(rows) * keep))])
    kept = np.sort(np.concatenate(kept)) if kept else np.zeros(0, dtype=np.int64)
    return reached[kept].astype(np.int64), model.classes_[taken[kept]].astype(np.int64)
