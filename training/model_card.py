"""A model version's card: what it learned from, how it was trained, how good it is and for whom.

`training_data_summary` and `training_hardware` are recorded in a version's metrics when it is
trained (training/versions.py); `model_card` reads them back with the metrics for the card page
(training/views.py model_card_page). A version trained before they were recorded shows its label
counts from its snapshot and says the rest was not recorded.

The bias warning: a class is *rare* when under RARE_SHARE of the training labels, and *much worse*
when its recall is at least WORSE_BY below the mean recall of the other classes. Both are read off
the cross-validated (out-of-fold) figures, the version's own held-out estimate.
"""

import contextlib
import os
import platform
import sys
from collections import Counter
from dataclasses import dataclass, field
from importlib import metadata

from annotate.models import Item
from training.evaluation import wilson_interval
from training.models import DatasetSnapshot, ModelVersion

RARE_SHARE = 0.05
WORSE_BY = 0.20


def _value_classes(value: dict) -> list[str]:
    """The classes a final value carries: its choices, or its spans' labels (one per span)."""
    if "spans" in value:
        return [span["label"] for span in value["spans"]]
    return list(value.get("choices", []))


def training_data_summary(*, snapshot: DatasetSnapshot) -> dict:
    """Labels per class and where the final labels came from (Item.final_source), at training time."""
    per_class = Counter(name for value in snapshot.values for name in _value_classes(value))
    sources = Counter(
        Item.objects.filter(pk__in=snapshot.item_ids).values_list("final_source", flat=True).iterator()
    )
    return {
        "items": len(snapshot.item_ids),
        "per_class": {name: per_class.get(name, 0) for name in snapshot.classes},
        "sources": dict(sorted(sources.items())),
    }


def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            for line in handle:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def training_hardware(*, fit_info: dict) -> dict:
    """Where the final fit ran: the processor, cores, the torch device (and GPU) and versions."""
    hardware = {
        "cpu": _cpu_name(),
        "cores": os.cpu_count(),
        "machine": platform.machine(),
        "python": platform.python_version(),
        "device": fit_info.get("device") or (fit_info.get("encoder") or {}).get("device") or "cpu",
    }
    uses_torch = "device" in fit_info or "encoder" in fit_info  # the image network, the encoder
    if uses_torch and "torch" in sys.modules:
        import torch

        hardware["torch"] = torch.__version__
        hardware["torch_threads"] = torch.get_num_threads()
        if hardware["device"].startswith("cuda"):
            hardware["gpu"] = torch.cuda.get_device_name(0)
    for package in ("scikit-learn", "python-crfsuite"):
        with contextlib.suppress(metadata.PackageNotFoundError):
            hardware[package] = metadata.version(package)
    return hardware


@dataclass
class ClassRow:
    name: str
    labels: int
    share: float
    precision: float
    recall: float
    f1: float
    support: int
    precision_ci: tuple[float, float] | None = None
    recall_ci: tuple[float, float] | None = None
    warnings: list[str] = field(default_factory=list)
    judged: bool = True  # False: no scored item is of this class or was predicted as it (no figures)

    @property
    def share_percent(self) -> float:
        return round(100 * self.share, 1)


@dataclass
class ModelCard:
    version: ModelVersion
    measure: str
    headline: float
    headline_ci: tuple[float, float] | None
    rows: list[ClassRow]
    sources: dict[str, int] | None
    warnings: list[str]
    timings: list[tuple[str, float]]
    seconds: float
    hardware: dict | None
    rare_share: float = RARE_SHARE
    worse_by: float = WORSE_BY

    @property
    def rare_percent(self) -> float:
        return round(100 * self.rare_share, 1)


def _counts(metrics: dict, j: int, name: str, row: dict) -> tuple[int, int, int]:
    """(true positives, predicted, actual) of class j, from the confusion matrix where there is one."""
    matrix = metrics.get("confusion_matrix")
    if matrix is not None and metrics.get("multi_label"):
        (_tn, fp), (fn, tp) = matrix[j]
        return tp, tp + fp, tp + fn
    if matrix is not None:
        tp = matrix[j][j]
        return tp, sum(r[j] for r in matrix), sum(matrix[j])
    # Spans: seqeval's figures; support is the true entities, precision = tp / predicted.
    support = int(row.get("support", 0))
    tp = round(row.get("recall", 0.0) * support)
    predicted = round(tp / row["precision"]) if row.get("precision") else 0
    return tp, predicted, support


def model_card(*, version: ModelVersion) -> ModelCard:
    """The card's figures for `version` (see the module's docstring for the warnings)."""
    from annotate.models import FinalSource
    from training.versions import metric_headline

    metrics = version.metrics
    measure, headline = metric_headline(metrics)
    data = metrics.get("data")
    if data is None:
        snapshot = version.dataset
        per_class = Counter(name for value in snapshot.values for name in _value_classes(value))
        data = {"per_class": {name: per_class.get(name, 0) for name in snapshot.classes}, "sources": None}
    total = sum(data["per_class"].values()) or 1
    rows = []
    for j, name in enumerate(metrics.get("classes") or list(data["per_class"])):
        row = (metrics.get("per_class") or {}).get(name, {})
        tp, predicted, actual = _counts(metrics, j, name, row) if row else (0, 0, 0)
        labels = int(data["per_class"].get(name, 0))
        rows.append(
            ClassRow(
                name=name, labels=labels, share=labels / total,
                precision=float(row.get("precision", 0.0)), recall=float(row.get("recall", 0.0)),
                f1=float(row.get("f1", 0.0)), support=int(row.get("support", 0)),
                precision_ci=wilson_interval(tp, predicted) if predicted else None,
                recall_ci=wilson_interval(tp, actual) if actual else None,
                judged=bool(predicted or actual),
            )
        )  # fmt: skip
    warnings = []
    for row in rows:
        if row.share < RARE_SHARE:
            row.warnings.append("rare")
            warnings.append(
                f"{row.name} is rare: {row.labels} of {total} training labels ({row.share_percent}%, under "
                f"{round(100 * RARE_SHARE)}%). The model has seen few of them and will miss them more often."
            )
        others = [r.recall for r in rows if r is not row and r.support]
        if row.support and others and row.recall <= sum(others) / len(others) - WORSE_BY:
            row.warnings.append("much worse")
            warnings.append(
                f"{row.name} is recognised much worse than the rest: recall {row.recall:.2f} against "
                f"{sum(others) / len(others):.2f} for the other classes (cross-validated). Items of this "
                "class are the ones this model gets wrong; check them before relying on it."
            )
    for name in metrics.get("classes_left_out") or []:
        warnings.append(f"{name} had too few labels to train: this model never proposes it.")
    for name in (metrics.get("cv") or {}).get("trained_only") or []:
        warnings.append(
            f"{name} has a single label: the model learned it from that one item, and the"
            " cross-validation could not judge it: no scored item is of this class."
        )
    ci = metrics.get("accuracy_ci") if measure == "accuracy" else None
    sources = data.get("sources")
    labels = dict(FinalSource.choices)
    return ModelCard(
        version=version,
        measure=measure,
        headline=headline,
        headline_ci=tuple(ci) if ci else None,
        rows=rows,
        sources={labels.get(k, k): v for k, v in sources.items()} if sources is not None else None,
        warnings=warnings,
        timings=list((version.timings or {}).items()),
        seconds=round(sum((version.timings or {}).values()), 1),
        hardware=metrics.get("hardware"),
    )
