"""Quality floors on real data (the demo's digits and Rotten Tomatoes reviews) and seeded synthetic data.

Each floor is the mean over three seeds, with the backends' default hyper-parameters; the figures are
printed (see them with `pytest -rP`).
"""

import numpy as np
import pytest
from sklearn.metrics import f1_score

from tests.training import data
from training.backends import get_backend

pytestmark = pytest.mark.slow
SEEDS = (0, 1, 2)


@pytest.fixture(autouse=True, scope="module")
def _one_torch_thread():
    """Train as the worker does: one torch thread (it sets this once per process)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _report(name: str, figures: list[float]) -> float:
    mean = float(np.mean(figures))
    print(
        f"{name}: " + ", ".join(f"seed {s} {f:.4f}" for s, f in zip(SEEDS, figures, strict=True)),
        f"mean {mean:.4f}",
    )
    return mean


def test_image_cnn_reads_the_demo_digits_with_500_labels():
    X, y = data.digits()
    accuracies = []
    for seed in SEEDS:
        train, test = data.stratified_split(y, train_size=500, seed=seed)
        backend = get_backend("image_cnn")(device="cpu")
        backend.fit(X[train], y[train], classes=data.DIGIT_CLASSES, multi_label=False, seed=seed)
        accuracies.append(float(np.mean(backend.predict_proba(X[test]).argmax(axis=1) == y[test])))
        assert len(test) == 1297
    assert _report("digits accuracy (500 train, 1,297 test)", accuracies) >= 0.90


def test_text_logreg_tells_fresh_from_rotten_with_2000_labels():
    texts, y = data.rotten_tomatoes()
    backend_class = get_backend("text_logreg")
    # Features once for every review, as the studio caches them; each seed refits only the classifier.
    features = backend_class().featurize(texts)
    accuracies = []
    for seed in SEEDS:
        train, test = data.review_split(y, seed=seed)
        backend = backend_class()
        backend.fit(features[train], y[train], classes=data.REVIEW_CLASSES, multi_label=False, seed=seed)
        accuracies.append(float(np.mean(backend.predict_proba(features[test]).argmax(axis=1) == y[test])))
        assert len(test) == 600
    assert _report("Rotten Tomatoes accuracy (2,000 train, 600 test)", accuracies) >= 0.70


def _synthetic_multilabel_texts(seed: int) -> tuple[list[str], np.ndarray]:
    """Documents from scikit-learn's multi-label generator, each word count written out as words."""
    from sklearn.datasets import make_multilabel_classification

    counts, Y = make_multilabel_classification(
        n_samples=600,
        n_features=60,
        n_classes=5,
        n_labels=2,
        length=100,
        allow_unlabeled=False,
        random_state=seed,
    )
    words = [f"w{j:02d}" for j in range(counts.shape[1])]
    texts = [" ".join(w for j, w in enumerate(words) for _ in range(int(row[j]))) for row in counts]
    return texts, Y


def test_text_logreg_multi_label_beats_chance_by_far():
    scores = []
    for seed in SEEDS:
        texts, Y = _synthetic_multilabel_texts(seed)
        backend = get_backend("text_logreg")()
        backend.fit(texts[:400], Y[:400], classes=list("abcde"), multi_label=True, seed=seed)
        predicted = backend.predict_proba(texts[400:]) >= 0.5
        scores.append(f1_score(Y[400:], predicted, average="micro"))
    # Guessing every label present scores 2 * density / (1 + density), about 0.61 here (density 0.44).
    assert _report("synthetic multi-label text micro-F1", scores) >= 0.75


def _synthetic_multilabel_images(seed: int, n: int = 400, size: int = 32) -> tuple[np.ndarray, np.ndarray]:
    """Light noisy pages with any of: a horizontal bar, a vertical bar, a dark square, a diagonal line."""
    rng = np.random.default_rng(seed)
    Y = (rng.random((n, 4)) < 0.4).astype(np.int8)
    X = rng.normal(0.8, 0.08, size=(n, 1, size, size)).astype(np.float32)
    for i in range(n):
        r, c = rng.integers(4, size - 8, size=2)
        if Y[i, 0]:
            X[i, 0, r, 3:-3] = 0.1
        if Y[i, 1]:
            X[i, 0, 3:-3, c] = 0.1
        if Y[i, 2]:
            X[i, 0, r : r + 5, c : c + 5] = 0.2
        if Y[i, 3]:
            d = np.arange(4, size - 4)
            X[i, 0, d, (d + int(c) - 12) % size] = 0.1
    return np.clip(X, 0, 1), Y


def test_image_cnn_multi_label_beats_chance_by_far():
    scores = []
    for seed in SEEDS:
        X, Y = _synthetic_multilabel_images(seed)
        backend = get_backend("image_cnn")(device="cpu", epochs=8)
        backend.fit(
            X[:300], Y[:300], classes=["hbar", "vbar", "square", "diagonal"], multi_label=True, seed=seed
        )
        predicted = backend.predict_proba(X[300:]) >= 0.5
        scores.append(f1_score(Y[300:], predicted, average="micro"))
    # Guessing every label present scores about 0.57 (density 0.4).
    assert _report("synthetic multi-label image micro-F1", scores) >= 0.85
