"""Export requests and background export jobs.

`export_request` decides, for the page and the API alike, whether an export streams or becomes a
background job (a project over LABELLOOP_EXPORT_STREAM_MAX_ITEMS items, or when asked). Jobs
follow annotate.jobs' lifecycle: claimed by a conditional update, a heartbeat with their progress
(and at least every HEARTBEAT_SECONDS), finished; `export_jobs_sweep` fails the running ones
whose worker was lost.
"""

import logging
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.core.files import File
from django.db import transaction
from django.db.models import QuerySet
from django.utils import timezone

from annotate import tasks
from annotate.audit import Action, audit_record
from annotate.exporting.formats import CONTENT_TYPES, export_filename, export_format_check, export_stream
from annotate.items import item_list
from annotate.jobs import JobProgress, job_claim, job_finish, jobs_sweep
from annotate.models import ExportJob, Project

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ExportAnswer:
    """What an export request gets: a `job` started in the background, or else `chunks` to stream
    with their `content_type` (without charset) and download `filename`."""

    job: ExportJob | None = None
    chunks: Iterator[str] | None = None
    content_type: str = ""
    filename: str = ""


def export_request(
    *,
    project: Project,
    format: str,
    labeled_only: bool = False,
    reviewed_only: bool = False,
    selection: dict | None = None,
    requested_by: AbstractBaseUser | None = None,
    background: bool = False,
    base_url: str = "",
) -> ExportAnswer:
    """Stream the export of `project`, or start a background job when it has more than
    LABELLOOP_EXPORT_STREAM_MAX_ITEMS items (or `background`); ValidationError for a bad format.

    `base_url` (the request's "https://host") makes image URLs absolute, in the job's file too.
    """
    export_format_check(format, project)
    if background or item_list(project=project).count() > settings.LABELLOOP_EXPORT_STREAM_MAX_ITEMS:
        job = item_export_start(
            project=project,
            format=format,
            labeled_only=labeled_only,
            reviewed_only=reviewed_only,
            selection=selection,
            created_by=requested_by,
            base_url=base_url,
        )
        return ExportAnswer(job=job)
    audit_record(
        actor=requested_by,
        project=project,
        action=Action.EXPORT,
        detail=_export_detail(format, labeled_only, reviewed_only, selection),
    )
    return ExportAnswer(
        chunks=export_stream(
            project=project,
            format=format,
            labeled_only=labeled_only,
            reviewed_only=reviewed_only,
            selection=selection,
            base_url=base_url,
        ),
        content_type=CONTENT_TYPES[format],
        filename=export_filename(project, format),
    )


def item_export_start(
    *,
    project: Project,
    format: str,
    labeled_only: bool = False,
    reviewed_only: bool = False,
    selection: dict | None = None,
    created_by: AbstractBaseUser | None = None,
    base_url: str = "",
) -> ExportJob:
    """Queue an export of `project` to a file; a worker runs it once this transaction commits."""
    export_format_check(format, project)
    with transaction.atomic():
        job = ExportJob.objects.create(
            project=project,
            created_by=created_by if created_by is not None and created_by.is_authenticated else None,
            format=format,
            labeled_only=labeled_only,
            reviewed_only=reviewed_only,
            selection=selection or {},
            base_url=base_url[: ExportJob._meta.get_field("base_url").max_length],
        )
        audit_record(
            actor=created_by,
            project=project,
            action=Action.EXPORT,
            detail={**_export_detail(format, labeled_only, reviewed_only, selection), "job": job.pk},
        )
        tasks.item_export_run.delay_on_commit(job.id)
    return job


def _export_detail(format: str, labeled_only: bool, reviewed_only: bool, selection: dict | None) -> dict:
    detail = {"format": format, "labeled_only": labeled_only, "reviewed_only": reviewed_only}
    if selection:
        detail["selection"] = True
    return detail


class _ExportProgress:
    """Writes a job's progress when its percentage moves, and its heartbeat at least every
    HEARTBEAT_SECONDS, where pollers see them while the export's snapshot is still open: through
    a ProgressConnection, or inside a caller's transaction, there."""

    def __init__(self, job_id: int) -> None:
        self.writer = JobProgress(model=ExportJob, job_id=job_id, in_transaction="same")
        self.done = 0
        self._last = -1

    def __call__(self, done: int, total: int) -> None:
        self.done = done
        # 100 only once the file is stored.
        percent = min(99, done * 100 // total) if total else 99
        if percent == self._last:
            self.writer.beat()
            return
        self._last = percent
        self.writer.write(progress=percent, items_written=done)


def item_export_run_job(*, job_id: int) -> ExportJob:
    """Write the job's export to a file under MEDIA_ROOT/exports/, with progress; mark it succeeded or failed.

    Only a queued job is run: one running elsewhere or finished is left alone (a redelivered
    task does nothing). ExportJob.DoesNotExist when there is no such job.
    """
    claimed = job_claim(model=ExportJob, job_id=job_id, progress=0, items_written=0, error="")
    job = ExportJob.objects.select_related("project").get(pk=job_id)
    if not claimed:
        logger.info("export job %s is %s; nothing to do", job_id, job.status)
        return job
    started = timezone.now()
    progress = _ExportProgress(job.id)
    try:
        with tempfile.TemporaryFile(mode="w+b") as spool:
            chunks = export_stream(
                project=job.project,
                format=job.format,
                labeled_only=job.labeled_only,
                reviewed_only=job.reviewed_only,
                selection=job.selection,
                progress=progress,
                base_url=job.base_url,
            )
            for chunk in chunks:
                spool.write(chunk if isinstance(chunk, bytes) else chunk.encode("utf-8"))
            spool.seek(0)
            progress.writer.write()  # storing a big file may take a while: a fresh heartbeat first
            # Storage sees only a complete export, and the job names the file only on success.
            job.file.save(export_filename(job.project, job.format), File(spool, name="export"), save=False)
    except Exception as exc:
        logger.exception("export failed: job=%s project=%s", job.id, job.project_id)
        return job_finish(
            job=job,
            status=ExportJob.Status.FAILED,
            error=f"{type(exc).__name__}: {exc}",
            items_written=progress.done,
        )
    finally:
        progress.writer.close()
    job = job_finish(
        job=job,
        status=ExportJob.Status.SUCCEEDED,
        progress=100,
        items_written=progress.done,
        file=job.file.name,
    )
    logger.info(
        "export done: job=%s project=%s items=%s seconds=%.1f",
        job.id,
        job.project_id,
        job.items_written,
        (job.finished_at - started).total_seconds(),
    )
    return job


def export_jobs_sweep(*, now: datetime | None = None) -> list[int]:
    """Fail running export jobs whose heartbeat is older than LABELLOOP_JOB_STALE_SECONDS (the
    one threshold of background jobs): their worker was lost. Exports write their heartbeat
    through their own connection on either database; nothing was stored, so the job can be
    started again."""
    return jobs_sweep(
        model=ExportJob,
        silent_seconds=settings.LABELLOOP_JOB_STALE_SECONDS,
        now=now,
        error="the export stopped when its worker was lost; nothing was stored. Start it again.",
    )


def export_job_get(*, project: Project, job_id: int) -> ExportJob | None:
    """The project's export job `job_id`, or None."""
    return ExportJob.objects.filter(project=project, pk=job_id).first()


def export_job_list(*, project: Project) -> QuerySet[ExportJob]:
    """The project's export jobs, newest first."""
    return ExportJob.objects.filter(project=project).order_by("-id")
