"""Training services: turn a project's final labels into an evaluated, stored model version.

model_version_train is the whole pipeline as one plain function call (snapshot, inputs, fit,
evaluate, store, pictures); Celery tasks and commands only call it.
"""

import json
import logging
import threading
import time
from collections.abc import Callable
from datetime import timedelta
from functools import lru_cache

import numpy as np
from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db import IntegrityError, connection, transaction
from django.db.models import Count, Max, Q, QuerySet
from django.utils import timezone

from annotate.models import Annotation, Item, Project
from annotate.queue import queue_reordering, queue_reordering_end
from annotate.rows import columns, from_row
from training.artifact_store import (
    artifact_discard,
    artifact_local,
    artifact_prefix_new,
    artifact_staging,
    artifact_upload,
)
from training.datasets import NotEnoughLabels, dataset_snapshot_create
from training.models import DatasetSnapshot, ModelVersion, Prediction, TrainingRun

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


def model_version_active(*, project: Project) -> ModelVersion | None:
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
    """Make `version` the project's active model (the one that proposes labels and orders the queue)."""
    ModelVersion.objects.filter(project_id=version.project_id, is_active=True).exclude(pk=version.pk).update(
        is_active=False
    )
    ModelVersion.objects.filter(pk=version.pk).update(is_active=True)
    version.is_active = True
    return version


# Training runs ---------------------------------------------------------------------------


class RunCancelled(Exception):
    """The run was cancelled while it ran; raised at the next progress point."""


def training_run_list(*, project: Project) -> QuerySet[TrainingRun]:
    return TrainingRun.objects.filter(project=project).select_related("model_version", "requested_by")


def training_run_request(
    *, project: Project, trigger: str, requested_by: AbstractBaseUser | None = None
) -> tuple[TrainingRun, bool]:
    """Queue a run of the project, or return the one already queued or running (coalesced).

    Returns (run, created). The task is dispatched when this transaction commits, so a worker
    never looks for a row that is not there yet.
    """
    from training import tasks

    existing = TrainingRun.objects.filter(project=project, status__in=TrainingRun.OPEN_STATUSES).first()
    if existing is not None:
        return existing, False
    last_annotation_id = (
        Annotation.objects.filter(project=project).order_by("-id").values_list("id", flat=True).first() or 0
    )
    try:
        with transaction.atomic():
            run = TrainingRun.objects.create(
                project=project,
                trigger=trigger,
                requested_by=requested_by,
                last_annotation_id=last_annotation_id,
            )
    except IntegrityError:
        # Another request won the race for the project's one open run: join it.
        return TrainingRun.objects.get(project=project, status__in=TrainingRun.OPEN_STATUSES), False
    tasks.training_run_execute.delay_on_commit(run.pk)
    logger.info("training run %s queued for project %s (%s)", run.pk, project.pk, trigger)
    return run, True


def training_auto_request(*, project: Project) -> TrainingRun | None:
    """Queue a run when the project retrains every N labels and N have come since the last run."""
    if not project.retrain_every:
        return None
    last = (
        TrainingRun.objects.filter(project=project).order_by("-id").values_list("last_annotation_id").first()
    )
    since = Annotation.objects.filter(project=project, id__gt=last[0] if last else 0).count()
    if since < project.retrain_every:
        return None
    run, _ = training_run_request(project=project, trigger=f"auto: {since} new labels")
    return run


def _run_update(run_id: int, **fields) -> int:
    return TrainingRun.objects.filter(pk=run_id).update(**fields)


class _Heartbeat(threading.Thread):
    """Writes the run's heartbeat every `interval` seconds from its own connection until stopped."""

    def __init__(self, run_id: int, interval: float) -> None:
        super().__init__(name=f"heartbeat-{run_id}", daemon=True)
        self.run_id, self.interval, self.stopped = run_id, interval, threading.Event()

    def run(self) -> None:
        try:
            while not self.stopped.wait(self.interval):
                _run_update(self.run_id, heartbeat_at=timezone.now())
        finally:
            connection.close()


