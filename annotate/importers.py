"""Importing items: one function per format, each all or nothing, plus background import jobs.

Every importer validates the whole file before it writes anything, then writes the items (and
the annotations and proposals that came with them) in one transaction; a rejected file leaves
no rows and no files behind. Errors are `ImportRejected` naming the file, the line (or item, or
zip entry) and the field, e.g. "reviews.csv, line 12, field 'label': unknown label 'meh'; this
project's labels are: positive, negative".

Text formats (text classification projects):
- CSV (comma; tab for .tsv): a header row, then one item per record. Lines are physical lines,
  the header being line 1. In a multi-label project a label cell lists names separated by ";".
- JSON: an array of objects. JSONL: one object per line. Label fields are a label name or, in a
  multi-label project, a list of names.
- Plain text: one item per non-empty line.
Fields: text (required); id (the external id; when absent "<filename>:<line>", or
"<filename>:<item number>" in a JSON array); label (imported as a counted annotation by the
inactive user "source:<label_source>"); prediction (stored as Item.proposal: a label name, a
list of names, or {"label" | "choices": ..., "score": 0.9}; a CSV cell may hold that JSON too).
Other columns or fields are kept in Item.metadata.

Images (image classification projects): files or a zip. Pillow decides what is an image,
whatever the name; EXIF orientation is applied before storing, and the external id is the
name as given (the path inside the zip).
"""

import codecs
import csv
import io
import json
import logging
import math
import re
import secrets
import tempfile
import zipfile
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import PurePosixPath
from typing import IO, Any, NamedTuple

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.hashers import make_password
from django.core.exceptions import ValidationError
from django.core.files.base import ContentFile, File
from django.core.files.storage import default_storage
from django.db import DEFAULT_DB_ALIAS, DatabaseError, connection, connections, models, transaction
from django.utils import timezone
from PIL import Image, ImageOps, UnidentifiedImageError

from annotate import tasks
from annotate.jobs import ProgressConnection
from annotate.models import Annotation, ImportJob, Item, Project
from annotate.queue import queue_order_changed
from annotate.values import annotation_value_validate

logger = logging.getLogger(__name__)

# Rows per COPY; bigger batches hand over between the threads less often (_BatchWriter).
BATCH_SIZE = 5000
# On PostgreSQL, write items and annotations with COPY (several times faster than bulk_create).
POSTGRES_COPY = True
# Files with more rows than this are imported by a Celery worker (item_import_start).
SYNC_ROW_LIMIT = 10_000
# Images cost far more per row than text lines (decode, rotate, write a file).
SYNC_IMAGE_LIMIT = 500
PROGRESS_EVERY = 1000
PROGRESS_EVERY_IMAGE = 50
DEFAULT_MAX_IMAGE_PIXELS = 50_000_000
# A zip entry or uploaded image larger than this is refused before it is read whole.
MAX_IMAGE_FILE_BYTES = 200 * 1024 * 1024
EXTERNAL_ID_MAX_LENGTH = 255

TEXT_FORMATS = ("csv", "json", "jsonl", "text")
FORMATS = (*TEXT_FORMATS, "images", "zip")
OPTION_NAMES = frozenset({"text_column", "id_column", "label_column", "prediction_column", "label_source"})

# Kept as uploaded; anything else Pillow reads (TIFF, PPM, …) is stored as PNG so browsers show it.
_WEB_FORMAT_EXTENSIONS = {
    "JPEG": (".jpg", ".jpeg", ".jpe", ".jfif"),
    "MPO": (".jpg", ".jpeg"),  # cameras' multi-picture JPEG; browsers show the first picture
    "PNG": (".png",),
    "GIF": (".gif",),
    "WEBP": (".webp",),
    "BMP": (".bmp",),
    "AVIF": (".avif",),
}
_OPEN_FORMATS = ("JPEG", "PNG", "GIF", "WEBP", "BMP", "TIFF", "AVIF")
_EXTENSION_FORMATS = {
    ".csv": "csv",
    ".tsv": "csv",
    ".json": "json",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".txt": "text",
    ".zip": "zip",
}
_IMAGE_EXTENSIONS = frozenset(
    {".jpg", ".jpeg", ".png", ".gif", ".webp", ".bmp", ".tif", ".tiff", ".avif", ".jfif"}
)
_IGNORED_NAMES = frozenset({"thumbs.db", "desktop.ini"})
_DRIVE = re.compile(r"^[A-Za-z]:")


class ImportRejected(ValidationError):
    """A file refused as a whole; the message names the file, the line or entry and the field."""

    def __init__(self, message: str):
        super().__init__(message, code="import_rejected")

    def __str__(self) -> str:
        return self.message


@dataclass(frozen=True)
class ImportResult:
    items_created: int
    annotations_created: int
    proposals: int


class _Row(NamedTuple):
    """One validated item, ready to write. `locator` is "line 7", "item 3 (line 9)" or "entry 'a.png'"."""

    locator: str
    external_id: str
    text: str = ""
    image: str = ""
    width: int | None = None
    height: int | None = None
    metadata: dict = {}  # shared default, never mutated
    choices: dict | None = None
    proposal: dict | None = None


Progress = Callable[[int, int], None]


@dataclass
class _Progress:
    callback: Progress | None
    total: int
    every: int = PROGRESS_EVERY

    def step(self, done: int) -> None:
        if self.callback is not None and done and done % self.every == 0 and done < self.total:
            self.callback(done, self.total)

    def finish(self, done: int) -> None:
        if self.callback is not None:
            self.callback(done, done)


# Text formats ----------------------------------------------------------------------------


