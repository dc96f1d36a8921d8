"""Celery tasks of the training app: thin wrappers that call the services (training/runs.py,
training/coldstart.py).

Runs go to the `training` queue (a worker with concurrency 1, prefork pool). acks_late without
reject_on_worker_lost: a run killed with its worker is not redelivered (an out-of-memory kill
would repeat forever); the sweeper fails it instead, at worker start and every minute.
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