def training_run_execute(*, run_id: int) -> TrainingRun:
    """Run a queued training run to its end: train, score the pool, then activate the new version.

    A run that is no longer queued (finished, cancelled, or taken by another worker) is left
    alone. Failure or cancellation leaves the active version in place.
    """
    now = timezone.now()
    claimed = TrainingRun.objects.filter(pk=run_id, status=TrainingRun.Status.QUEUED).update(
        status=TrainingRun.Status.RUNNING, started_at=now, heartbeat_at=now, phase="starting", progress=1
    )
    run = TrainingRun.objects.select_related("project").get(pk=run_id)
    if not claimed:
        logger.info("training run %s is %s: nothing to do", run_id, run.status)
        return run
    heartbeat = _Heartbeat(run_id, settings.LABELLOOP_RUN_HEARTBEAT_SECONDS)
    heartbeat.start()
    started = time.perf_counter()

    def progress(phase: str, percent: int) -> None:
        _run_update(run_id, phase=phase, progress=percent, heartbeat_at=timezone.now())
        if TrainingRun.objects.filter(pk=run_id, cancel_requested=True).exists():
            raise RunCancelled()

    try:
        version = model_version_train(
            project=run.project,
            created_by=run.requested_by,
            activate=False,
            progress=lambda phase, pct: progress(phase, round(pct * 0.7)),
        )
        _run_update(run_id, model_version=version, dataset_size=len(version.dataset.item_ids))
        scored = prediction_pool_score(
            version=version,
            progress=lambda done, total: progress("score", 70 + round(29 * done / max(total, 1))),
        )
        with transaction.atomic():
            current = TrainingRun.objects.select_for_update().get(pk=run_id)
            if current.cancel_requested or current.status != TrainingRun.Status.RUNNING:
                raise RunCancelled()
            model_version_activate(version=version)
            _run_update(
                run_id, status=TrainingRun.Status.SUCCEEDED, finished_at=timezone.now(), progress=100,
                phase="done", items_scored=scored,
            )  # fmt: skip
        logger.info(
            "training run %s succeeded: v%s, %s items scored, %.1f s", run_id, version.number, scored,
            time.perf_counter() - started,
        )  # fmt: skip
    except RunCancelled:
        _run_update(
            run_id, status=TrainingRun.Status.CANCELLED, finished_at=timezone.now(), phase="cancelled"
        )
        logger.info("training run %s cancelled", run_id)
    except NotEnoughLabels as exc:
        training_run_fail(run_id=run_id, reason=str(exc))
    except Exception as exc:
        logger.exception("training run %s failed", run_id)
        training_run_fail(run_id=run_id, reason=f"{type(exc).__name__}: {exc}")
        raise
    finally:
        heartbeat.stopped.set()
        heartbeat.join(timeout=5)
    run.refresh_from_db()
    return run


def training_run_fail(*, run_id: int, reason: str) -> bool:
    """Mark an open run failed with `reason`; a run already finished is left as it is."""
    failed = TrainingRun.objects.filter(pk=run_id, status__in=TrainingRun.OPEN_STATUSES).update(
        status=TrainingRun.Status.FAILED, error=reason[:5000], finished_at=timezone.now(), phase="failed"
    )
    if failed:
        logger.warning("training run %s failed: %s", run_id, reason)
    return bool(failed)


def training_run_cancel(*, run: TrainingRun) -> TrainingRun:
    """Cancel a queued run at once, or ask a running one to stop at its next progress point."""
    if run.status == TrainingRun.Status.QUEUED:
        TrainingRun.objects.filter(pk=run.pk, status=TrainingRun.Status.QUEUED).update(
            status=TrainingRun.Status.CANCELLED, finished_at=timezone.now(), phase="cancelled"
        )
    TrainingRun.objects.filter(pk=run.pk, status=TrainingRun.Status.RUNNING).update(cancel_requested=True)
    run.refresh_from_db()
    return run


def training_runs_sweep(*, now=None) -> list[int]:
    """Fail running runs whose heartbeat is older than LABELLOOP_RUN_STALE_SECONDS ("worker lost")."""
    now = now or timezone.now()
    stale = now - timedelta(seconds=settings.LABELLOOP_RUN_STALE_SECONDS)
    runs = list(
        TrainingRun.objects.filter(status=TrainingRun.Status.RUNNING, heartbeat_at__lt=stale).values_list(
            "id", "project_id"
        )
    )
    failed = []
    for run_id, project_id in runs:
        if training_run_fail(run_id=run_id, reason="worker lost"):
            # Its worker may have died while rewriting priorities: the order stands again now.
            queue_reordering_end(project_id=project_id)
            failed.append(run_id)
    return failed


# Scoring the pool ------------------------------------------------------------------------


def prediction_pool_score(
    *, version: ModelVersion, batch_size: int = 2000, progress: Callable[[int, int], None] | None = None
) -> int:
    """Predict every item still in the queue, store the proposals and set each item's priority.

    Works in keyset batches of `batch_size` items, so memory stays flat whatever the pool size.
    Priority is the project's sampling strategy score (margin by default): the queue then
    serves the least certain item first with no change to its query.
    """
    project = version.project
    backend = model_version_backend(version)
    pool = Item.objects.filter(project=project, is_complete=False)
    total = pool.count()
    # Annotators' bookmarks assume the order stands: none is used or written meanwhile.
    with queue_reordering(project_id=project.pk):
        return _pool_score_batches(pool, version=version, backend=backend, batch_size=batch_size,
                                   total=total, progress=progress)  # fmt: skip