def import_csv(
    *,
    project: Project,
    file: IO,
    filename: str,
    text_column: str = "text",
    id_column: str | None = None,
    label_column: str | None = None,
    prediction_column: str | None = None,
    label_source: str = "import",
    progress: Progress | None = None,
) -> ImportResult:
    """Import a CSV file with a header row (tab-separated when the name ends in .tsv); all or nothing."""
    _require_task_type(project, Project.TaskType.TEXT_CLASSIFICATION, "csv")
    source = _source_name_validate(label_source, label_column)
    text = _decode(file, filename)
    delimiter = "\t" if filename.lower().endswith(".tsv") else ","
    # Parsed as the rows are written, so that PostgreSQL stores the first batches meanwhile.
    records = _csv_records(text, filename=filename, delimiter=delimiter)
    first = next(records, None)
    if first is None:
        raise ImportRejected(
            f"{filename}: the file is empty; expected a header row and then one row per item"
        )
    header_line, header = first
    header = [name.strip() for name in header]
    named = [name for name in header if name]
    if len(set(named)) != len(named):
        twice = next(name for name in named if named.count(name) > 1)
        raise ImportRejected(f"{filename}, line {header_line}: column {twice!r} appears twice in the header")
    for column in (text_column, id_column, label_column, prediction_column):
        if column is not None and column not in header:
            raise ImportRejected(
                f"{filename}, line {header_line}: no column {column!r}; the columns are: " + ", ".join(header)
            )
    builder = _RowBuilder(
        project=project,
        filename=filename,
        text_field=text_column,
        id_field=id_column,
        label_field=label_column,
        prediction_field=prediction_column,
        cells_are_text=True,
    )

    def rows() -> Iterator[_Row]:
        for line, record in records:
            if len(record) > len(header):
                raise ImportRejected(
                    f"{filename}, line {line}: {len(record)} fields but the header has {len(header)}"
                    " (quote cells that contain the delimiter)"
                )
            cells = dict(zip(header, record + [""] * (len(header) - len(record)), strict=True))
            yield builder.build(locator=f"line {line}", fields=cells, generated_id=f"{filename}:{line}")

    return _rows_import(
        project=project,
        filename=filename,
        rows=rows,
        # For the progress only: the lines after the header (a quoted cell may span lines).
        total=text.count("\n") + (not text.endswith("\n")) - header_line,
        id_field=id_column,
        source=source,
        progress=progress,
    )


def import_json(
    *,
    project: Project,
    file: IO,
    filename: str,
    text_column: str = "text",
    id_column: str | None = "id",
    label_column: str | None = "label",
    prediction_column: str | None = "prediction",
    label_source: str = "import",
    progress: Progress | None = None,
) -> ImportResult:
    """Import a JSON array of objects; each field is optional except the text; all or nothing."""
    _require_task_type(project, Project.TaskType.TEXT_CLASSIFICATION, "json")
    source = _source_name_validate(label_source, label_column)
    elements = _json_array(_decode(file, filename), filename=filename)
    builder = _RowBuilder(
        project=project,
        filename=filename,
        text_field=text_column,
        id_field=id_column,
        label_field=label_column,
        prediction_field=prediction_column,
        cells_are_text=False,
    )

    def rows() -> Iterator[_Row]:
        for number, (line, element) in enumerate(elements, start=1):
            yield builder.build(
                locator=f"item {number} (line {line})", fields=element, generated_id=f"{filename}:{number}"
            )

    return _rows_import(
        project=project,
        filename=filename,
        rows=rows,
        total=len(elements),
        id_field=id_column,
        source=source,
        progress=progress,
    )


def import_jsonl(
    *,
    project: Project,
    file: IO,
    filename: str,
    text_column: str = "text",
    id_column: str | None = "id",
    label_column: str | None = "label",
    prediction_column: str | None = "prediction",
    label_source: str = "import",
    progress: Progress | None = None,
) -> ImportResult:
    """Import JSON Lines, one object per non-empty line; all or nothing."""
    _require_task_type(project, Project.TaskType.TEXT_CLASSIFICATION, "jsonl")
    source = _source_name_validate(label_source, label_column)
    lines = [
        (number, line)
        for number, line in enumerate(_decode(file, filename).split("\n"), start=1)
        if line.strip()
    ]
    builder = _RowBuilder(
        project=project,
        filename=filename,
        text_field=text_column,
        id_field=id_column,
        label_field=label_column,
        prediction_field=prediction_column,
        cells_are_text=False,
    )

    def rows() -> Iterator[_Row]:
        for number, line in lines:
            try:
                element = json.loads(line)
            except json.JSONDecodeError as exc:
                raise ImportRejected(
                    f"{filename}, line {number}: malformed JSON at column {exc.colno}: {exc.msg}"
                ) from None
            yield builder.build(locator=f"line {number}", fields=element, generated_id=f"{filename}:{number}")

    return _rows_import(
        project=project,
        filename=filename,
        rows=rows,
        total=len(lines),
        id_field=id_column,
        source=source,
        progress=progress,
    )


def import_text(
    *, project: Project, file: IO, filename: str, progress: Progress | None = None
) -> ImportResult:
    """Import plain text, one item per non-empty line, with external id "<filename>:<line>"."""
    _require_task_type(project, Project.TaskType.TEXT_CLASSIFICATION, "text")
    lines = [
        (number, line)
        for number, line in enumerate(_decode(file, filename).split("\n"), start=1)
        if line.strip()
    ]

    def rows() -> Iterator[_Row]:
        for number, line in lines:
            external_id = f"{filename}:{number}"
            _external_id_check(external_id, where=f"{filename}, line {number}", field=None)
            yield _Row(locator=f"line {number}", external_id=external_id, text=line)

    return _rows_import(
        project=project,
        filename=filename,
        rows=rows,
        total=len(lines),
        id_field=None,
        source=None,
        progress=progress,
    )


# Images ----------------------------------------------------------------------------------


def import_images(
    *, project: Project, files: Sequence[tuple[str, IO]], progress: Progress | None = None
) -> ImportResult:
    """Import image files given as (name, binary file) pairs; the name is the external id; all or nothing."""
    _require_task_type(project, Project.TaskType.IMAGE_CLASSIFICATION, "images")
    named = []
    for name, file in files:
        where = f"file {name!r}"
        if not name or _path_unsafe(name):
            raise ImportRejected(f"{where}: unsafe name (absolute or with '..' parts); nothing was imported")
        named.append((where, name, file))
    _ids_check(project=project, filename=None, id_field=None, ids=[(w, n) for w, n, _ in named])

    def read(file: IO, where: str) -> bytes:
        data = file.read(MAX_IMAGE_FILE_BYTES + 1)
        if len(data) > MAX_IMAGE_FILE_BYTES:
            raise ImportRejected(f"{where}: larger than {MAX_IMAGE_FILE_BYTES // 2**20} MB")
        return data

    return _images_import(
        project=project,
        filename="the images",
        entries=[(where, name, lambda f=file, w=where: read(f, w)) for where, name, file in named],
        progress=progress,
    )


def import_image_zip(
    *, project: Project, file: IO, filename: str, progress: Progress | None = None
) -> ImportResult:
    """Import the images in a zip; the path inside the zip is the external id; all or nothing.

    Unsafe paths (absolute, or with ".." parts) refuse the zip before anything is read;
    directories, "__MACOSX/" and dotfiles are ignored; any other entry must be an image.
    """
    _require_task_type(project, Project.TaskType.IMAGE_CLASSIFICATION, "zip")
    try:
        archive = zipfile.ZipFile(file)
    except (zipfile.BadZipFile, OSError, ValueError):
        raise ImportRejected(f"{filename}: not a zip file") from None
    with archive:
        infos = archive.infolist()
        for info in infos:
            if _path_unsafe(info.filename):
                raise ImportRejected(
                    f"{filename}, entry {info.filename!r}: unsafe path (absolute or with '..' parts);"
                    " nothing was imported"
                )
        entries = []
        for info in infos:
            if info.is_dir() or _zip_entry_ignored(info.filename):
                continue
            where = f"{filename}, entry {info.filename!r}"
            entries.append((where, info.filename, lambda i=info, w=where: _zip_read(archive, i, w)))
        if not entries:
            raise ImportRejected(f"{filename}: the zip holds no files")
        _ids_check(project=project, filename=None, id_field=None, ids=[(w, n) for w, n, _ in entries])
        return _images_import(project=project, filename=filename, entries=entries, progress=progress)


