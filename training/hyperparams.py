"""Hyper-parameters a lead may set per project (Project.training_params), with their ranges.

A project's `training_params` holds only what its lead changed, by the backend that trains it
(training/versions.py backend_for_project); everything else keeps the backend's default_params.
`params_check` is the one check the settings page, the admin and the API go through (registered
for annotate's Project.clean in training/apps.py): a value of the wrong type or out of range is
refused with a message naming the parameter, and nothing is saved. A version records the whole
set it was trained with (ModelVersion.params).

`start_from` (image_cnn, in STUDIO_SPECS: not a backend parameter) names another project's model
version to start the network from. Here only its type is checked; the version itself in
training/transfer.py (the database), and in the web layer that the requester manages its project.
"""

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Number:
    low: float
    high: float
    integer: bool = False
    nullable: bool = False  # None: the backend's automatic choice
    help: str = ""

    @property
    def bounds(self) -> tuple[str, str]:
        if self.integer:
            return f"{int(self.low):,}", f"{int(self.high):,}"
        return f"{self.low:g}", f"{self.high:g}"

    def check(self, name: str, value: Any) -> Any:
        if value is None and self.nullable:
            return None
        kind = "a whole number" if self.integer else "a number"
        low, high = self.bounds
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ValueError(f"{name}: {kind} from {low} to {high} expected, got {value!r}")
        if self.integer and float(value) != int(value):
            raise ValueError(f"{name}: a whole number expected, got {value!r}")
        if not self.low <= value <= self.high:
            raise ValueError(f"{name}: {value!r} is outside {low} to {high}")
        return int(value) if self.integer else float(value)


@dataclass(frozen=True)
class Range:
    """An n-gram range: [shortest, longest], both whole numbers within [low, high]."""

    low: int
    high: int
    help: str = ""

    def check(self, name: str, value: Any) -> Any:
        if (
            not isinstance(value, list | tuple)
            or len(value) != 2
            or not all(isinstance(v, int) and not isinstance(v, bool) for v in value)
        ):
            raise ValueError(f"{name}: two whole numbers [shortest, longest] expected, got {value!r}")
        shortest, longest = value
        if not self.low <= shortest <= longest <= self.high:
            raise ValueError(f"{name}: {list(value)} must have {self.low} ≤ shortest ≤ longest ≤ {self.high}")
        return [shortest, longest]


@dataclass(frozen=True)
class Flag:
    help: str = ""

    def check(self, name: str, value: Any) -> Any:
        if not isinstance(value, bool):
            raise ValueError(f"{name}: true or false expected, got {value!r}")
        return value


@dataclass(frozen=True)
class VersionRef:
    """A model version's id (another project's, checked against the database in training/transfer.py),
    or None."""

    help: str = ""

    def check(self, name: str, value: Any) -> Any:
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name}: a model version id (a whole number) or null expected, got {value!r}")
        return value


TEXT = {
    "C": Number(1e-4, 1e4, help="inverse regularisation strength: smaller fits less closely"),
    "C_search": Flag(help="choose C among 0.1, 1, 10, 100 by 3-fold cross-validation of the training labels"),
    "word_ngrams": Range(1, 3, help="word n-gram lengths"),
    "char_ngrams": Range(1, 6, help="character n-gram lengths (within words)"),
    "word_features": Number(2**8, 2**20, integer=True, help="hashed word features"),
    "char_features": Number(2**8, 2**20, integer=True, help="hashed character features"),
}
SPECS: dict[str, dict[str, Number | Range | Flag]] = {
    "text_logreg": TEXT,
    "text_encoder": {"C": TEXT["C"], "C_search": TEXT["C_search"]},
    "image_cnn": {
        "lr": Number(1e-6, 1.0, help="learning rate (Adam)"),
        "batch_size": Number(2, 1024, integer=True, help="images per minibatch"),
        "epochs": Number(
            1, 500, integer=True, nullable=True, help="the most epochs; empty: about 250 optimiser steps"
        ),
        "dropout": Number(0.0, 0.9, help="dropout before the last layer"),
        "input_size": Number(8, 128, integer=True, help="images are resized to this many pixels a side"),
        "shift": Number(
            0, 8, integer=True, help="augmentation: random shifts of up to this many pixels; 0 off"
        ),
        "early_stopping": Flag(
            help="from 300 labels: stop on a 15% slice of the training side, keep the best epoch's weights"
        ),
        "patience": Number(
            1, 50, integer=True, help="early stopping: epochs without a better validation loss"
        ),
        "early_stopping_min": Number(
            20, 1_000_000, integer=True, help="early stopping: from this many labels given to a fit"
        ),
    },
    "span_crf": {
        "c1": Number(0.0, 10.0, help="L1 regularisation"),
        "c2": Number(0.0, 10.0, help="L2 regularisation"),
    },
}
# Settable parameters that the studio reads, not the backend: model_version_train takes them out
# before it builds the backend (SPECS holds only the backend's own, which ModelVersion.params records).
STUDIO_SPECS: dict[str, dict[str, VersionRef]] = {
    "image_cnn": {
        "start_from": VersionRef(
            help="transfer learning: start from the network of this model version of another project you"
            " manage (same input size); its last layer is trained anew for this project's labels"
        ),
    },
}


def settable(backend: str) -> dict[str, Number | Range | Flag | VersionRef]:
    """Every parameter a lead may set on `backend`: its own (SPECS), then the studio's (STUDIO_SPECS)."""
    return {**SPECS.get(backend, {}), **STUDIO_SPECS.get(backend, {})}


def params_check(backend: str, params: Any) -> dict[str, Any]:
    """`params` checked against the backend's ranges; the cleaned values. ValueError names the
    first parameter that is unknown, of the wrong type or out of range."""
    if not isinstance(params, dict):
        raise ValueError(f"an object of parameters expected, got {type(params).__name__}")
    specs = settable(backend)
    cleaned = {}
    for name, value in params.items():
        if name not in specs:
            known = ", ".join(specs) or "none"
            raise ValueError(f"{name}: not a parameter of {backend} (its parameters: {known})")
        cleaned[name] = specs[name].check(name, value)
    return cleaned


def params_describe(backend: str) -> str:
    """The backend's settable parameters with their ranges and defaults, for a form's help."""
    from training.backends import get_backend

    defaults = get_backend(backend).default_params  # a class attribute: no encoder is loaded
    parts = []
    for name, spec in settable(backend).items():
        if isinstance(spec, Flag):
            bounds = "true or false"
        elif isinstance(spec, Range):
            bounds = f"[shortest, longest] within {spec.low}–{spec.high}"
        elif isinstance(spec, VersionRef):
            parts.append(f"{name} ({spec.help}; a model version id, or null; default null: from scratch)")
            continue
        else:
            bounds = "–".join(spec.bounds) + (", or null" if spec.nullable else "")
        default = defaults.get(name)
        parts.append(f"{name} ({spec.help}; {bounds}; default {'automatic' if default is None else default})")
    return "; ".join(parts)
