"""Model versions: train one from the project's final labels, store it, activate it, list them.

model_version_train is the whole pipeline as one plain function call (snapshot, inputs, k-fold
fits, evaluate, label issues, the final fit, store, pictures); training runs (training/runs.py) and
the `train` command call it.
model_inputs, what a backend reads for a set of items, is shared with pool scoring.
Text spans train the same way (training/backends/spans.py, a CRF: k-fold fits, seqeval's entity
metrics, per-entity label issues, the final fit). Boxes have no model in this issue:
model_training_check refuses them with NO_BOX_MODEL before anything is queued or stored.
"""

import logging
import time
from collections.abc import Callable
from functools import lru_cache

import numpy as np
from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.db.models import Max, QuerySet

from annotate.models import Item, Project
from training.artifact_store import (
    artifact_discard,
    artifact_local,
    artifact_prefix_new,
    artifact_staging,
    artifact_upload,
)
from training.datasets import dataset_snapshot_create
from training.evaluation import CV_FOLDS
from training.models import DatasetSnapshot, ModelVersion
from training.proposals import proposal_acceptance

logger = logging.getLogger(__name__)

BACKEND_FOR_TASK = {
    Project.TaskType.TEXT_CLASSIFICATION: "text_logreg",
    Project.TaskType.IMAGE_CLASSIFICATION: "image_cnn",
    Project.TaskType.TEXT_SPANS: "span_crf",
}
# A text classification project's text_model, as a backend.
TEXT_BACKENDS = {"ngrams": "text_logreg", "encoder": "text_encoder"}
# A fit that learns from unlabeled items (the image network below 20 labels per class) reads at
# most this many of them, a seeded sample: label spreading over 5,000 images takes about a second.
UNLABELED_MAX = 5_000
NO_BOX_MODEL = "no box model yet: boxes get proposals from imported predictions (pre-annotations)"


class NoModelForTask(Exception):
    """The project's task type has no model to train; the message says so (and what to do)."""


def model_training_check(*, project: Project) -> None:
    """Raise NoModelForTask when no backend trains this project's task type (boxes, for now)."""
    if project.task_type == Project.TaskType.IMAGE_BOXES:
        raise NoModelForTask(NO_BOX_MODEL)
    if project.task_type not in BACKEND_FOR_TASK:
        raise NoModelForTask(f"no model trains {project.get_task_type_display().lower()} yet")


def backend_for_project(project: Project) -> str:
    """The backend that trains `project`: its task type's, or for text classification its text model's."""
    if project.task_type == Project.TaskType.TEXT_CLASSIFICATION:
        return TEXT_BACKENDS[project.text_model]
    return BACKEND_FOR_TASK[project.task_type]


def metric_headline(metrics: dict) -> tuple[str, float]:
    """The version's one figure and its name: entity F1 for spans, accuracy otherwise."""
    if metrics.get("task") == "spans":
        return "entity F1", float(metrics.get("f1", 0.0))
    return "accuracy", float(metrics.get("accuracy", 0.0))


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


def model_inputs(*, project: Project, backend, item_ids: list[int], progress=None):
    """What the backend reads for these items: text features, image arrays (cached per item), or
    for spans the texts with their tokens (the CRF's features are per token, made as it reads them).
    `progress(done, total)` follows the texts being featurized."""
    from training.features import IMAGE_SIZE, image_arrays, text_features

    if project.task_type == Project.TaskType.TEXT_SPANS:
        texts = dict(Item.objects.filter(pk__in=item_ids).values_list("pk", "text"))
        return span_documents([texts[i] for i in item_ids])
    if project.is_image:
        size = int(backend.params.get("input_size", IMAGE_SIZE))
        return image_arrays(project=project, item_ids=item_ids, size=size)
    return text_features(project=project, item_ids=item_ids, featurizer=backend.featurizer, progress=progress)