# One entry point per upload, and background jobs ----------------------------------------


def import_format_for(filename: str) -> str | None:
    """The import format a file name suggests (csv, json, jsonl, text, zip, images), or None."""
    suffix = PurePosixPath(filename.lower()).suffix
    if suffix in _IMAGE_EXTENSIONS:
        return "images"
    return _EXTENSION_FORMATS.get(suffix)


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
    options = {key: value for key, value in (options or {}).items() if value is not None}
    unknown = set(options) - OPTION_NAMES
    if unknown:
        raise ImportRejected(
            f"unknown import option {sorted(unknown)[0]!r}; known: {', '.join(sorted(OPTION_NAMES))}"
        )
    if format in ("csv", "json", "jsonl"):
        importer = {"csv": import_csv, "json": import_json, "jsonl": import_jsonl}[format]
        return importer(project=project, file=file, filename=filename, progress=progress, **options)
    if options.keys() - {"label_source"}:
        raise ImportRejected(f"format {format!r} takes no column options")
    if format == "text":
        return import_text(project=project, file=file, filename=filename, progress=progress)
    if format == "zip":
        return import_image_zip(project=project, file=file, filename=filename, progress=progress)
    if format == "images":
        return import_images(project=project, files=[(filename, file)], progress=progress)
    raise ImportRejected(f"unknown import format {format!r}; choose one of: {', '.join(FORMATS)}")


def item_import_start(
    *,
    project: Project,
    uploaded_file: IO | Sequence[tuple[str, IO]],
    filename: str,
    format: str,
    options: Mapping[str, Any] | None = None,
    created_by=None,
) -> ImportJob:
    """Store the upload in an ImportJob and import it: at once when it is small, else in a worker.

    Up to SYNC_ROW_LIMIT rows (SYNC_IMAGE_LIMIT images) the import runs here and the finished
    job (succeeded or failed) is returned; bigger uploads return the queued job and
    tasks.item_import_run runs it once this transaction commits. For format "images",
    `uploaded_file` may be a list of (name, file) pairs: they are stored together as one zip.
    """
    if format not in FORMATS:
        raise ImportRejected(f"unknown import format {format!r}; choose one of: {', '.join(FORMATS)}")
    options = {key: value for key, value in (options or {}).items() if value is not None}
    if set(options) - OPTION_NAMES:
        raise ImportRejected(f"unknown import option {sorted(set(options) - OPTION_NAMES)[0]!r}")
    if format == "images" and not hasattr(uploaded_file, "read"):
        with tempfile.SpooledTemporaryFile(max_size=32 * 2**20) as packed:
            _images_zip(uploaded_file, into=packed)
            return item_import_start(
                project=project,
                uploaded_file=packed,
                filename=f"{PurePosixPath(filename).stem or 'images'}.zip",
                format="zip",
                options=options,
                created_by=created_by,
            )
    rows = _rows_count(uploaded_file, format)
    limit = SYNC_IMAGE_LIMIT if format in ("zip", "images") else SYNC_ROW_LIMIT
    job = ImportJob(
        project=project,
        created_by=created_by,
        format=format,
        filename=filename[:255],
        options=options,
        rows_total=rows,
    )
    job.upload.save(PurePosixPath(filename).name or "upload", File(uploaded_file), save=False)
    job.save()
    if rows <= limit:
        return item_import_run_job(job_id=job.id)
    tasks.item_import_run.delay_on_commit(job.id)
    return job


def item_import_run_job(*, job_id: int) -> ImportJob:
    """Run a queued import job to succeeded or failed, writing its progress as it goes.

    A job that is not queued (already running, or finished) is left alone, so a task
    delivered twice imports once. The upload is deleted when the job ends.
    """
    claimed = ImportJob.objects.filter(pk=job_id, status=ImportJob.Status.QUEUED).update(
        status=ImportJob.Status.RUNNING, heartbeat_at=timezone.now()
    )
    job = ImportJob.objects.select_related("project").get(pk=job_id)
    if not claimed:
        logger.info("import job %s is %s; nothing to do", job_id, job.status)
        return job

    try:
        with job.upload.open("rb") as upload, _ProgressWriter(job_id) as progress:
            result = item_import(
                project=job.project,
                file=upload,
                filename=job.filename,
                format=job.format,
                options=job.options,
                progress=progress.report,
            )
    except ImportRejected as exc:
        logger.info("import job %s rejected: %s", job_id, exc)
        return _job_finish(job, status=ImportJob.Status.FAILED, error=str(exc))
    except Exception as exc:
        logger.exception("import job %s failed", job_id)
        _job_finish(job, status=ImportJob.Status.FAILED, error=f"the import failed unexpectedly: {exc}")
        raise
    logger.info("import job %s stored %s items", job_id, result.items_created)
    return _job_finish(job, status=ImportJob.Status.SUCCEEDED, items_created=result.items_created)


