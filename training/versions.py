"""Model versions: train one from the project's final labels, store it, activate it, list them.

model_version_train is the whole pipeline as one plain function call (snapshot, inputs, fit,
evaluate, store, pictures); training runs (training/runs.py) and the `train` command call it.
model_inputs, what a backend reads for a set of items, is shared with pool scoring.
"""

import logging
import time
from collections.abc import Callable
from functools import lru_cache

import numpy as np
from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.db.models import Max, QuerySet

from annotate.models import Project
from training.artifact_store import (
    artifact_discard,
    artifact_local,
    artifact_prefix_new,
    artifact_staging,
    artifact_upload,
)
from training.datasets import dataset_snapshot_create
from training.models import DatasetSnapshot, ModelVersion
from training.proposals import proposal_acceptance

logger = logging.getLogger(__name__)

BACKEND_FOR_TASK = {
    Project.TaskType.TEXT_CLASSIFICATION: "text_logreg",
    Project.TaskType.IMAGE_CLASSIFICATION: "image_cnn",
}

Progress = Callable[[str, int], None]


def _no_progress(phase: str, percent: int) -> None:
    return None


# Selectors -------------------------------------------------------------------------------


def model_version_list(*, project: Project) -> QuerySet[ModelVersion]:
    """The project's versions, newest first."""
    return ModelVersion.objects.filter(project=project).select_related("dataset").order_by("-number")


def model_version_list_with_acceptance(*, project: Project, limit: int = 20) -> list[ModelVersion]:
    """The project's newest `limit` versions, each with `.acceptance` (its proposals' acceptance or None)."""
    versions = list(model_version_list(project=project)[:limit])
    acceptance = proposal_acceptance(project=project) if versions else {}
    for version in versions:
        version.acceptance = acceptance.get(version.pk)
    return versions


def model_version_active(*, project: Project) -> ModelVersion | None:
    """The project's active version, or None before the first one."""
    return ModelVersion.objects.filter(project=project, is_active=True).first()


def model_version_backend(version: ModelVersion):
    """The version's fitted backend, loaded once per process."""
    return _load_backend(version.pk, version.artifact_path)


@lru_cache(maxsize=8)
def _load_backend(version_id: int, artifact_path: str):
    from training.backends import load_backend

    return load_backend(artifact_local(prefix=artifact_path))


# Inputs ----------------------------------------------------------------------------------


def model_inputs(*, project: Project, backend, item_ids: list[int]):
    """What the backend reads for these items: text features or image arrays (cached per item)."""
    from training.features import image_arrays, text_features

    if project.is_image:
        return image_arrays(project=project, item_ids=item_ids)
    return text_features(project=project, item_ids=item_ids, featurizer=backend.featurizer)


def _targets(values: list[dict], classes: list[str], multi_label: bool) -> np.ndarray:
    index = {name: n for n, name in enumerate(classes)}
    if multi_label:
        Y = np.zeros((len(values), len(classes)), dtype=np.int8)
        for row, value in enumerate(values):
            for choice in value["choices"]:
                Y[row, index[choice]] = 1
        return Y
    return np.asarray([index[value["choices"][0]] for value in values], dtype=np.int64)


# Services --------------------------------------------------------------------------------


