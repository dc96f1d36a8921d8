"""The one small interface every model family implements: fit, predict_proba, save, load.

Arrays in, arrays out. Targets are class indices into `classes`: an int array (n,) for single-label
tasks, a 0/1 array (n, k) for multi-label ones. `predict_proba` returns (n, k) floats in the order of
`classes`: softmax rows that sum to 1 for single-label, independent sigmoids for multi-label.

A saved model is a directory: the backend's weight files (never pickle) and `model.json`, written last,
which names the backend, its hyper-parameters, the classes and the files. A directory without
`model.json` is an unfinished save and does not load.
"""

import abc
from pathlib import Path
from typing import Any, ClassVar, Self

import numpy as np

from training.backends.artifacts import atomic_write_json, read_json

MANIFEST = "model.json"
FORMAT_VERSION = 1


class Backend(abc.ABC):
    """A model family: hyper-parameters in `params`, learned state set by `fit` or `load`."""

    name: ClassVar[str]
    default_params: ClassVar[dict[str, Any]]

    def __init__(self, **params: Any) -> None:
        unknown = sorted(set(params) - set(self.default_params))
        if unknown:
            raise ValueError(f"{self.name}: unknown parameter(s) {', '.join(unknown)}")
        self._params = {**self.default_params, **params}
        self.classes: list[str] = []
        self.multi_label = False
        self.fit_info: dict[str, Any] = {}

    def __repr__(self) -> str:
        return (
            f"<{type(self).__name__} {self.name} classes={len(self.classes)} multi_label={self.multi_label}>"
        )

    @property
    def params(self) -> dict[str, Any]:
        """The hyper-parameters, JSON-safe (a copy)."""
        return dict(self._params)

    @property
    def is_fitted(self) -> bool:
        return bool(self.classes)

    def learns_from_unlabeled(self, *, n_labels: int, n_classes: int, multi_label: bool) -> bool:
        """Whether a fit on this many labels would learn from the project's unlabeled items too: then
        the caller passes their inputs as `fit(..., unlabeled=...)`, in X's form (the image
        network's pseudo-labels). Backends that never do keep this False and `fit` as declared."""
        return False

    @abc.abstractmethod
    def fit(self, X: Any, Y: np.ndarray, *, classes: list[str], multi_label: bool, seed: int = 0) -> dict:
        """Learn from X and the targets Y; return what happened (epochs, loss, seconds …), JSON-safe."""

    @abc.abstractmethod
    def predict_proba(self, X: Any) -> np.ndarray:
        """Class probabilities, shape (n, len(classes)), float64."""

    @abc.abstractmethod
    def save(self, directory: Path) -> list[str]:
        """Write the model into `directory` (created if needed); return the file names written."""

    @classmethod
    @abc.abstractmethod
    def load(cls, directory: Path) -> Self:
        """Read a model that `save` wrote."""

    def _set_targets(self, Y: np.ndarray, *, classes: list[str], multi_label: bool, n: int) -> np.ndarray:
        """Validate classes and targets against n samples; remember them; return Y as int64 (or 0/1 int8)."""
        classes = [str(c) for c in classes]
        if len(set(classes)) != len(classes):
            raise ValueError("classes must be unique")
        if len(classes) < (1 if multi_label else 2):
            raise ValueError("a single-label model needs at least two classes; multi-label at least one")
        if n == 0:
            raise ValueError("nothing to fit: no samples")
        Y = np.asarray(Y)
        k = len(classes)
        if multi_label:
            if Y.shape != (n, k):
                raise ValueError(f"multi-label targets must have shape {(n, k)}, not {Y.shape}")
            if not np.isin(Y, (0, 1)).all():
                raise ValueError("multi-label targets must be 0 or 1")
            Y = Y.astype(np.int8)
        else:
            if Y.shape != (n,):
                raise ValueError(f"single-label targets must have shape {(n,)}, not {Y.shape}")
            if not np.issubdtype(Y.dtype, np.integer) or Y.min() < 0 or Y.max() >= k:
                raise ValueError(f"single-label targets must be class indices in [0, {k})")
            Y = Y.astype(np.int64)
        self.classes = classes
        self.multi_label = bool(multi_label)
        return Y

    def _require_fitted(self) -> None:
        if not self.is_fitted:
            raise RuntimeError(f"{self.name}: fit or load the model first")

    def _write_manifest(self, directory: Path, files: list[str], **extra: Any) -> list[str]:
        """Write model.json last, so its presence means every weight file is complete."""
        manifest = {
            "backend": self.name,
            "format": FORMAT_VERSION,
            "classes": self.classes,
            "multi_label": self.multi_label,
            "params": self.params,
            "fit_info": self.fit_info,
            "files": files,
            **extra,
        }
        atomic_write_json(Path(directory) / MANIFEST, manifest)
        return [*files, MANIFEST]

    @classmethod
    def _read_manifest(cls, directory: Path) -> tuple[Self, dict[str, Any]]:
        """A new instance of `cls` with params, classes and fit info from `directory`/model.json."""
        manifest = read_manifest(directory)
        if manifest["backend"] != cls.name:
            raise ValueError(f"{directory} holds a {manifest['backend']!r} model, not {cls.name!r}")
        backend = cls(**manifest["params"])
        backend.classes = list(manifest["classes"])
        backend.multi_label = bool(manifest["multi_label"])
        backend.fit_info = dict(manifest.get("fit_info", {}))
        return backend, manifest


def read_manifest(directory: Path) -> dict[str, Any]:
    """The model.json of a saved model; raises FileNotFoundError for an unfinished save."""
    manifest = read_json(Path(directory) / MANIFEST)
    if manifest.get("format") != FORMAT_VERSION:
        raise ValueError(f"{directory}: unsupported model format {manifest.get('format')!r}")
    return manifest


def softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise softmax, stable for large logits."""
    z = logits - logits.max(axis=1, keepdims=True)
    np.exp(z, out=z)
    z /= z.sum(axis=1, keepdims=True)
    return z


def sigmoid(logits: np.ndarray) -> np.ndarray:
    """Element-wise logistic function without overflow warnings."""
    out = np.empty_like(logits)
    positive = logits >= 0
    out[positive] = 1.0 / (1.0 + np.exp(-logits[positive]))
    e = np.exp(logits[~positive])
    out[~positive] = e / (1.0 + e)
    return out
