"""The image CNN's minibatches: none smaller than the stated size, every example used every epoch.

The figures come from the training loop itself (fit_info counts what it fed), not from a copy of its
arithmetic; `min_batch_size=1` is the old ragged behaviour, kept to show the check can fail.
"""

import numpy as np
import pytest

from training.backends.image import ImageCNNBackend, minibatch_bounds

CLASSES = ["h", "v", "sq"]


def _images(n: int, size: int = 8, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Tiny seeded noise images with a bright row for class 0 and a bright column for class 1."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, size=n)
    X = rng.uniform(0, 0.3, size=(n, 1, size, size)).astype(np.float32)
    X[y == 0, 0, size // 2, :] = 1.0
    X[y == 1, 0, :, size // 2] = 1.0
    return X, y


def _fit(n: int, **params) -> dict:
    """A fit on exactly n rows: early stopping off, so no validation slice is taken from them."""
    X, y = _images(n)
    settings = {"device": "cpu", "channels": [2, 2, 2], "shift": 0, "epochs": 2, "batch_size": 32}
    backend = ImageCNNBackend(**{**settings, "early_stopping": False, **params})
    return backend.fit(X, y, classes=CLASSES, multi_label=False, seed=0)


def test_with_early_stopping_every_example_of_the_training_side_is_used_in_stated_batches():
    info = _fit(449, early_stopping=True)
    assert info["validation_rows"] == 67  # 15% of 449, held out of the loop
    assert info["examples_per_epoch"] == 449 - 67
    assert info["smallest_batch"] >= info["min_batch_size"]


@pytest.mark.parametrize("n", [449, 450, 480, 481, 495, 31, 40, 64, 65])
def test_every_minibatch_the_loop_fed_has_the_stated_size_and_every_example_is_used(n):
    info = _fit(n)
    assert info["min_batch_size"] == min(16, n)  # half of batch_size 32, or everything when fewer
    assert info["smallest_batch"] >= info["min_batch_size"]
    assert info["largest_batch"] <= 32 + 16 - 1
    assert info["examples_per_epoch"] == n
    assert info["steps"] == info["epochs"] * len(minibatch_bounds(n, 32, 16))


def test_a_stated_min_batch_size_is_kept():
    info = _fit(449, min_batch_size=32)  # 449 = 14 × 32 + 1: the 1 joins the last full chunk
    assert info["smallest_batch"] == 32 and info["largest_batch"] == 33
    assert info["examples_per_epoch"] == 449


def test_without_the_floor_the_loop_feeds_a_batch_of_one():
    info = _fit(449, min_batch_size=1)
    assert info["smallest_batch"] == 1 and info["examples_per_epoch"] == 449


def test_a_remainder_at_the_floor_stays_its_own_batch():
    assert minibatch_bounds(450, 32, 2) == [*((s, s + 32) for s in range(0, 448, 32)), (448, 450)]
    assert minibatch_bounds(449, 32, 2)[-1] == (416, 449)


@pytest.mark.parametrize("n", range(1, 200))
def test_the_bounds_cover_every_example_once_within_the_sizes(n):
    bounds = minibatch_bounds(n, 32, 16)
    sizes = [stop - start for start, stop in bounds]
    assert bounds[0][0] == 0 and bounds[-1][1] == n
    assert all(a[1] == b[0] for a, b in zip(bounds, bounds[1:], strict=False))
    assert min(sizes) >= min(16, n) and max(sizes) <= 47


def test_the_stated_size_is_half_the_batch_unless_set_and_never_above_it():
    assert ImageCNNBackend().min_batch_size == 32
    assert ImageCNNBackend(batch_size=16, min_batch_size=40).min_batch_size == 16
    assert ImageCNNBackend(min_batch_size=0).min_batch_size == 1


def _cuda() -> bool:
    import torch

    return torch.cuda.is_available()


@pytest.mark.skipif(not _cuda(), reason="no CUDA device here")
def test_the_cuda_loop_feeds_the_same_minibatches():
    X, y = _images(449)
    backend = ImageCNNBackend(device="cuda", channels=[2, 2, 2], shift=0, epochs=2, batch_size=32)
    info = backend.fit(X, y, classes=CLASSES, multi_label=False, seed=0)
    cpu = _fit(449)
    assert info["device"].startswith("cuda")
    for key in ("smallest_batch", "largest_batch", "examples_per_epoch", "steps"):
        assert info[key] == cpu[key]