def unlabeled_inputs(
    *, project: Project, backend, labeled_ids, classes: list[str], multi_label: bool, seed: int = 0
):
    """The inputs of up to UNLABELED_MAX of the project's items outside the training set (a seeded
    sample), when the backend learns from unlabeled items at this many labels; else None.

    None too while some of the project's labels are not in the training set (too few labels to
    train them): pseudo-labels would put that class's items into the classes the model knows, make
    the model sure of them, and hide them from the queue's search for the missing classes
    (training/scoring.py scoring_strategy). On the digits, one split kept a class missing until 120
    labels that way."""
    if not backend.learns_from_unlabeled(
        n_labels=len(labeled_ids), n_classes=len(classes), multi_label=multi_label
    ):
        return None
    if set(project.labels.values_list("name", flat=True)) - set(classes):
        return None
    ids = list(Item.objects.filter(project=project).exclude(pk__in=list(labeled_ids)).order_by("id")
               .values_list("id", flat=True))  # fmt: skip
    if not ids:
        return None
    if len(ids) > UNLABELED_MAX:
        chosen = np.random.default_rng(seed).choice(len(ids), UNLABELED_MAX, replace=False)
        ids = [ids[i] for i in np.sort(chosen)]
    return model_inputs(project=project, backend=backend, item_ids=ids)


def span_documents(texts: list[str]) -> list[tuple[str, list[tuple[int, int]]]]:
    """What the span CRF reads: each text with its stated tokens (annotate/tokens.py)."""
    from annotate.tokens import tokens

    return [(text, tokens(text)) for text in texts]


def _targets(values: list[dict], classes: list[str], multi_label: bool) -> np.ndarray:
    index = {name: n for n, name in enumerate(classes)}
    if multi_label:
        Y = np.zeros((len(values), len(classes)), dtype=np.int8)
        for row, value in enumerate(values):
            for choice in value["choices"]:
                Y[row, index[choice]] = 1
        return Y
    return np.asarray([index[value["choices"][0]] for value in values], dtype=np.int64)


# metrics["label_issues"] and metrics["random_curve"] of a run with diagnostics=False.
DIAGNOSTICS_SKIPPED = {"status": "skipped", "reason": "the label-issue phase was off (a simulation)"}


# Services --------------------------------------------------------------------------------


