"""Celery tasks of the annotate app: thin wrappers that load a row's id and call one service."""

from celery import shared_task
from celery.utils.log import get_task_logger

logger = get_task_logger(__name__)


@shared_task(acks_late=True, ignore_result=True, soft_time_limit=3600, time_limit=3660)
def item_import_run(job_id: int) -> None:
    """Run import job `job_id` (importers.item_import_run_job); a job that is not queued is left alone."""
    # Imported here: importers dispatches this task, so a module-level import would be a cycle.
    from annotate import importers

    importers.item_import_run_job(job_id=job_id)


@shared_task(acks_late=True, ignore_result=True, soft_time_limit=3600, time_limit=3660)
def item_export_run(job_id: int) -> None:
    """Write export job `job_id` to its file (exporters.item_export_run_job)."""
    from annotate import exporters
    from annotate.models import ExportJob

    try:
        exporters.item_export_run_job(job_id=job_id)
    except ExportJob.DoesNotExist:
        # Its project was deleted while the job waited in the queue.
        logger.warning("export job gone: job=%s", job_id)