class _ProgressWriter:
    """Writes an import job's progress as the import goes, through a ProgressConnection, on
    PostgreSQL outside a transaction (a Celery worker's job): the import's own connection may
    be busy on its writer thread. On SQLite, which has one writer at a time, and inside a
    transaction, nobody could see progress before the import ends: it writes nothing, and
    _job_finish writes the final counts."""

    def __init__(self, job_id: int):
        self.job_id = job_id
        seen = connection.vendor == "postgresql" and not connection.in_atomic_block
        self._own = ProgressConnection() if seen else None

    def __enter__(self) -> "_ProgressWriter":
        return self

    def __exit__(self, *exc_info) -> None:
        if self._own is not None:
            self._own.close()

    def report(self, done: int, total: int) -> None:
        if self._own is None:
            return
        progress = min(100, done * 100 // total) if total else 100
        try:
            self._own.update(
                ImportJob,
                self.job_id,
                rows_done=done,
                rows_total=total,
                progress=progress,
                heartbeat_at=timezone.now(),
            )
        except DatabaseError:
            logger.warning("import job %s: could not write its progress", self.job_id, exc_info=True)


def import_jobs_sweep(*, now: datetime | None = None) -> list[int]:
    """Fail running import jobs whose worker was lost: silent for LABELLOOP_IMPORT_STALE_SECONDS
    on PostgreSQL, past the import task's time limit on SQLite (see the setting). The import's
    transaction died with its worker, so nothing of it was stored; the upload is deleted."""
    now = now or timezone.now()
    if connection.vendor == "postgresql":
        silent = settings.LABELLOOP_IMPORT_STALE_SECONDS
    else:
        silent = tasks.IMPORT_TIME_LIMIT + 60
    stale = ImportJob.objects.filter(
        status=ImportJob.Status.RUNNING, heartbeat_at__lt=now - timedelta(seconds=silent)
    )
    failed = []
    for job in stale:
        logger.warning("import job %s: its worker was lost", job.pk)
        _job_finish(
            job,
            status=ImportJob.Status.FAILED,
            error="the import stopped when its worker was lost; nothing was stored. Upload the file again.",
        )
        failed.append(job.pk)
    return failed


def _job_finish(job: ImportJob, *, status: str, error: str = "", items_created: int = 0) -> ImportJob:
    if job.upload:
        job.upload.delete(save=False)
    fields = {"status": status, "error": error, "items_created": items_created, "finished_at": timezone.now()}
    if status == ImportJob.Status.SUCCEEDED:
        fields.update(progress=100, rows_done=items_created, rows_total=items_created)
    ImportJob.objects.filter(pk=job.pk).update(upload="", **fields)
    job.refresh_from_db()
    return job


def _rows_count(file: IO, format: str) -> int:
    """Rows in the upload, counted without parsing it: lines (less CSV's header), zip entries, or
    for JSON the "{" characters, which over-counts nested objects and only sends a file to the
    worker sooner."""
    start = file.tell() if hasattr(file, "tell") else 0
    try:
        if format == "zip":
            try:
                with zipfile.ZipFile(file) as archive:
                    return sum(1 for info in archive.infolist() if not info.is_dir())
            except (zipfile.BadZipFile, OSError, ValueError):
                return 0  # rejected at once by the importer
        if format == "images":
            return 1
        marker = b"{" if format == "json" else b"\n"
        count, last = 0, b"\n"
        while chunk := file.read(1 << 20):
            count += chunk.count(marker)
            last = chunk[-1:]
        if format == "json":
            return count
        lines = count + (last != b"\n")
        return max(0, lines - 1) if format == "csv" else lines
    finally:
        file.seek(start)


def _images_zip(files: Sequence[tuple[str, IO]], *, into: IO) -> None:
    with zipfile.ZipFile(into, "w", compression=zipfile.ZIP_STORED) as archive:
        for name, file in files:
            with archive.open(name, "w") as entry:
                while chunk := file.read(1 << 20):
                    entry.write(chunk)
    into.seek(0)


# Parsing ---------------------------------------------------------------------------------


def _decode(file: IO | bytes, filename: str) -> str:
    """The file as text: UTF-8 (a BOM is dropped), CRLF made LF; a bad byte names its line."""
    data = file if isinstance(file, (bytes, str)) else file.read()
    if isinstance(data, str):
        return data.lstrip("\ufeff").replace("\r\n", "\n")
    if data.startswith(codecs.BOM_UTF8):
        data = data[len(codecs.BOM_UTF8) :]
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        column = exc.start - (data.rfind(b"\n", 0, exc.start) + 1) + 1
        raise ImportRejected(
            f"{filename}, line {line}: not UTF-8 (byte 0x{data[exc.start]:02x} at column {column});"
            " save the file as UTF-8"
        ) from None
    if "\x00" in text:
        line = text.count("\n", 0, text.index("\x00")) + 1
        raise ImportRejected(f"{filename}, line {line}: contains a NUL character; is this a text file?")
    return text.replace("\r\n", "\n")


def _csv_records(text: str, *, filename: str, delimiter: str) -> Iterator[tuple[int, list[str]]]:
    """(line where the record starts, cells) for each record that is not blank."""
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, strict=True)
    end = 0
    while True:
        start = end + 1
        try:
            record = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            raise ImportRejected(f"{filename}, line {reader.line_num}: malformed CSV: {exc}") from None
        end = reader.line_num
        if any(cell.strip() for cell in record):
            yield start, record


def _json_array(text: str, *, filename: str) -> list[tuple[int, Any]]:
    """The elements of a top-level JSON array, each with the line it starts on."""
    decoder = json.JSONDecoder()
    whitespace = re.compile(r"[ \t\n\r]*")

    def skip(position: int) -> int:
        return whitespace.match(text, position).end()

    def malformed(position: int, message: str) -> ImportRejected:
        line = text.count("\n", 0, position) + 1
        column = position - (text.rfind("\n", 0, position) + 1) + 1
        return ImportRejected(f"{filename}, line {line}, column {column}: malformed JSON: {message}")

    position = skip(0)
    if position == len(text):
        raise ImportRejected(f"{filename}: the file is empty; expected a JSON array of objects")
    if text[position] != "[":
        try:
            decoder.raw_decode(text, position)
        except json.JSONDecodeError as exc:
            raise malformed(exc.pos, exc.msg) from None
        raise ImportRejected(f"{filename}: expected a JSON array of objects ([{{...}}, ...])")
    elements: list[tuple[int, Any]] = []
    line, counted_to = 1, 0
    position = skip(position + 1)
    if text.startswith("]", position):
        position += 1
    else:
        while True:
            line += text.count("\n", counted_to, position)
            counted_to = position
            try:
                element, position = decoder.raw_decode(text, position)
            except json.JSONDecodeError as exc:
                raise malformed(exc.pos, exc.msg) from None
            elements.append((line, element))
            position = skip(position)
            if text.startswith(",", position):
                position = skip(position + 1)
            elif text.startswith("]", position):
                position += 1
                break
            else:
                raise malformed(position, "expected ',' or ']' after an array element")
    if skip(position) != len(text):
        raise malformed(skip(position), "extra data after the array")
    return elements


