"""Augmented digits, the image data of the training benchmarks: the 1,797 digits of the demo, read at
32×32 like the studio, moved by a seeded random affine transform and noised.

NumPy and Pillow only, and `tests.training.data` for the digits themselves: with saved arrays
(`bench_training_fit --image-only --arrays`) nothing here needs Django.
"""

import io

import numpy as np


def _affine(image, rng: np.random.Generator):
    """A random rotation ±15°, scale 0.9–1.1 and shift ±2 px about the centre, white fill, bilinear."""
    from PIL import Image

    angle = np.deg2rad(rng.uniform(-15, 15))
    scale = rng.uniform(0.9, 1.1)
    tx, ty = rng.uniform(-2, 2, size=2)
    cx, cy = image.width / 2, image.height / 2
    # Image.transform maps each output pixel to an input one, so it takes the inverse transform.
    cos, sin = np.cos(angle) / scale, np.sin(angle) / scale
    a, b, d, e = cos, sin, -sin, cos
    c = cx - a * (cx + tx) - b * (cy + ty)
    f = cy - d * (cx + tx) - e * (cy + ty)
    return image.transform(
        image.size,
        Image.Transform.AFFINE,
        (a, b, c, d, e, f),
        resample=Image.Resampling.BILINEAR,
        fillcolor=255,
    )


def augmented(pngs: list[bytes], indices: np.ndarray, size: int, seed: int) -> np.ndarray:
    """The digits at `indices`, read at `size` like the studio, then moved and noised (σ = 0.05)."""
    from PIL import Image

    from training.backends.image import images_to_array

    rng = np.random.default_rng(seed)
    moved = []
    for i in indices:
        with Image.open(io.BytesIO(pngs[i])) as png:
            small = png.convert("L").resize((size, size), Image.Resampling.BILINEAR)
        moved.append(_affine(small, rng))
    X = images_to_array(moved, size=size)
    X += rng.normal(0.0, 0.05, size=X.shape).astype(np.float32)
    return np.clip(X, 0.0, 1.0, out=X)


def image_arrays(*, seed: int, n_train: int, size: int = 32) -> dict[str, np.ndarray]:
    """Training and evaluation arrays from the demo digits (needs Django settings: annotate.demo)."""
    from tests.training import data

    pngs, targets = data.digit_pngs()
    order = np.random.default_rng(seed).permutation(len(targets))
    sources, held_out = order[:n_train], order[n_train:]
    return {
        "X_train": augmented(pngs, sources, size, seed),
        "y_train": targets[sources],
        "X_eval": augmented(pngs, held_out, size, seed + 1),
        "y_eval": targets[held_out],
    }


def digit_pngs_augmented(*, count: int, seed: int) -> tuple[list[bytes], list[int]]:
    """`count` 32×32 PNGs of augmented digits (each of the 1,797 used in turn, in a seeded order)."""
    from PIL import Image

    from tests.training import data

    pngs, targets = data.digit_pngs()
    sources = np.resize(np.random.default_rng(seed).permutation(len(targets)), count)
    arrays = augmented(pngs, sources, 32, seed)
    pixels = np.round(arrays[:, 0] * 255).astype(np.uint8)
    out = []
    for image in pixels:
        buffer = io.BytesIO()
        Image.fromarray(image, mode="L").save(buffer, format="PNG")
        out.append(buffer.getvalue())
    return out, [int(targets[i]) for i in sources]
