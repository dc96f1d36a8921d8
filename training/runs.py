"""Training runs: request one (coalesced, or every N new labels), execute it with a heartbeat,
fail, cancel, and sweep the runs whose worker was lost.

A run is queued → running → succeeded | failed | cancelled. Most runs train a new version
(k-fold fits, the suspicious labels written for review, then the final fit: model_version_train,
each a phase on the progress bar), score the pool with it and activate it; an activation run (a
rollback from the admin) scores the pool with an existing version and activates that one. Either
way the active version changes only at the very end, once the queue's order and proposals come
from it.
"""

import errno
import logging
import threading
import time
from datetime import timedelta

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db import IntegrityError, connection, transaction
from django.db.models import QuerySet
from django.utils import timezone

from annotate.audit import Action, audit_record
from annotate.models import Annotation, Project
from annotate.queue import queue_reordering_end
from training.datasets import NotEnoughLabels
from training.models import ModelVersion, TrainingRun
from training.scoring import prediction_pool_score
from training.versions import (
    NoModelForTask,
    model_training_check,
    model_version_activate,
    model_version_train,
)

logger = logging.getLogger(__name__)


DISK_FULL = (
    "the disk is full ({exc}): the new model's files could not be stored, nothing of them was kept"
    " and the active model is unchanged. Free some space, then train again."
)


class RunCancelled(Exception):
    """The run was cancelled while it ran; raised at the next progress point."""


class _VersionGone(Exception):
    """The version an activation run was to activate no longer exists."""


def training_run_list(*, project: Project) -> QuerySet[TrainingRun]:
    """The project's runs, newest first."""
    return TrainingRun.objects.filter(project=project).select_related("model_version", "requested_by")


def training_run_request(
    *, project: Project, trigger: str, requested_by: AbstractBaseUser | None = None
) -> tuple[TrainingRun, bool]:
    """Queue a run that trains the project, or return the one already queued or running (coalesced).

    Returns (run, created). The task is dispatched when this transaction commits, so a worker
    never looks for a row that is not there yet. Raises training.versions.NoModelForTask, with
    nothing stored, for a project no model trains (boxes: training.versions.NO_BOX_MODEL).
    """
    model_training_check(project=project)
    last_annotation_id = (
        Annotation.objects.filter(project=project).order_by("-id").values_list("id", flat=True).first() or 0
    )
    return _run_queue(
        project=project, trigger=trigger, requested_by=requested_by, last_annotation_id=last_annotation_id
    )


def training_run_request_activation(
    *, version: ModelVersion, requested_by: AbstractBaseUser | None = None
) -> tuple[TrainingRun, bool]:
    """Queue a run that re-scores the pool with `version`, then activates it (a rollback).

    Returns (run, created) as training_run_request does: while another run is open nothing is
    queued and that run comes back (its `model_version` tells whether it activates `version`).
    """
    return _run_queue(
        project=version.project,
        trigger=f"activate v{version.number}",
        requested_by=requested_by,
        kind=TrainingRun.Kind.ACTIVATE,
        model_version=version,
    )


def _run_queue(*, project: Project, trigger: str, requested_by, **fields) -> tuple[TrainingRun, bool]:
    from training import tasks

    existing = TrainingRun.objects.filter(project=project, status__in=TrainingRun.OPEN_STATUSES).first()
    if existing is not None:
        return existing, False
    try:
        with transaction.atomic():
            run = TrainingRun.objects.create(
                project=project, trigger=trigger, requested_by=requested_by, **fields
            )
            _audit_run(run, actor=requested_by)
    except IntegrityError:
        # Another request won the race for the project's one open run: join it.
        return TrainingRun.objects.get(project=project, status__in=TrainingRun.OPEN_STATUSES), False
    tasks.training_run_execute.delay_on_commit(run.pk)
    logger.info("training run %s queued for project %s (%s)", run.pk, project.pk, trigger)
    return run, True


def _audit_run(run: TrainingRun, *, actor) -> None:
    """The run's request in the audit log, in the transaction that queues it; a request that
    joins an open run changes nothing and is not logged."""
    if run.kind == TrainingRun.Kind.ACTIVATE:
        detail = {"run": run.pk, "version": run.model_version.number, "trigger": run.trigger}
        audit_record(actor=actor, project=run.project, action=Action.MODEL_ACTIVATED, detail=detail)
    else:
        detail = {"run": run.pk, "trigger": run.trigger}
        audit_record(actor=actor, project=run.project, action=Action.RETRAINING_REQUESTED, detail=detail)


def training_auto_request(*, project: Project) -> TrainingRun | None:
    """Queue a run when the project retrains every N labels and N have come since the last training."""
    if not project.retrain_every:
        return None
    try:
        model_training_check(project=project)
    except NoModelForTask:
        return None  # nothing to retrain: no failed run for every N labels
    last = (
        TrainingRun.objects.filter(project=project, kind=TrainingRun.Kind.TRAIN)
        .order_by("-id")
        .values_list("last_annotation_id")
        .first()
    )
    since = Annotation.objects.filter(project=project, id__gt=last[0] if last else 0).count()
    if since < project.retrain_every:
        return None
    run, _ = training_run_request(project=project, trigger=f"auto: {since} new labels")
    return run


def training_auto_request_receiver(*, project: Project, **kwargs) -> None:
    """Receiver of annotate.signals.annotations_stored (connected in TrainingConfig.ready)."""
    training_auto_request(project=project)


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
    """Run a queued run to its end: train (unless it activates an existing version), score the
    pool, then activate the version.

    A run that is no longer queued (finished, cancelled, or taken by another worker) is left
    alone. Failure or cancellation leaves the active version in place.
    """
    now = timezone.now()
    claimed = TrainingRun.objects.filter(pk=run_id, status=TrainingRun.Status.QUEUED).update(
        status=TrainingRun.Status.RUNNING, started_at=now, heartbeat_at=now, phase="starting", progress=1
    )
    run = TrainingRun.objects.select_related("project", "model_version__dataset").get(pk=run_id)
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
        if run.kind == TrainingRun.Kind.ACTIVATE:
            # The foreign key is SET_NULL: a version deleted since the request leaves nothing to do.
            version, score_from = run.model_version, 1
            if version is None:
                raise _VersionGone("the version to activate no longer exists")
        else:
            version = model_version_train(
                project=run.project,
                created_by=run.requested_by,
                activate=False,
                progress=lambda phase, pct: progress(phase, round(pct * 0.7)),
            )
            _run_update(run_id, model_version=version, dataset_size=len(version.dataset.item_ids))
            score_from = 70
        scored = prediction_pool_score(
            version=version,
            progress=lambda done, total: progress(
                "score", score_from + round((99 - score_from) * done / max(total, 1))
            ),
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
    except (NotEnoughLabels, NoModelForTask, _VersionGone) as exc:
        training_run_fail(run_id=run_id, reason=str(exc))
    except OSError as exc:
        if exc.errno != errno.ENOSPC:
            logger.exception("training run %s failed", run_id)
            training_run_fail(run_id=run_id, reason=f"{type(exc).__name__}: {exc}")
            raise
        # Not a bug to report: the machine's to fix. The version's files were deleted again
        # (artifact_upload) and no version row was written, so the active one stays.
        logger.error("training run %s failed: the disk is full (%s)", run_id, exc)
        training_run_fail(run_id=run_id, reason=DISK_FULL.format(exc=exc))
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