class _RowBuilder:
    """Turns one record (CSV cells or a JSON object) into a validated _Row, or raises ImportRejected."""

    def __init__(
        self,
        *,
        project: Project,
        filename: str,
        text_field: str,
        id_field: str | None,
        label_field: str | None,
        prediction_field: str | None,
        cells_are_text: bool,
    ):
        self.filename = filename
        self.text_field = text_field
        self.id_field = id_field
        self.label_field = label_field
        self.prediction_field = prediction_field
        self.cells_are_text = cells_are_text
        self.known = {f for f in (text_field, id_field, label_field, prediction_field) if f}
        self.choices = _ChoicesValidator(project)

    def build(self, *, locator: str, fields: Any, generated_id: str) -> _Row:
        where = f"{self.filename}, {locator}"
        if not isinstance(fields, dict):
            raise ImportRejected(f"{where}: expected an object, not {_json_type(fields)}")
        if self.text_field not in fields:
            raise ImportRejected(
                f"{where}: no field {self.text_field!r}; its fields are: " + ", ".join(map(str, fields))
            )
        text = fields[self.text_field]
        if not isinstance(text, str):
            raise ImportRejected(
                f"{where}, field {self.text_field!r}: expected a string, not {_json_type(text)}"
            )
        text = text.replace("\r\n", "\n")
        if not text.strip():
            raise ImportRejected(f"{where}, field {self.text_field!r}: the text is empty")
        if "\x00" in text:
            raise ImportRejected(f"{where}, field {self.text_field!r}: contains a NUL character")

        if self.id_field is not None and self.id_field in fields:
            external_id = fields[self.id_field]
            if isinstance(external_id, int) and not isinstance(external_id, bool):
                external_id = str(external_id)
            if not isinstance(external_id, str):
                raise ImportRejected(
                    f"{where}, field {self.id_field!r}: expected a string or an integer,"
                    f" not {_json_type(external_id)}"
                )
            external_id = external_id.strip()
            _external_id_check(external_id, where=where, field=self.id_field)
        else:
            external_id = generated_id
            _external_id_check(external_id, where=where, field=None)

        choices = None
        if self.label_field is not None:
            names = self._names(fields.get(self.label_field), where=where, field=self.label_field)
            if names:
                choices = self.choices.validate(names, where=where, field=self.label_field)

        proposal = None
        if self.prediction_field is not None:
            proposal = self._proposal(fields.get(self.prediction_field), where=where)

        # An unnamed CSV column (a trailing delimiter) is kept only when it holds something.
        metadata = {key: value for key, value in fields.items() if key not in self.known and (key or value)}
        return _Row(
            locator=locator,
            external_id=external_id,
            text=text,
            metadata=metadata,
            choices=choices,
            proposal=proposal,
        )

    def _names(self, raw: Any, *, where: str, field: str) -> list | None:
        """Label names from a cell or field; None or [] when it is empty."""
        if raw is None:
            return None
        if isinstance(raw, str):
            if self.cells_are_text and self.choices.multi_label:
                return [name.strip() for name in raw.split(";") if name.strip()]
            return [raw.strip()] if raw.strip() else None
        if isinstance(raw, list):
            return raw
        raise ImportRejected(
            f"{where}, field {field!r}: expected a label name or a list of label names, not {_json_type(raw)}"
        )

    def _proposal(self, raw: Any, *, where: str) -> dict | None:
        field_name = self.prediction_field
        if self.cells_are_text and isinstance(raw, str) and raw.strip().startswith(("{", "[")):
            try:
                raw = json.loads(raw)
            except json.JSONDecodeError as exc:
                raise ImportRejected(
                    f"{where}, field {field_name!r}: malformed JSON at column {exc.colno}: {exc.msg}"
                ) from None
        score = None
        if isinstance(raw, dict):
            unknown = set(raw) - {"label", "choices", "score"}
            if unknown or ("label" in raw) == ("choices" in raw):
                raise ImportRejected(
                    f"{where}, field {field_name!r}: expected "
                    '{"label": "<name>", "score": 0.9} or {"choices": ["<name>", ...], "score": 0.9}'
                )
            score = raw.get("score")
            if score is not None:
                if isinstance(score, bool) or not isinstance(score, (int, float)) or not math.isfinite(score):
                    raise ImportRejected(f"{where}, field {field_name!r}: the score must be a number")
                score = float(score)
            raw = raw.get("label", raw.get("choices"))
        names = self._names(raw, where=where, field=field_name)
        if not names:
            return None
        return {"value": self.choices.validate(names, where=where, field=field_name), "score": score}


class _ChoicesValidator:
    """annotation_value_validate for every row, remembering the answer per distinct list of names."""

    def __init__(self, project: Project):
        self.project = project
        self.multi_label = project.multi_label
        self.label_names = list(project.labels.order_by("order", "id").values_list("name", flat=True))
        self.seen: dict[tuple, dict | str] = {}

    def validate(self, names: list, *, where: str, field: str) -> dict:
        key = (field, tuple(names)) if all(isinstance(n, str) for n in names) else None
        answer = self.seen.get(key) if key else None
        if answer is None:
            try:
                answer = annotation_value_validate(
                    project=self.project, label_names=self.label_names, value={"choices": names}, field=field
                )
            except ValidationError as exc:
                answer = "; ".join(exc.messages)
            if key:
                self.seen[key] = answer
        if isinstance(answer, str):
            raise ImportRejected(f"{where}, field {field!r}: {answer}")
        return answer


def _json_type(value: Any) -> str:
    names = {dict: "an object", list: "a list", str: "a string", bool: "true/false", type(None): "null"}
    return names.get(type(value), "a number")


def _external_id_check(external_id: str, *, where: str, field: str | None) -> None:
    label = f", field {field!r}" if field else ""
    if not external_id:
        raise ImportRejected(f"{where}{label}: the id is empty")
    if len(external_id) > EXTERNAL_ID_MAX_LENGTH:
        raise ImportRejected(f"{where}{label}: the id is longer than {EXTERNAL_ID_MAX_LENGTH} characters")
    if "\x00" in external_id:
        raise ImportRejected(f"{where}{label}: the id contains a NUL character")


def _require_task_type(project: Project, task_type: str, format: str) -> None:
    if project.task_type == task_type:
        return
    if task_type == Project.TaskType.IMAGE_CLASSIFICATION:
        raise ImportRejected(
            f"project {project.name!r} is a {project.get_task_type_display().lower()} project:"
            f" import text (csv, json, jsonl, text) into it, not {format}"
        )
    raise ImportRejected(
        f"project {project.name!r} is an {project.get_task_type_display().lower()} project:"
        f" import images (image files or a zip) into it, not {format}"
    )


def _source_name_validate(name: str, label_field: str | None) -> str | None:
    if label_field is None:
        return None
    name = (name or "").strip()
    if not name or len(name) > Annotation._meta.get_field("source").max_length:
        raise ImportRejected("the label source must be a name of 1 to 64 characters, e.g. 'import'")
    return name


# Writing ---------------------------------------------------------------------------------