def model_version_train(
    *,
    project: Project,
    created_by: AbstractBaseUser | None = None,
    backend_name: str | None = None,
    params: dict | None = None,
    seed: int = 0,
    activate: bool = True,
    progress: Progress = _no_progress,
) -> ModelVersion:
    """Train, evaluate and store a new version from the project's final labels.

    Raises training.datasets.NotEnoughLabels when there is too little to learn from. Nothing is
    stored unless every step succeeds; the active version changes only at the very end.
    """
    from training.backends import get_backend
    from training.evaluation import evaluate

    timings: dict[str, float] = {}
    started = time.perf_counter()

    def phase(finished: str, starting: str, percent: int) -> None:
        """Time the phase that just finished and announce the one starting."""
        nonlocal started
        now = time.perf_counter()
        timings[finished] = round(now - started, 3)
        started = now
        progress(starting, percent)

    progress("snapshot", 2)
    snapshot = dataset_snapshot_create(project=project)
    phase("snapshot", "load", 10)
    backend = get_backend(backend_name or BACKEND_FOR_TASK[project.task_type])(**(params or {}))
    value_of = dict(zip(snapshot.item_ids, snapshot.values, strict=True))
    validation = set(snapshot.validation_ids)
    train_ids = [i for i in snapshot.item_ids if i not in validation]
    val_ids = list(snapshot.validation_ids)
    X_train = model_inputs(project=project, backend=backend, item_ids=train_ids)
    X_val = model_inputs(project=project, backend=backend, item_ids=val_ids)
    Y_train = _targets([value_of[i] for i in train_ids], snapshot.classes, snapshot.multi_label)
    Y_val = _targets([value_of[i] for i in val_ids], snapshot.classes, snapshot.multi_label)
    phase("load", "fit", 30)
    fit_info = backend.fit(
        X_train, Y_train, classes=snapshot.classes, multi_label=snapshot.multi_label, seed=seed
    )
    phase("fit", "evaluate", 75)
    proba = backend.predict_proba(X_val)
    metrics = evaluate(
        Y_val, proba, classes=snapshot.classes, multi_label=snapshot.multi_label, n_train=len(train_ids)
    )
    metrics["fit"] = fit_info
    metrics["lent"] = snapshot.lent
    phase("evaluate", "store", 85)
    version = _version_store(
        project=project, snapshot=snapshot, backend=backend, metrics=metrics, created_by=created_by,
        timings=timings, activate=activate,
    )  # fmt: skip
    phase("store", "trained", 100)
    version.timings = timings
    version.save(update_fields=["timings"])
    logger.info(
        "trained %s: accuracy=%.3f labels=%s timings=%s",
        version,
        metrics["accuracy"],
        len(train_ids),
        timings,
    )
    return version


def _version_store(
    *,
    project: Project,
    snapshot: DatasetSnapshot,
    backend,
    metrics: dict,
    created_by,
    timings,
    activate: bool,
) -> ModelVersion:
    """Upload the artifacts under a new prefix, then record the version (the commit point)."""
    from training.pictures import confusion_matrix_svg

    prefix = artifact_prefix_new(project_id=project.pk)
    with artifact_staging() as staging:
        backend.save(staging)
        stored = artifact_upload(folder=staging, prefix=prefix)
    try:
        with transaction.atomic():
            # Lock the project row: version numbers and the active flag change one run at a time.
            Project.objects.select_for_update().filter(pk=project.pk).first()
            number = (ModelVersion.objects.filter(project=project).aggregate(n=Max("number"))["n"] or 0) + 1
            matrix = metrics["confusion_matrix"]
            version = ModelVersion.objects.create(
                project=project,
                number=number,
                backend=backend.name,
                params=backend.params,
                dataset=snapshot,
                metrics=metrics,
                artifact_path=prefix,
                confusion_svg=confusion_matrix_svg(matrix, snapshot.classes)
                if not snapshot.multi_label
                else "",
                timings=timings,
                created_by=created_by,
            )
            version.learning_curve_svg = _learning_curve(project)
            version.save(update_fields=["learning_curve_svg"])
            if activate:
                model_version_activate(version=version)
    except BaseException:
        artifact_discard(prefix=prefix, names=stored)
        raise
    return version


def _learning_curve(project: Project) -> str:
    from training.pictures import learning_curve_svg

    points = [
        {
            "n_labels": v.metrics.get("n_train", 0),
            "accuracy": v.metrics.get("accuracy", 0.0),
            "ci_low": v.metrics.get("accuracy_ci", [None, None])[0],
            "ci_high": v.metrics.get("accuracy_ci", [None, None])[1],
            "version": v.number,
        }
        for v in ModelVersion.objects.filter(project=project).order_by("number")
    ]
    return learning_curve_svg(points, title=f"Learning curve · {project.name}")


@transaction.atomic
def model_version_activate(*, version: ModelVersion) -> ModelVersion:
    """Make `version` the project's active model (the one that proposes labels and orders the queue).

    Flips the flag only: the pool keeps the order and proposals it has. A run activates its
    version once it has scored the pool with it; to switch to an existing version (a rollback),
    queue training.runs.training_run_request_activation, which does the same.
    """
    ModelVersion.objects.filter(project_id=version.project_id, is_active=True).exclude(pk=version.pk).update(
        is_active=False
    )
    ModelVersion.objects.filter(pk=version.pk).update(is_active=True)
    version.is_active = True
    return version