def model_version_train(
    *,
    project: Project,
    created_by: AbstractBaseUser | None = None,
    backend_name: str | None = None,
    params: dict | None = None,
    seed: int = 0,
    folds: int = CV_FOLDS,
    activate: bool = True,
    diagnostics: bool = True,
    progress: Progress = _no_progress,
) -> ModelVersion:
    """Train, evaluate and store a new version from the project's final labels.

    One shape of run: `folds` fits of the project's backend (stratified k-fold) give every labeled
    item out-of-fold probabilities, from a model that never saw it; they give the version's metrics
    (pooled, and per fold in metrics["cv"]) and the suspicious labels, written to the items for the
    review queue (training/label_errors.py). Then the version's model is fitted once on all labels.

    A spans project runs the same shape with the span CRF (_spans_evaluate): plain k-fold, the
    entity metrics (seqeval), per-entity label issues.

    `diagnostics=False` (the active-learning simulation) skips the label-issue phase: no label
    issues found or written, no random-sampling curve (metrics["label_issues"] and
    metrics["random_curve"] say {"status": "skipped"}); the metrics and the fit are unchanged.
    With it, `folds=0` skips the k-fold fits too: the version is the same fit on all labels, with
    no metrics of its own (metrics["cv"]["folds"] == 0); the simulation measures it on its split.

    Raises NoModelForTask for a task type no backend trains (boxes), and
    training.datasets.NotEnoughLabels when there is too little to learn from. Nothing is
    stored unless every step succeeds; the active version changes only at the very end. The items'
    review columns depend on the labels and the fold models alone, so they are written as soon as
    they are known, before the final fit.
    """
    from training.backends import get_backend
    from training.evaluation import (
        TRAINED_ONLY,
        cross_validation_summary,
        evaluate,
        fold_assignments,
        macro_f1_without_unjudged,
    )
    from training.label_errors import label_issues_find, label_issues_store
    from training.model_card import training_data_summary, training_hardware
    from training.random_curve import random_curve_measure

    timings: dict[str, float] = {}
    started = time.perf_counter()

    def phase(finished: str, starting: str, percent: int) -> None:
        """Time the phase that just finished and announce the one starting."""
        nonlocal started
        now = time.perf_counter()
        timings[finished] = round(now - started, 3)
        started = now
        progress(starting, percent)

    model_training_check(project=project)
    progress("snapshot", 2)
    snapshot = dataset_snapshot_create(project=project)
    phase("snapshot", "load", 5)
    if backend_name is None:
        # The project's own backend, with the hyper-parameters its lead set (training/hyperparams.py).
        backend_name = backend_for_project(project)
        params = {**(project.training_params or {}), **(params or {})}
    params = dict(params or {})
    backend_class = get_backend(backend_name)
    # start_from names weights to start from, not a backend parameter (training/transfer.py):
    # every backend built below (the k-fold fits', the random curve's, the final fit) gets them.
    transfer = None
    if params.get("start_from") is not None:
        from training.transfer import transfer_source_load

        transfer = transfer_source_load(
            project=project, version_id=params["start_from"], backend_name=backend_name, params=params
        )
        backend_class = transfer.builder(backend_class)
    params.pop("start_from", None)
    backend = backend_class(**(params or {}))
    classes, multi_label = snapshot.classes, snapshot.multi_label
    X = model_inputs(
        project=project, backend=backend, item_ids=list(snapshot.item_ids),
        progress=lambda done, total: progress("load", 5 + 5 * done // max(total, 1)),
    )  # fmt: skip
    n = len(snapshot.item_ids)
    unlabeled = unlabeled_inputs(
        project=project, backend=backend, labeled_ids=snapshot.item_ids, classes=classes,
        multi_label=multi_label, seed=seed,
    )  # fmt: skip
    fit_extra = {} if unlabeled is None else {"unlabeled": unlabeled}
    if folds == 0:
        # No k-fold fits (a simulation, which scores every version on a held-out split of its own).
        if diagnostics:
            raise ValueError("folds=0 needs diagnostics=False: label issues come from the k-fold fits")
        spans = project.task_type == Project.TaskType.TEXT_SPANS
        Y = (
            [value["spans"] for value in snapshot.values]
            if spans
            else _targets(snapshot.values, classes, multi_label)
        )
        metrics = {
            "task": "spans" if spans else "classification", "classes": classes, "multi_label": multi_label,
            "n_train": n, "cv": {"folds": 0, "note": "no k-fold fits: the version was not evaluated"},
            "label_issues": DIAGNOSTICS_SKIPPED, "random_curve": DIAGNOSTICS_SKIPPED,
        }  # fmt: skip
        issues, k = None, 0
        phase("load", "fit", 60)
    elif project.task_type == Project.TaskType.TEXT_SPANS:
        Y = [value["spans"] for value in snapshot.values]
        metrics, issues, k = _spans_evaluate(
            project=project, snapshot=snapshot, make_backend=lambda: backend_class(**(params or {})),
            documents=X, folds=folds, seed=seed, progress=progress, phase=phase, diagnostics=diagnostics,
        )  # fmt: skip
    else:
        Y = _targets(snapshot.values, classes, multi_label)
        fold_of = fold_assignments(Y, multi_label=multi_label, folds=folds, seed=seed)
        k = int(fold_of.max()) + 1
        phase("load", "cross-validate", 10)
        fold_infos: list[dict] = []
        proba = out_of_fold_proba(
            make_backend=lambda: backend_class(**(params or {})), X=X, Y=Y, fold_of=fold_of,
            classes=classes, multi_label=multi_label, seed=seed,
            after_fold=lambda done: progress("cross-validate", 10 + round(45 * done / k)),
            fold_infos=fold_infos, fit_extra=fit_extra,
        )  # fmt: skip
        refit: dict = {}
        backend = _refit_backend(backend_class, params, backend, fold_infos, refit)
        phase("cross-validate", "evaluate", 55)
        # A class's only item trains every fold model and is judged by none (fold_assignments).
        judged = np.flatnonzero(fold_of != TRAINED_ONLY)
        metrics = evaluate(Y[judged], proba[judged], classes=classes, multi_label=multi_label, n_train=n)
        metrics["cv"] = cross_validation_summary(
            Y[judged], proba[judged], fold_of[judged], classes=classes, multi_label=multi_label
        )
        metrics["cv"]["trained_only"] = {classes[Y[i]]: 1 for i in np.flatnonzero(fold_of == TRAINED_ONLY)}
        macro_f1_without_unjudged(metrics, metrics["cv"]["trained_only"])
        metrics.update(refit)
        phase("evaluate", "label issues", 57)
        if diagnostics:
            issues = label_issues_find(
                labels=Y[judged], proba=proba[judged], classes=classes, multi_label=multi_label
            )
            label_issues_store(
                project=project, item_ids=[snapshot.item_ids[i] for i in judged],
                values=[snapshot.values[i] for i in judged], issues=issues,
            )  # fmt: skip
            metrics["label_issues"] = issues.summary()
            # What random sampling would have needed for this accuracy (training/random_curve.py).
            metrics["random_curve"] = random_curve_measure(
                project=project, snapshot=snapshot, X=X, Y=Y, target=metrics["accuracy"], seed=seed,
                make_backend=lambda: backend_class(**(params or {})), fit_extra=fit_extra,
            )  # fmt: skip
        else:
            issues = None
            metrics["label_issues"] = metrics["random_curve"] = DIAGNOSTICS_SKIPPED
        phase("label issues", "fit", 60)
    # Labels with too few items to train (training/datasets.py): the model does not propose them.
    metrics["classes_left_out"] = snapshot.classes_left_out
    if transfer is not None:
        metrics["transfer"] = transfer.summary()
    metrics["fit"] = backend.fit(X, Y, classes=classes, multi_label=multi_label, seed=seed, **fit_extra)
    # The model card's data and hardware (training/model_card.py).
    metrics["data"] = training_data_summary(snapshot=snapshot)
    metrics["hardware"] = training_hardware(fit_info=metrics["fit"])
    phase("fit", "store", 90)
    version = _version_store(
        project=project, snapshot=snapshot, backend=backend, metrics=metrics, created_by=created_by,
        timings=timings, activate=activate,
    )  # fmt: skip
    phase("store", "trained", 100)
    version.timings = timings
    version.save(update_fields=["timings"])
    logger.info(
        "trained %s: cross-validated %s=%.3f labels=%s folds=%s flagged=%s timings=%s",
        version, *metric_headline(metrics), n, k, len(issues.flagged) if issues else "-", timings,
    )  # fmt: skip
    return version


def _spans_evaluate(
    *, project, snapshot, make_backend, documents, folds, seed, progress, phase, diagnostics=True
):
    """A spans project's k-fold fits: (metrics with "cv" and "label_issues", the issues, k).

    Every labeled text is tagged by the fold model that did not see it; seqeval scores those
    tags against the labeled ones (training/evaluation.py evaluate_spans), and the token
    marginals find the doubtful entities (training/label_errors.py span_issues_find), written to
    the items as the classification issues are.
    """
    from training.backends.spans import spans_exact_key, spans_to_tags, tag_names
    from training.evaluation import evaluate_spans, span_cross_validation_summary, span_fold_assignments
    from training.label_errors import label_issues_store, span_issues_find
    from training.random_curve import random_curve_measure

    classes = snapshot.classes
    spans = [value["spans"] for value in snapshot.values]
    fold_of = span_fold_assignments(len(documents), folds=folds, seed=seed)
    k = int(fold_of.max()) + 1
    phase("load", "cross-validate", 10)
    predicted = [None] * len(documents)
    for fold in range(k):
        held_out = np.flatnonzero(fold_of == fold)
        seen = np.flatnonzero(fold_of != fold)
        model = make_backend()
        model.fit([documents[i] for i in seen], [spans[i] for i in seen], classes=classes, seed=seed)
        for i, prediction in zip(
            held_out, model.predict_marginals([documents[i] for i in held_out]), strict=True
        ):
            predicted[i] = prediction
        progress("cross-validate", 10 + round(45 * (fold + 1) / k))
    phase("cross-validate", "evaluate", 55)
    true_tags = [spans_to_tags(offsets, s)[0] for (_, offsets), s in zip(documents, spans, strict=True)]
    pred_tags = [p.tags for p in predicted]
    metrics = evaluate_spans(true_tags, pred_tags, classes=classes, n_train=len(documents))
    metrics["cv"] = span_cross_validation_summary(true_tags, pred_tags, fold_of, classes=classes)
    # The texts whose spans are exactly right: what the random slice estimates and the random
    # curve is inverted at (training/proposals.py, training/random_curve.py).
    metrics["exact_match"] = round(
        float(
            np.mean(
                [
                    spans_exact_key(p.spans) == spans_exact_key(s)
                    for p, s in zip(predicted, spans, strict=True)
                ]
            )
        ),
        4,
    )
    phase("evaluate", "label issues", 57)
    if not diagnostics:
        metrics["label_issues"] = DIAGNOSTICS_SKIPPED
        phase("label issues", "fit", 60)
        return metrics, None, k
    issues = span_issues_find(
        true_tags=true_tags, predictions=predicted, tags=tag_names(classes), values=snapshot.values
    )
    label_issues_store(project=project, item_ids=snapshot.item_ids, values=snapshot.values, issues=issues)
    metrics["label_issues"] = issues.summary()
    metrics["random_curve"] = random_curve_measure(
        project=project, snapshot=snapshot, X=documents, Y=spans, target=metrics["exact_match"], seed=seed,
        make_backend=make_backend,
    )  # fmt: skip
    phase("label issues", "fit", 60)
    return metrics, issues, k


def _refit_backend(backend_class, params: dict | None, backend, fold_infos: list[dict], out: dict):
    """The backend of the final fit on all labels. Where the fold models stopped early (the image
    network), the refit trains the folds' median best epoch count with no slice held out, and
    out["refit"] says so; otherwise `backend` as it is."""
    best = [info["best_epoch"] for info in fold_infos if info.get("validation_rows")]
    if not best:
        return backend
    epochs = int(np.median(best))
    first = next(info for info in fold_infos if info.get("validation_rows"))
    out["refit"] = {
        "epochs": epochs, "best_epochs_of_folds": best,
        "loss_curve": first["loss_curve"], "best_epoch_of_fold_1": first["best_epoch"],
    }  # fmt: skip
    return backend_class(**{**(params or {}), "epochs": epochs, "early_stopping": False})


def out_of_fold_proba(
    *,
    make_backend: Callable[[], object],
    X,
    Y: np.ndarray,
    fold_of: np.ndarray,
    classes: list[str],
    multi_label: bool,
    seed: int = 0,
    after_fold: Callable[[int], None] | None = None,
    fold_infos: list | None = None,
    fit_extra: dict | None = None,
) -> np.ndarray:
    """Every row's class probabilities from the one fold model that did not see it.

    Fold f's model is a fresh backend from `make_backend`, fitted on the rows outside fold f and
    asked only for the rows inside it. `after_fold(done)` is called after each fold (the run's
    progress and cancellation point). Each fold model's fit_info is appended to `fold_infos`.
    `fit_extra` goes to every fit (the unlabeled items' inputs: never a labeled row's label).
    """
    proba = np.zeros((len(Y), len(classes)), dtype=np.float64)
    for fold in range(int(fold_of.max()) + 1):
        held_out = np.flatnonzero(fold_of == fold)
        seen = np.flatnonzero(fold_of != fold)
        model = make_backend()
        info = model.fit(
            X[seen], Y[seen], classes=classes, multi_label=multi_label, seed=seed, **(fit_extra or {})
        )
        if fold_infos is not None:
            fold_infos.append(info)
        proba[held_out] = model.predict_proba(X[held_out])
        if after_fold is not None:
            after_fold(fold + 1)
    return proba


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
            matrix = metrics.get("confusion_matrix")
            version = ModelVersion.objects.create(
                project=project,
                number=number,
                backend=backend.name,
                params=backend.params,
                dataset=snapshot,
                metrics=metrics,
                artifact_path=prefix,
                confusion_svg=confusion_matrix_svg(matrix, snapshot.classes)
                if matrix is not None and not snapshot.multi_label
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

    versions = list(ModelVersion.objects.filter(project=project).order_by("number"))
    points = [
        {
            "n_labels": v.metrics.get("n_train", 0),
            # Spans have no accuracy: their curve is entity F1 (no interval: entities are not
            # independent trials the way items are).
            "accuracy": metric_headline(v.metrics)[1],
            "ci_low": v.metrics.get("accuracy_ci", [None, None])[0],
            "ci_high": v.metrics.get("accuracy_ci", [None, None])[1],
            "version": v.number,
        }
        for v in versions
    ]
    measure = metric_headline(versions[-1].metrics)[0] if versions else "accuracy"
    return learning_curve_svg(points, title=f"Learning curve · {project.name}", measure=measure)


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
