"""Celery tasks of the annotate app: thin wrappers that load a row's id and call one service."""

from celery import shared_task
from celery.utils.log import get_task_logger

logger = get_task_logger(__name__)


# Seconds an import may take before Celery kills it (a job running for longer has lost its worker).
IMPORT_TIME_LIMIT = 3660


# The services are imported inside each task: they dispatch these tasks, so a module-level
# import would be a cycle.


@shared_task(acks_late=True, ignore_result=True, soft_time_limit=3600, time_limit=IMPORT_TIME_LIMIT)
def item_import_run(job_id: int) -> None:
    """Run import job `job_id` (importing.item_import_run_job); a job that is not queued is left alone."""
    from annotate import importing

    importing.item_import_run_job(job_id=job_id)


@shared_task(acks_late=True, ignore_result=True, soft_time_limit=3600, time_limit=3660)
def item_export_run(job_id: int) -> None:
    """Write export job `job_id` to its file (exporting.item_export_run_job); a job that is not
    queued is left alone."""
    from annotate import exporting
    from annotate.models import ExportJob

    try:
        exporting.item_export_run_job(job_id=job_id)
    except ExportJob.DoesNotExist:
        # Its project was deleted while the job waited in the queue.
        logger.warning("export job gone: job=%s", job_id)


@shared_task(ignore_result=True)
def import_jobs_sweep() -> None:
    """Fail import jobs whose worker was lost (importing.import_jobs_sweep)."""
    from annotate import importing

    failed = importing.import_jobs_sweep()
    if failed:
        logger.warning("import jobs failed by the sweeper (worker lost): %s", failed)


@shared_task(ignore_result=True)
def export_jobs_sweep() -> None:
    """Fail export jobs whose worker was lost (exporting.export_jobs_sweep)."""
    from annotate import exporting

    failed = exporting.export_jobs_sweep()
    if failed:
        logger.warning("export jobs failed by the sweeper (worker lost): %s", failed)


@shared_task(acks_late=True, ignore_result=True, soft_time_limit=1800, time_limit=1860)
def project_consensus_recompute(project_id: int) -> None:
    """Recompute project `project_id`'s final labels by its consensus method
    (quality.recompute.project_consensus_recompute); idempotent, so a redelivery only repeats it."""
    from annotate.models import Project
    from annotate.quality import recompute

    project = Project.objects.filter(pk=project_id).first()
    if project is None:
        # Deleted while the task waited in the queue.
        logger.warning("consensus recompute: project gone: project=%s", project_id)
        return
    recompute.project_consensus_recompute(project=project)