def _rows_import(
    *,
    project: Project,
    filename: str,
    rows: Callable[[], Iterator[_Row]],
    total: int,
    id_field: str | None,
    source: str | None,
    progress: Progress | None,
) -> ImportResult:
    """Validate and write the rows in one pass, in one transaction: a bad row, or an id that
    repeats or already exists, raises ImportRejected and rolls back whatever was written, so
    the import is all or nothing. (A first pass that only validated cost a sixth of the CPU.)"""
    if total == 0:
        raise ImportRejected(f"{filename}: no items in the file")
    reporter = _Progress(progress, total)
    ids = _IdCheck(project=project, filename=filename, id_field=id_field)

    def checked() -> Iterator[_Row]:
        for done, row in enumerate(rows(), start=1):
            ids.see(f"{filename}, {row.locator}", row.external_id)
            reporter.step(done)
            yield row

    result = _rows_write(
        project=project, rows=checked(), source=source, filename=filename, before_write=ids.check_existing
    )
    reporter.finish(result.items_created)
    return result


class _IdCheck:
    """Refuses an id that repeats within the file (naming both places) or already exists in
    the project. Ids come one at a time (`see`); existing ones are looked up a batch at a time
    (`check_existing`), not at all when the project had no items."""

    def __init__(self, *, project: Project, filename: str | None, id_field: str | None):
        self.project = project
        self.filename = filename
        self.label = f", field {id_field!r}" if id_field else ""
        self.first: dict[str, str] = {}
        # A concurrent import of the same ids still fails on the unique constraint.
        self.project_had_items = Item.objects.filter(project=project).exists()

    def see(self, where: str, external_id: str) -> None:
        """`where` is "<file>, line 7" or "<zip>, entry 'a.png'"."""
        earlier = self.first.get(external_id)
        if earlier is not None:
            if self.filename and earlier.startswith(f"{self.filename}, "):
                earlier = earlier[len(self.filename) + 2 :]
            raise ImportRejected(f"{where}{self.label}: {external_id!r} repeats {earlier}")
        self.first[external_id] = where

    def check_existing(self, rows: Sequence[_Row], *, using=connection) -> None:
        self.check_existing_ids([row.external_id for row in rows], using=using)

    def check_existing_ids(self, keys: list[str], *, using=connection) -> None:
        if not self.project_had_items:
            return
        existing = _existing_ids(self.project, keys, using=using)
        if existing:
            external_id = next(key for key in keys if key in existing)
            raise ImportRejected(
                f"{self.first[external_id]}{self.label}: an item with id {external_id!r}"
                " already exists in this project"
            )


def _ids_check(
    *, project: Project, filename: str | None, id_field: str | None, ids: Sequence[tuple[str, str]]
) -> None:
    """Refuse an id that repeats within `ids` (where, external id) or already exists in the project."""
    check = _IdCheck(project=project, filename=filename, id_field=id_field)
    for where, external_id in ids:
        check.see(where, external_id)
    keys = list(check.first)
    for start in range(0, len(keys), BATCH_SIZE):
        check.check_existing_ids(keys[start : start + BATCH_SIZE])


def _rows_write(
    *,
    project: Project,
    rows: Iterable[_Row],
    source: str | None,
    filename: str,
    before_write: Callable[..., None] | None = None,
) -> ImportResult:
    """Write validated rows in one transaction: items in batches, each batch's annotations after it.

    On PostgreSQL the batches go in with COPY (POSTGRES_COPY), elsewhere with bulk_create.
    `before_write(batch, using=connection)` may refuse a batch (ImportRejected), rolling back
    what went before.
    """
    now = timezone.now()
    copy = POSTGRES_COPY and connection.vendor == "postgresql"
    created = annotations = proposals = 0
    try:
        with transaction.atomic(), _BatchWriter(threaded=copy) as writer:
            if copy:
                # Each COPY checks its rows' foreign keys as it ends, while the next batch is
                # being validated, instead of all of them at COMMIT with nothing else to do.
                writer.execute("SET CONSTRAINTS ALL IMMEDIATE")
            annotator_id = None
            batch: list[_Row] = []

            def flush() -> None:
                nonlocal annotator_id, batch
                if annotator_id is None and any(row.choices is not None for row in batch):
                    writer.wait()  # the connection is free again
                    annotator_id = _source_user(source).pk
                if copy:  # the lines are built here: the writer thread's share is PostgreSQL's
                    items = _item_copy(project, batch, now)
                    writer.submit(_batch_copy, project, batch, items, annotator_id, source, now, before_write)
                else:
                    writer.submit(_batch_bulk_create, project, batch, annotator_id, source, now, before_write)
                batch = []

            for row in rows:
                batch.append(row)
                created += 1
                annotations += row.choices is not None
                proposals += row.proposal is not None
                if len(batch) >= BATCH_SIZE:
                    flush()
            if batch:
                flush()
            if not created:
                raise ImportRejected(f"{filename}: no items in the file")
            writer.wait()
            if copy:
                writer.execute("SET CONSTRAINTS ALL DEFERRED")
            queue_order_changed(project_id=project.id)
    except DatabaseError as exc:
        # A concurrent import of the same ids, or a value the database refuses (e.g. "\u0000" in JSON).
        raise ImportRejected(
            f"{filename}: the database refused the items, nothing was stored: {exc}"
        ) from exc
    return ImportResult(items_created=created, annotations_created=annotations, proposals=proposals)


class _BatchWriter:
    """Writes one batch at a time on a second thread, over this thread's database connection and
    inside its transaction, so that PostgreSQL stores batch k (and checks its foreign keys) while
    this thread validates batch k+1: the import then takes about the longer of the two, not their
    sum. `submit` waits for the batch before; an error there is raised here, in the caller's
    transaction, which rolls back. Leaving the block waits for the thread, error or not, so the
    connection is never used by both. Unthreaded (SQLite), `submit` writes at once.
    """

    def __init__(self, *, threaded: bool):
        # This thread's connection itself: the `connection` proxy would give the writer thread its own.
        self.connection = connections[DEFAULT_DB_ALIAS]
        self.pool = ThreadPoolExecutor(1, thread_name_prefix="labelloop-import") if threaded else None
        self.pending: Future | None = None

    def __enter__(self) -> "_BatchWriter":
        if self.pool is not None:
            self.connection.inc_thread_sharing()
        return self

    def __exit__(self, exc_type, exc, traceback) -> None:
        try:
            if exc_type is None:
                self.wait()
        finally:
            if self.pool is not None:
                # After an error here, a batch may still be in flight: wait for it before the
                # transaction rolls back (its own error, if any, is the lesser one).
                self.pool.shutdown(wait=True)
                self.connection.dec_thread_sharing()

    def submit(self, write: Callable[..., None], *args) -> None:
        self.wait()
        if self.pool is None:
            write(self.connection, *args)
        else:
            self.pending = self.pool.submit(write, self.connection, *args)

    def wait(self) -> None:
        pending, self.pending = self.pending, None
        if pending is not None:
            pending.result()

    def execute(self, sql: str) -> None:
        self.wait()
        with self.connection.cursor() as cursor:
            cursor.execute(sql)


