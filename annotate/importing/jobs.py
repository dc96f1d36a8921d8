"""Import jobs: one entry point per upload (`item_import_start`), run at once when small, else by a
worker (`item_import_run_job`), and the sweeper that fails jobs whose worker was lost.

Jobs follow annotate.jobs' lifecycle (claim, heartbeat, finish, sweep); the upload is kept under
MEDIA_ROOT/imports/ until its job ends.
"""

import logging
import tempfile
import zipfile
from collections.abc import Mapping, Sequence
from datetime import datetime
from pathlib import PurePosixPath
from typing import IO, Any

from django.conf import settings
from django.core.files.base import File
from django.db import connection

from annotate import tasks
from annotate.importing.boxes import import_coco, import_yolo
from annotate.importing.images import images_zip, import_image_zip, import_images
from annotate.importing.options import import_options_validate
from annotate.importing.rows import ImportRejected, ImportResult
from annotate.importing.spans import import_conll, import_spacy
from annotate.importing.text import IMAGE_TASK_TYPES, import_csv, import_json, import_jsonl, import_text
from annotate.importing.writer import Progress
from annotate.jobs import JobProgress, job_claim, job_finish, jobs_sweep
from annotate.models import ImportJob, Project

logger = logging.getLogger(__name__)

# Files with more rows than this are imported by a Celery worker (item_import_start).
SYNC_ROW_LIMIT = 10_000
# Images cost far more per row than text lines (decode, rotate, write a file).
SYNC_IMAGE_LIMIT = 500
# And images named by URL, each fetched (up to LABELLOOP_URL_FETCH_TIMEOUT seconds apiece).
SYNC_URL_LIMIT = 20
# And bigger files than this, whatever their rows: the importer decodes a text file whole, and a
# web worker must never hold a big upload (a 300 MB file of one line was read whole in one and
# grew it to 2 GB). Below both limits the web process imports it; the upload itself is only
# ever streamed to storage here (counted in 1 MiB chunks by _rows_count).
SYNC_BYTE_LIMIT = 8 * 2**20

_COLUMN_IMPORTERS = {"csv": import_csv, "json": import_json, "jsonl": import_jsonl}
# The exchange formats take import_as and label_source.
_EXCHANGE_IMPORTERS = {"coco": import_coco, "yolo": import_yolo, "conll": import_conll, "spacy": import_spacy}


def item_import(
    *,
    project: Project,
    file: IO,
    filename: str,
    format: str,
    options: Mapping[str, Any] | None = None,
    progress: Progress | None = None,
) -> ImportResult:
    """Import one file in `format` with `options` (text_column, id_column, label_column,
    prediction_column, label_source); "images" here means one image file."""
    format, options = import_options_validate(format=format, options=options, filenames=[filename])
    return _file_import(project, file, filename, format, options, progress)


def _file_import(
    project: Project, file: IO, filename: str, format: str, options: dict, progress: Progress | None
) -> ImportResult:
    """item_import with `format` and `options` already validated."""
    if format in _EXCHANGE_IMPORTERS:
        return _EXCHANGE_IMPORTERS[format](
            project=project, file=file, filename=filename, progress=progress, **options
        )
    if format in _COLUMN_IMPORTERS:
        return _COLUMN_IMPORTERS[format](
            project=project, file=file, filename=filename, progress=progress, **options
        )
    if format == "text":
        return import_text(project=project, file=file, filename=filename, progress=progress)
    if format == "zip":
        return import_image_zip(project=project, file=file, filename=filename, progress=progress)
    return import_images(project=project, files=[(filename, file)], progress=progress)


def item_import_start(
    *,
    project: Project,
    files: Sequence[tuple[str, IO]],
    format: str | None = None,
    options: Mapping[str, Any] | None = None,
    created_by=None,
) -> ImportJob:
    """Store the upload in an ImportJob and import it: at once when it is small, else in a worker.

    `files` are (name, binary file) pairs: one file, or several images (stored together as one
    zip). The format is told from the first name when not given; import_options_validate refuses
    a bad format or option (ValidationError naming the field) before anything is stored. Up to
    SYNC_ROW_LIMIT rows (SYNC_IMAGE_LIMIT images) and SYNC_BYTE_LIMIT bytes the import runs here
    and the finished job (succeeded or failed) is returned; bigger uploads return the queued job and
    tasks.item_import_run runs it once this transaction commits.
    """
    format, options = import_options_validate(
        format=format, options=options, filenames=[name for name, _ in files]
    )
    if format == "images":
        with tempfile.SpooledTemporaryFile(max_size=32 * 2**20) as packed:
            images_zip(files, into=packed)
            name = f"{PurePosixPath(files[0][0]).stem or 'images'}.zip"
            return _job_start(project, packed, name, "zip", options, created_by)
    name, file = files[0]
    return _job_start(project, file, name, format, options, created_by)


