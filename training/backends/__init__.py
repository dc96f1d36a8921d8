"""Model families behind one interface (`base.Backend`): NumPy arrays in, arrays out; no Django here.

Backends are looked up by name and imported on first use, so importing this package loads neither
scikit-learn nor torch.
"""

import importlib
from pathlib import Path

from training.backends.base import Backend, read_manifest

BACKENDS = {
    "text_logreg": "training.backends.text:TextLogRegBackend",
    "text_encoder": "training.backends.encoder:TextEncoderBackend",
    "image_cnn": "training.backends.image:ImageCNNBackend",
    "span_crf": "training.backends.spans:SpanCRFBackend",
}


def get_backend(name: str) -> type[Backend]:
    """The backend class registered under `name`; KeyError names the known ones."""
    try:
        module_name, class_name = BACKENDS[name].split(":")
    except KeyError:
        raise KeyError(f"unknown backend {name!r}; known: {', '.join(sorted(BACKENDS))}") from None
    return getattr(importlib.import_module(module_name), class_name)


def load_backend(directory: Path) -> Backend:
    """Load a saved model, whichever backend wrote it (named in its model.json)."""
    return get_backend(read_manifest(directory)["backend"]).load(directory)


__all__ = ["BACKENDS", "Backend", "get_backend", "load_backend"]