def _item_counters(project: Project, row: _Row) -> tuple[int, bool]:
    """(annotation_count, is_complete) of a new item: known before insert."""
    count = 1 if row.choices is not None else 0
    return count, count >= project.overlap


def _item_fields(project: Project, row: _Row, now: datetime) -> dict:
    count, complete = _item_counters(project, row)
    return {
        "project_id": project.id,
        "external_id": row.external_id,
        "text": row.text,
        "image": row.image,
        "width": row.width,
        "height": row.height,
        "metadata": row.metadata,
        "proposal": row.proposal,
        "annotation_count": count,
        "is_complete": complete,
        "created_at": now,
    }


def _annotation_constants(project: Project, annotator_id: int, source: str, now: datetime) -> dict:
    """The fields every imported annotation of a batch shares (all but item_id and value)."""
    return {
        "project_id": project.id,
        "annotator_id": annotator_id,
        "created_at": now,
        "late": False,
        "counted": True,
        "source": source,
    }


def _batch_bulk_create(
    using,
    project: Project,
    rows: list[_Row],
    annotator_id: int | None,
    source: str | None,
    now: datetime,
    before_write: Callable[..., None] | None,
) -> None:
    """Caller holds a transaction on `using`, this thread's connection. Insert one batch of
    items, then their annotations, with bulk_create."""
    if before_write is not None:
        before_write(rows, using=using)
    items = Item.objects.bulk_create([Item(**_item_fields(project, row, now)) for row in rows])
    if any(item.pk is None for item in items):  # a database that cannot return ids from a bulk insert
        ids = dict(
            Item.objects.filter(
                project=project, external_id__in=[item.external_id for item in items]
            ).values_list("external_id", "id")
        )
        for item in items:
            item.pk = ids[item.external_id]
    constants = _annotation_constants(project, annotator_id, source, now)
    Annotation.objects.bulk_create(
        [
            Annotation(item_id=item.pk, value=row.choices, **constants)
            for item, row in zip(items, rows, strict=True)
            if row.choices is not None
        ]
    )


def _existing_ids(project: Project, keys: list[str], *, using=connection) -> set[str]:
    if using.vendor == "postgresql":
        # One array parameter: a 2,000-placeholder IN list cost psycopg 10 ms to parse.
        with using.cursor() as cursor:
            cursor.execute(
                f"SELECT external_id FROM {using.ops.quote_name(Item._meta.db_table)}"
                " WHERE project_id = %s AND external_id = ANY(%s)",
                [project.id, keys],
            )
            return {external_id for (external_id,) in cursor.fetchall()}
    return set(
        Item.objects.filter(project=project, external_id__in=keys).values_list("external_id", flat=True)
    )


# The columns an import sets row by row, in the order _item_copy and _batch_copy write them;
# the others are the same for the whole import, or their defaults.
_ITEM_VARYING = (
    "external_id", "text", "image", "width", "height",
    "metadata", "proposal", "annotation_count", "is_complete",
)  # fmt: skip
_ANNOTATION_VARYING = ("item_id", "value")


def _item_copy(project: Project, rows: list[_Row], now: datetime) -> tuple[str, str]:
    """The COPY statement for the batch's items, and the items as lines of its text format."""
    copy_rows = _copy_rows(
        Item, _ITEM_VARYING, {"project_id": project.id, "created_at": now}, using=connection
    )
    text, number, json_text = _copy_text, _copy_number, _copy_json
    lines = []
    for row in rows:
        count, complete = _item_counters(project, row)
        lines.append(
            f"{text(row.external_id)}\t{text(row.text)}\t{text(row.image)}\t{number(row.width)}\t"
            f"{number(row.height)}\t{json_text(row.metadata)}\t{json_text(row.proposal)}\t{count}\t"
            f"{'t' if complete else 'f'}{copy_rows.tail}"
        )
    return copy_rows.sql, "".join(lines)


def _batch_copy(
    using,
    project: Project,
    rows: list[_Row],
    items: tuple[str, str],
    annotator_id: int | None,
    source: str | None,
    now: datetime,
    before_write: Callable[..., None] | None,
) -> None:
    """Caller holds a transaction on PostgreSQL. COPY one batch of items, then their annotations."""
    if before_write is not None:
        before_write(rows, using=using)
    table = using.ops.quote_name(Item._meta.db_table)
    _copy(using, *items)
    labelled = [row for row in rows if row.choices is not None]
    if not labelled:
        return
    with using.cursor() as cursor:
        cursor.execute(
            f"SELECT external_id, id FROM {table} WHERE project_id = %s AND external_id = ANY(%s)",
            [project.id, [row.external_id for row in labelled]],
        )
        ids = dict(cursor.fetchall())
    copy_rows = _copy_rows(
        Annotation,
        _ANNOTATION_VARYING,
        _annotation_constants(project, annotator_id, source, now),
        using=using,
    )
    _copy(
        using,
        copy_rows.sql,
        "".join(f"{ids[row.external_id]}\t{_copy_json(row.choices)}{copy_rows.tail}" for row in labelled),
    )


def _copy(using, sql: str, lines: str) -> None:
    with using.wrap_database_errors, using.cursor() as cursor, cursor.cursor.copy(sql) as copy:
        copy.write(lines.encode())


class _CopyRows(NamedTuple):
    sql: str  # COPY table (the varying columns, then the others) FROM STDIN
    tail: str  # "\t" and the other columns' values, then "\n": the end of every line


def _copy_rows(
    model: type[models.Model], varying: Sequence[str], constants: Mapping[str, Any], *, using
) -> _CopyRows:
    """How to COPY `model`'s rows that give the `varying` columns (attnames, in order) line by
    line: every other column gets its value from `constants`, or else its field's default, as
    bulk_create would give it. (The SQL does not depend on the constants' values.)"""
    fields = {f.attname: f for f in model._meta.concrete_fields if not f.primary_key}
    others = [name for name in fields if name not in varying]
    quote = using.ops.quote_name
    columns = [quote(fields[name].column) for name in (*varying, *others)]
    values = [constants[name] if name in constants else fields[name].get_default() for name in others]
    tail = "".join(
        "\t" + (_copy_json(value) if isinstance(fields[name], models.JSONField) else _copy_value(value))
        for name, value in zip(others, values, strict=True)
    )
    return _CopyRows(f"COPY {quote(model._meta.db_table)} ({', '.join(columns)}) FROM STDIN", tail + "\n")


# COPY's text format: tab between columns, \N for NULL, and a backslash escape for the
# characters that would break a line or a column.
_COPY_ESCAPES = str.maketrans({"\\": "\\\\", "\n": "\\n", "\r": "\\r", "\t": "\\t"})


