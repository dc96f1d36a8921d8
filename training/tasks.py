"""Celery tasks of the training app: thin wrappers that call the services (training/runs.py,
training/coldstart.py, training/predict.py).

Runs go to the `training` queue (a worker with concurrency 1, prefork pool). acks_late without
reject_on_worker_lost: a run killed with its worker is not redelivered (an out-of-memory kill
would repeat forever); the sweeper fails it instead, at worker start and every minute.
Predictions go to the `predict` queue, whose worker keeps each model loaded between requests;
theirs is the one task that keeps its result, which the waiting web process reads.
"""

import time

from celery import shared_task
from celery.contrib.django.task import DjangoTask
from celery.exceptions import SoftTimeLimitExceeded
from celery.signals import worker_process_init, worker_ready
from celery.utils.log import get_task_logger

logger = get_task_logger(__name__)

# Seconds a run may take: the soft limit fails it cleanly, the hard one kills the process.
SOFT_TIME_LIMIT = 3600


@worker_process_init.connect
def _one_torch_thread(**kwargs) -> None:
    # The web server and PostgreSQL share the 2 cores; a second call would raise, so once per process.
    import torch

    torch.set_num_threads(1)
    torch.set_num_interop_threads(1)


@worker_ready.connect
def _sweep_at_start(**kwargs) -> None:
    from training import runs

    failed = runs.training_runs_sweep()
    if failed:
        logger.warning("runs failed at worker start (worker lost): %s", failed)


class _TrainingRunTask(DjangoTask):
    def on_failure(self, exc, task_id, args, kwargs, einfo) -> None:
        from training import runs

        run_id = args[0] if args else kwargs.get("run_id")
        runs.training_run_fail(run_id=run_id, reason=f"{type(exc).__name__}: {exc}")


@shared_task(
    base=_TrainingRunTask,
    acks_late=True,
    reject_on_worker_lost=False,
    ignore_result=True,
    soft_time_limit=SOFT_TIME_LIMIT,
    time_limit=SOFT_TIME_LIMIT + 60,
)
def training_run_execute(run_id: int) -> None:
    """Run training run `run_id` (runs.training_run_execute); a finished run is left alone."""
    from training import runs

    started = time.perf_counter()
    try:
        run = runs.training_run_execute(run_id=run_id)
    except SoftTimeLimitExceeded:
        runs.training_run_fail(run_id=run_id, reason="time limit reached")
        return
    logger.info("training run %s ended %s in %.1f s", run_id, run.status, time.perf_counter() - started)


@shared_task(ignore_result=True)
def training_runs_sweep() -> None:
    """Fail running runs whose heartbeat went silent (runs.training_runs_sweep)."""
    from training import runs

    failed = runs.training_runs_sweep()
    if failed:
        logger.warning("runs failed by the sweeper (worker lost): %s", failed)


@shared_task(ignore_result=True, soft_time_limit=600, time_limit=660)
def cold_start_compute(project_id: int) -> None:
    """Write the diverse seed set of project `project_id` (coldstart.cold_start_compute)."""
    from annotate.models import Project
    from training import coldstart

    project = Project.objects.filter(pk=project_id).first()
    if project is None:
        return  # deleted since the import
    written = coldstart.cold_start_compute(project=project)
    logger.info("cold start of project %s: %s items in the seed set", project_id, written)


@shared_task(
    ignore_result=False,
    # Acknowledged on receipt: a prediction lost with its worker is not worth redoing, since its
    # web request has given up by then (and on Redis it would come back hours later).
    acks_late=False,
    soft_time_limit=60,
    time_limit=90,
)
def predictions_compute(
    version_id: int,
    artifact_path: str,
    texts: list[str] | None = None,
    image_names: list[str] | None = None,
):
    """Predictions of model version `version_id` (its files at `artifact_path`) for `texts` or the
    stored images `image_names` (predict.predictions_compute); the web process waits for this result.

    The one task that does not load its row: Celery's Django fix-up closes the database connection
    around every task, so a query meant a new connection, 8 ms of a 20 ms prediction on PostgreSQL.
    A version's artifact path never changes, so the web process sends it along.
    """
    from training import predict

    return predict.predictions_compute(
        version_id=version_id, artifact_path=artifact_path, texts=texts, image_names=image_names
    )
