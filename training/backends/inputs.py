"""New inputs (texts, or images as Pillow images) to a fitted backend's predictions, exactly as the
studio makes model inputs for its own items: the one path the prediction endpoint's worker and a
downloaded model's loader (training/backends/loader.py) share. No Django here.

Texts are featurized by the backend's own featurizer (hashed n-grams or the sentence encoder);
span texts are tokenized with the stated tokenizer (annotate/tokens.py). Images are read as the
features cache reads an item's file: grayscale, resized to the network's side, rounded to 8 bits
(`images_to_pixels`), then scaled to [0, 1].
"""

from collections.abc import Sequence
from typing import Any

import numpy as np

SPANS_BACKEND = "span_crf"
IMAGE_BACKEND = "image_cnn"


def takes_images(backend) -> bool:
    """Whether `backend` reads images (else texts)."""
    return backend.name == IMAGE_BACKEND


def inputs_from_texts(backend, texts: Sequence[str]):
    """What `backend` reads for these texts (a feature matrix, or documents with their tokens)."""
    if takes_images(backend):
        raise ValueError(f"{backend.name} reads images, not texts")
    texts = [str(t) for t in texts]
    if backend.name == SPANS_BACKEND:
        from annotate.tokens import tokens

        return [(text, tokens(text)) for text in texts]
    return backend.featurizer.featurize(texts)


def inputs_from_images(backend, images: Sequence) -> np.ndarray:
    """float32 (n, 1, side, side) in [0, 1] for these Pillow images, as the studio's cache holds them."""
    from training.backends.image import images_to_pixels

    if not takes_images(backend):
        raise ValueError(f"{backend.name} reads texts, not images")
    side = int(backend.input_shape[-1])
    return images_to_pixels(list(images), size=side).astype(np.float32) / 255.0


def predictions(backend, inputs) -> list[dict[str, Any]]:
    """One answer per input: for classification {"value": {"choices": [...]}, "confidence",
    "probabilities": {class: p}} (full precision); for spans {"value": {"spans": [...]},
    "confidence": [per span]}."""
    if backend.name == SPANS_BACKEND:
        return [
            {"value": {"spans": p.spans}, "confidence": [round(float(c), 6) for c in p.confidence]}
            for p in backend.predict_marginals(inputs)
        ]
    from training.strategies import proposals

    proba = backend.predict_proba(inputs)
    values, confidence = proposals(proba, backend.classes, multi_label=backend.multi_label)
    return [
        {
            "value": value,
            "confidence": float(c),
            "probabilities": {name: float(p) for name, p in zip(backend.classes, row, strict=True)},
        }
        for value, c, row in zip(values, confidence, proba, strict=True)
    ]