def _copy_text(value: str) -> str:
    if "\\" in value or "\n" in value or "\r" in value or "\t" in value:
        return value.translate(_COPY_ESCAPES)
    return value


def _copy_number(value: int | None) -> str:
    return "\\N" if value is None else str(value)


def _copy_json(value: Any) -> str:
    if value is None:
        return "\\N"
    # Most items' metadata: json.dumps of {} cost a tenth of a 100,000-row import.
    if value == {} and type(value) is dict:
        return "{}"
    return _copy_text(json.dumps(value))


def _copy_value(value: Any) -> str:
    """A constant column's value (a number, a boolean, a string or a datetime) in COPY's text format."""
    if value is None:
        return "\\N"
    if isinstance(value, bool):
        return "t" if value else "f"
    if isinstance(value, datetime):
        return value.isoformat()
    return _copy_text(str(value))


def _source_user(name: str):
    """The inactive user that imported annotations of source `name` are attributed to."""
    user_model = get_user_model()
    user, _ = user_model.objects.get_or_create(
        **{user_model.USERNAME_FIELD: f"source:{name}"},
        defaults={"is_active": False, "password": make_password(None)},
    )
    return user


def _images_import(
    *,
    project: Project,
    filename: str,
    entries: Sequence[tuple[str, str, Callable[[], bytes]]],
    progress: Progress | None,
) -> ImportResult:
    """Decode, rotate and store each image, then write the items; files written are deleted on failure.

    `entries` holds (where, external id, read the bytes); the ids were checked already.
    """
    for where, external_id, _ in entries:
        _external_id_check(external_id, where=where, field=None)
    max_pixels = int(getattr(settings, "LABELLOOP_MAX_IMAGE_PIXELS", DEFAULT_MAX_IMAGE_PIXELS))
    reporter = _Progress(progress, len(entries), every=PROGRESS_EVERY_IMAGE)
    written: list[str] = []
    try:
        rows = []
        for done, (where, external_id, read) in enumerate(entries, start=1):
            data, extension, width, height = _image_prepare(read(), where=where, max_pixels=max_pixels)
            stem = PurePosixPath(external_id.replace("\\", "/")).name
            stem = stem[: -len(PurePosixPath(stem).suffix)] if PurePosixPath(stem).suffix else stem
            name = default_storage.get_valid_name(f"{secrets.token_hex(8)}-{stem[:100]}{extension}")
            stored = default_storage.save(f"projects/{project.id}/{name}", ContentFile(data))
            written.append(stored)
            rows.append(
                _Row(locator=where, external_id=external_id, image=stored, width=width, height=height)
            )
            reporter.step(done)
        result = _rows_write(project=project, rows=rows, source=None, filename=filename)
    except BaseException:
        for stored in written:
            try:
                default_storage.delete(stored)
            except OSError:
                logger.warning("could not delete %s after a rejected import", stored, exc_info=True)
        raise
    reporter.finish(result.items_created)
    return result


def _image_prepare(data: bytes, *, where: str, max_pixels: int) -> tuple[bytes, str, int, int]:
    """(bytes to store, extension, width, height) of an image, upright; refuses what Pillow cannot read."""
    formats = _open_formats()
    try:
        with Image.open(io.BytesIO(data), formats=formats) as probe:
            probe.verify()
        with Image.open(io.BytesIO(data), formats=formats) as image:
            width, height = image.size
            if width * height > max_pixels:
                raise ImportRejected(
                    f"{where}: {width}x{height} is {width * height:,} pixels,"
                    f" over the limit of {max_pixels:,}"
                )
            image.load()
            source_format = image.format
            orientation = image.getexif().get(274, 1)
            upright_already = orientation in (None, 0, 1)
            if source_format in _WEB_FORMAT_EXTENSIONS and upright_already:
                return data, _WEB_FORMAT_EXTENSIONS[source_format][0], width, height
            upright = image if upright_already else ImageOps.exif_transpose(image)
            out = io.BytesIO()
            if source_format in ("JPEG", "MPO"):
                if upright.mode not in ("RGB", "L", "CMYK"):
                    upright = upright.convert("RGB")
                upright.save(out, format="JPEG", quality=95, icc_profile=image.info.get("icc_profile"))
                extension = ".jpg"
            else:
                if upright.mode not in ("1", "L", "LA", "I", "I;16", "P", "RGB", "RGBA"):
                    has_alpha = "A" in upright.getbands()
                    upright = upright.convert("RGBA" if has_alpha else "RGB")
                upright.save(out, format="PNG", icc_profile=image.info.get("icc_profile"))
                extension = ".png"
            return out.getvalue(), extension, upright.width, upright.height
    except ImportRejected:
        raise
    except Image.DecompressionBombError as exc:
        raise ImportRejected(f"{where}: refused as a decompression bomb ({exc})") from None
    except UnidentifiedImageError:
        raise ImportRejected(f"{where}: not an image ({', '.join(formats)})") from None
    except (OSError, ValueError, SyntaxError, EOFError) as exc:
        raise ImportRejected(f"{where}: a broken image ({exc})") from None


def _open_formats() -> list[str]:
    """The formats Pillow may open: common raster formats only (no EPS, which runs Ghostscript)."""
    Image.init()
    return [name for name in _OPEN_FORMATS if name in Image.OPEN]


def _path_unsafe(name: str) -> bool:
    path = name.replace("\\", "/")
    return path.startswith("/") or bool(_DRIVE.match(path)) or ".." in path.split("/")


def _zip_entry_ignored(name: str) -> bool:
    parts = [part for part in name.replace("\\", "/").split("/") if part]
    return (
        not parts
        or parts[0] == "__MACOSX"
        or any(part.startswith(".") for part in parts)
        or parts[-1].lower() in _IGNORED_NAMES
    )


def _zip_read(archive: zipfile.ZipFile, info: zipfile.ZipInfo, where: str) -> bytes:
    if info.file_size > MAX_IMAGE_FILE_BYTES:
        raise ImportRejected(f"{where}: larger than {MAX_IMAGE_FILE_BYTES // 2**20} MB")
    try:
        with archive.open(info) as entry:
            data = entry.read(MAX_IMAGE_FILE_BYTES + 1)
    except RuntimeError:
        raise ImportRejected(f"{where}: the entry is encrypted") from None
    except (zipfile.BadZipFile, OSError, EOFError, NotImplementedError) as exc:
        raise ImportRejected(f"{where}: cannot be read from the zip ({exc})") from None
    if len(data) > MAX_IMAGE_FILE_BYTES:
        raise ImportRejected(f"{where}: larger than {MAX_IMAGE_FILE_BYTES // 2**20} MB")
    return data