def _pool_score_batches(pool, *, version, backend, batch_size, total, progress) -> int:
    from training.strategies import proposals, scores

    project = version.project
    classes = version.dataset.classes
    multi_label = version.dataset.multi_label
    done, last_id = 0, 0
    while True:
        batch = list(pool.filter(id__gt=last_id).order_by("id").values_list("id", "text")[:batch_size])
        if not batch:
            break
        ids = [item_id for item_id, _ in batch]
        last_id = ids[-1]
        if project.is_image:
            X = model_inputs(project=project, backend=backend, item_ids=ids)
        else:
            # The pool is scored once per run: hash its texts directly rather than grow the cache.
            X = backend.featurize([text for _, text in batch])
        proba = backend.predict_proba(X)
        values, confidence = proposals(proba, classes, multi_label=multi_label)
        uncertainty = scores(project.sampling_strategy, proba, multi_label=multi_label, seed=version.number)
        _predictions_store(version, ids, values, proba, confidence, uncertainty)
        done += len(ids)
        if progress is not None:
            progress(done, total)
    return done


def _predictions_store(version, ids, values, proba, confidence, uncertainty) -> None:
    """Upsert one batch's predictions and write the items' priorities.

    On PostgreSQL each is one statement over arrays (unnest): Django's bulk_update builds a
    CASE of one branch per row, which cost 20 s of Python for a 100,000-item pool.
    """
    probabilities = [json.dumps([round(float(p), 5) for p in row]) for row in proba]
    rows = (
        [int(i) for i in ids],
        [json.dumps(v) for v in values],
        probabilities,
        [float(c) for c in confidence],
        [float(u) for u in uncertainty],
    )
    prediction_table, item_table = Prediction._meta.db_table, Item._meta.db_table
    columns = "item_id, model_version_id, value, probabilities, score, uncertainty"
    insert = f"INSERT INTO {prediction_table} ({columns})"
    with transaction.atomic(), connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(
                insert
                + " SELECT v.item_id, %s, v.value::jsonb, v.probabilities::jsonb, v.score, v.uncertainty"
                " FROM unnest(%s::bigint[], %s::text[], %s::text[], %s::float8[], %s::float8[])"
                " AS v(item_id, value, probabilities, score, uncertainty)"
                " ON CONFLICT (item_id, model_version_id) DO UPDATE SET value = EXCLUDED.value,"
                " probabilities = EXCLUDED.probabilities, score = EXCLUDED.score,"
                " uncertainty = EXCLUDED.uncertainty",
                [version.pk, *rows],
            )
            cursor.execute(
                f"UPDATE {item_table} AS i SET priority = v.priority"
                " FROM unnest(%s::bigint[], %s::float8[]) AS v(id, priority) WHERE i.id = v.id",
                [rows[0], rows[4]],
            )
        else:
            cursor.executemany(
                insert
                + " VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT (item_id, model_version_id) DO UPDATE SET"
                " value = excluded.value, probabilities = excluded.probabilities, score = excluded.score,"
                " uncertainty = excluded.uncertainty",
                [(i, version.pk, v, p, c, u) for i, v, p, c, u in zip(*rows, strict=True)],
            )
            cursor.executemany(
                f"UPDATE {item_table} SET priority = %s WHERE id = %s",
                list(zip(rows[4], rows[0], strict=True)),
            )


def proposal_for(*, item: Item) -> dict | None:
    """The label proposed for `item`: the active version's prediction, else one imported with the data."""
    # On the labeling page's path (next item): SQL, see annotate/rows.py.
    fields = ("value", "score", "model_version_id")
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT {columns(Prediction, 'p', fields)} FROM {Prediction._meta.db_table} p"
            f" JOIN {ModelVersion._meta.db_table} v ON v.id = p.model_version_id"
            " WHERE p.item_id = %s AND v.is_active LIMIT 1",
            [item.pk],
        )
        row = cursor.fetchone()
    if row is not None:
        prediction = from_row(Prediction, row, fields)
        return {
            "value": prediction.value,
            "score": round(prediction.score, 4),
            "model_version": prediction.model_version_id,
        }
    return item.proposal


def proposal_acceptance(*, project: Project) -> dict[int, dict]:
    """Per model version id: proposals shown, accepted as they were, and the rate."""
    rows = (
        Annotation.objects.filter(project=project, proposal_model_version_id__isnull=False)
        .values("proposal_model_version_id")
        .annotate(shown=Count("id"), accepted=Count("id", filter=Q(proposal_accepted=True)))
    )
    return {
        r["proposal_model_version_id"]: {
            "shown": r["shown"],
            "accepted": r["accepted"],
            "rate": r["accepted"] / r["shown"] if r["shown"] else None,
        }  # fmt: skip
        for r in rows
    }