def _job_start(
    project: Project, file: IO, filename: str, format: str, options: dict, created_by
) -> ImportJob:
    rows = _rows_count(file, format)
    if format in ("zip", "images"):
        limit = SYNC_IMAGE_LIMIT
    elif format in _COLUMN_IMPORTERS and project.task_type in IMAGE_TASK_TYPES:
        limit = SYNC_URL_LIMIT  # each row is an image fetched by URL
    else:
        limit = SYNC_ROW_LIMIT
    size = _size(file)
    job = ImportJob(
        project=project,
        created_by=created_by,
        format=format,
        filename=filename[:255],
        options=options,
        rows_total=rows,
    )
    job.upload.save(PurePosixPath(filename).name or "upload", File(file), save=False)
    job.save()
    if rows <= limit and size <= SYNC_BYTE_LIMIT:
        return item_import_run_job(job_id=job.id)
    tasks.item_import_run.delay_on_commit(job.id)
    return job


def item_import_run_job(*, job_id: int) -> ImportJob:
    """Run a queued import job to succeeded or failed, writing its progress as it goes.

    A job that is not queued (already running, or finished) is left alone, so a task
    delivered twice imports once. The upload is deleted when the job ends.
    """
    claimed = job_claim(model=ImportJob, job_id=job_id)
    job = ImportJob.objects.select_related("project").get(pk=job_id)
    if not claimed:
        logger.info("import job %s is %s; nothing to do", job_id, job.status)
        return job

    def report(done: int, total: int) -> None:
        percent = min(100, done * 100 // total) if total else 100
        writer.write(rows_done=done, rows_total=total, progress=percent)

    try:
        # The import holds SQLite's one writer: there, and inside a transaction, nobody could
        # see progress before the import ends, so it writes nothing and _finish the final counts.
        with (
            job.upload.open("rb") as upload,
            JobProgress(model=ImportJob, job_id=job_id, shares_writer=True, in_transaction="skip") as writer,
        ):
            result = _file_import(job.project, upload, job.filename, job.format, job.options, report)
    except ImportRejected as exc:
        logger.info("import job %s rejected: %s", job_id, exc)
        return _finish(job, status=ImportJob.Status.FAILED, error=str(exc))
    except Exception as exc:
        logger.exception("import job %s failed", job_id)
        _finish(job, status=ImportJob.Status.FAILED, error=f"the import failed unexpectedly: {exc}")
        raise
    logger.info(
        "import job %s stored %s items, updated %s", job_id, result.items_created, result.items_updated
    )
    return _finish(
        job,
        status=ImportJob.Status.SUCCEEDED,
        items_created=result.items_created,
        rows_done=result.items_created + result.items_updated,
    )


def import_jobs_sweep(*, now: datetime | None = None) -> list[int]:
    """Fail running import jobs whose worker was lost: silent for LABELLOOP_JOB_STALE_SECONDS
    on PostgreSQL, past the import task's time limit on SQLite (see the setting). The import's
    transaction died with its worker, so nothing of it was stored; the upload is deleted."""
    if connection.vendor == "postgresql":
        silent = settings.LABELLOOP_JOB_STALE_SECONDS
    else:
        silent = tasks.IMPORT_TIME_LIMIT + 60
    return jobs_sweep(
        model=ImportJob,
        silent_seconds=silent,
        now=now,
        error="the import stopped when its worker was lost; nothing was stored. Upload the file again.",
        fields={"upload": ""},
        on_failed=_upload_delete,
    )


def import_job_get(*, project: Project, job_id: int) -> ImportJob | None:
    """The project's import job `job_id`, or None."""
    return ImportJob.objects.filter(project=project, pk=job_id).first()


def _finish(
    job: ImportJob, *, status: str, error: str = "", items_created: int = 0, rows_done: int | None = None
) -> ImportJob:
    """`rows_done`: the items created or given a label or proposal (by default `items_created`)."""
    _upload_delete(job)
    fields = {"error": error, "items_created": items_created}
    if status == ImportJob.Status.SUCCEEDED:
        done = items_created if rows_done is None else rows_done
        fields.update(progress=100, rows_done=done, rows_total=done)
    return job_finish(job=job, status=status, upload="", **fields)


def _upload_delete(job: ImportJob) -> None:
    if job.upload:
        job.upload.delete(save=False)


def _size(file: IO) -> int:
    """The upload's size in bytes, read from its end, without reading it."""
    if getattr(file, "size", None) is not None:
        return int(file.size)
    start = file.tell()
    try:
        return file.seek(0, 2)
    finally:
        file.seek(start)


def _rows_count(file: IO, format: str) -> int:
    """Rows in the upload, counted without parsing it: lines (less CSV's header), zip entries, or
    for JSON the "{" characters, which over-counts nested objects and only sends a file to the
    worker sooner."""
    start = file.tell() if hasattr(file, "tell") else 0
    try:
        if format in ("zip", "yolo"):
            try:
                with zipfile.ZipFile(file) as archive:
                    return sum(1 for info in archive.infolist() if not info.is_dir())
            except (zipfile.BadZipFile, OSError, ValueError):
                return 0  # rejected at once by the importer
        if format == "images":
            return 1
        marker = {"json": b"{", "coco": b'"bbox"', "conll": b"-DOCSTART-"}.get(format, b"\n")
        count, last = 0, b"\n"
        while chunk := file.read(1 << 20):
            count += chunk.count(marker)
            last = chunk[-1:]
        if format in ("json", "coco", "conll"):
            return count
        lines = count + (last != b"\n")
        return max(0, lines - 1) if format == "csv" else lines
    finally:
        file.seek(start)
