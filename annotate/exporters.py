"""Exporting a project's items with their annotations and final labels: one function per format.

`export_json`, `export_jsonl` and `export_csv` are generators of text chunks, so a
StreamingHttpResponse, the background job (`item_export_run_job`) and the `export_project`
command share one code path. Each reads from one consistent snapshot: the whole generator
runs inside one transaction (REPEATABLE READ on PostgreSQL; a deferred read transaction on
SQLite, which in WAL mode is a snapshot and leaves writers alone). Items are read by keyset
pages on id and each page's annotations in one query, so memory stays flat however large
the project is.

On PostgreSQL the pages are read as text ready to be written (`POSTGRES_TEXT`): JSON columns
as jsonb prints them, `created_at` as `isoformat()` prints it, rows as plain tuples. Decoding
them into Python objects only to encode them again was most of an export's CPU. The output is
byte for byte the one the generic path (Django's row converters, then `json.dumps` or `csv`
of each record) writes; tests compare the two.

A generator holds its transaction open until it is exhausted or closed: consume it fully or
call `.close()` (StreamingHttpResponse does); closing rolls the read transaction back. Don't
write on the same connection while one is open: the writes would join the export's
transaction (on SQLite a deferred read transaction may not be able to take the write lock).
"""

import csv
import io
import json
import logging
import re
import tempfile
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from datetime import datetime
from json.encoder import encode_basestring
from typing import Any, NamedTuple

from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.core.files import File
from django.db import DEFAULT_DB_ALIAS, connection, connections, transaction
from django.db.models import Exists, Func, OuterRef, TextField
from django.db.models.functions import Cast
from django.utils import timezone
from django.utils.text import slugify

from annotate import tasks
from annotate.jobs import ProgressConnection
from annotate.models import Annotation, ExportJob, Item, Project
from annotate.quality import Consensus, consensus, voting_values

logger = logging.getLogger(__name__)

# Items per keyset page; each page's annotations come in one query.
PAGE_SIZE = 2000

# On PostgreSQL, read pages as text ready for the output (see the module docstring). Tests turn
# it off to compare the output with the generic path's.
POSTGRES_TEXT = True

FORMATS = ("json", "jsonl", "csv")
CONTENT_TYPES = {
    "json": "application/json",
    "jsonl": "application/x-ndjson",
    "csv": "text/csv",
}

CSV_COLUMNS = (
    "item_id",
    "external_id",
    "text",
    "final_label",
    "final_tie",
    "final_votes",
    "annotator",
    "value",
    "created_at",
    "active_ms",
    "late",
    "counted",
    "source",
    "proposal",
    "proposal_model_version_id",
    "proposal_accepted",
)
# Image projects add these after "text".
CSV_IMAGE_COLUMNS = ("image", "image_url", "width", "height")

# OWASP CSV injection: a spreadsheet runs a cell that starts with one of these as a formula.
_FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")

_ITEM_FIELDS = ("id", "external_id", "text", "image", "width", "height", "metadata")
_ANNOTATION_FIELDS = (
    "id",
    "item_id",
    "annotator_id",
    "annotator__username",
    "value",
    "created_at",
    "active_ms",
    "late",
    "counted",
    "source",
    "proposal_value",
    "proposal_model_version_id",
    "proposal_accepted",
)

Progress = Callable[[int, int], None]


# The snapshot and the pages ------------------------------------------------------------


@contextmanager
def _read_snapshot() -> Iterator[None]:
    """One transaction whose reads all see the same committed state.

    Inside a caller's transaction this is a savepoint and the caller's isolation applies
    (PostgreSQL allows SET TRANSACTION only before the first query).
    """
    connection = transaction.get_connection()
    outermost = not connection.in_atomic_block and connection.get_autocommit()
    with ExitStack() as stack:
        if outermost and connection.vendor == "sqlite":
            # The studio opens SQLite transactions IMMEDIATE (the queue needs the write lock at
            # BEGIN); an export holding that lock for minutes would stall every submit. A plain
            # (deferred) BEGIN reads a WAL snapshot from its first read and takes no write lock.
            mode = connection.transaction_mode
            connection.transaction_mode = None
            try:
                stack.enter_context(transaction.atomic())
            finally:
                connection.transaction_mode = mode
        else:
            stack.enter_context(transaction.atomic())
        if outermost and connection.vendor == "postgresql":
            # The default READ COMMITTED takes a new snapshot per statement: pages read while
            # annotators submit would mix states. Must be the transaction's first statement.
            with connection.cursor() as cursor:
                cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        yield


def _item_queryset(*, project: Project, labeled_only: bool, after_id: int = 0):
    items = Item.objects.filter(project_id=project.id, id__gt=after_id)
    if labeled_only:
        # The repeated bound lets PostgreSQL start its semi-join at the page, not at the first
        # annotation (a merge scan from the start makes every page cost the whole table).
        labeled = Annotation.objects.filter(item_id=OuterRef("pk"), item_id__gt=after_id)
        items = items.filter(Exists(labeled))
    return items


def _annotation_queryset(*, project: Project, first_id: int, last_id: int):
    # An id range, not IN (2,000 ids): a short statement the item index answers with one
    # range scan. Rows of items outside the page (other projects' items in between, or
    # unlabeled ones under labeled_only) are dropped by the caller.
    return Annotation.objects.filter(
        project_id=project.id, item_id__gte=first_id, item_id__lte=last_id
    ).order_by("item_id", "id")


def _pages(
    *, project: Project, labeled_only: bool, progress: Progress | None, read: Callable[[int], list]
) -> Iterator[list]:
    """Caller holds the read snapshot. `read(after_id)`'s pages until one is empty, with progress.

    `read` returns a page's entries, each starting with its item row, whose first column is the id.
    """
    total = _item_queryset(project=project, labeled_only=labeled_only).count() if progress is not None else 0
    done = 0
    last_id = 0
    while entries := read(last_id):
        last_id = entries[-1][0][0]
        yield entries
        done += len(entries)
        if progress is not None:
            progress(done, total)
    if progress is not None and not done:
        progress(0, total)


def _item_pages(*, project: Project, labeled_only: bool, progress: Progress | None) -> Iterator[list[tuple]]:
    """Caller holds the read snapshot. The project's items a page at a time, in id order.

    Each entry is (item row, its annotation rows oldest first, its Consensus).
    """
    label_order = list(project.labels.values_list("name", flat=True))

    def read(after_id: int) -> list[tuple]:
        items = _item_queryset(project=project, labeled_only=labeled_only, after_id=after_id)
        page = list(items.order_by("id").values_list(*_ITEM_FIELDS, named=True)[:PAGE_SIZE])
        if not page:
            return []
        by_item: dict[int, list] = {item.id: [] for item in page}
        annotations = _annotation_queryset(project=project, first_id=page[0].id, last_id=page[-1].id)
        for annotation in annotations.values_list(*_ANNOTATION_FIELDS, named=True):
            rows = by_item.get(annotation.item_id)
            if rows is not None:
                rows.append(annotation)
        entries = []
        for item in page:
            rows = by_item[item.id]
            final = consensus(voting_values(rows), multi_label=project.multi_label, label_order=label_order)
            entries.append((item, rows, final))
        return entries

    return _pages(project=project, labeled_only=labeled_only, progress=progress, read=read)


def _image_url(project: Project) -> Callable[[str], str | None] | None:
    """For an image project, the item image's URL from its stored name; None for other projects."""
    if not project.is_image:
        return None
    url = Item._meta.get_field("image").storage.url
    return lambda name: url(name) if name else None


def _item_record(item, annotations: list, final: Consensus, *, image_url) -> dict:
    record: dict[str, Any] = {"id": item.id, "external_id": item.external_id, "text": item.text}
    if image_url is not None:
        record["image"] = item.image
        record["image_url"] = image_url(item.image)
        record["width"] = item.width
        record["height"] = item.height
    record["metadata"] = item.metadata
    record["final_label"] = {"value": final.value, "tie": final.tie, "votes": final.votes}
    record["annotations"] = [_annotation_record(a) for a in annotations]
    return record


def _proposal(annotation) -> dict | None:
    if annotation.proposal_value is None and annotation.proposal_model_version_id is None:
        return None
    return {"value": annotation.proposal_value, "model_version_id": annotation.proposal_model_version_id}


def _annotation_record(annotation) -> dict:
    return {
        "id": annotation.id,
        "annotator": annotation.annotator__username,
        "value": annotation.value,
        "created_at": _iso(annotation.created_at),
        "active_ms": annotation.active_ms,
        "late": annotation.late,
        "counted": annotation.counted,
        "source": annotation.source,
        "proposal": _proposal(annotation),
        # The model's own definition of "accepted", applied to the row.
        "proposal_accepted": annotation.proposal_accepted,
    }


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment is not None else None


# The pages as text (PostgreSQL) ------------------------------------------------------------


class _IsoFormat(Func):
    """A timestamptz as `datetime.isoformat()` prints it in UTC: 6 fraction digits unless they are all 0."""

    arity = 1
    output_field = TextField()
    template = (
        "to_char(%(expressions)s AT TIME ZONE 'UTC', CASE"
        " WHEN date_trunc('second', %(expressions)s) = %(expressions)s"
        """ THEN 'YYYY-MM-DD"T"HH24:MI:SS"+00:00"' ELSE 'YYYY-MM-DD"T"HH24:MI:SS.US"+00:00"' END)"""
    )


def _as_text(name: str) -> Cast:
    return Cast(name, output_field=TextField())


# Plain columns first, then the expressions: the SELECT list keeps that order, so each row is
# the tuple psycopg makes, with no Django converter or reordering in between.
_ITEM_TEXT_COLUMNS = ("id", "external_id", "text", "image", "width", "height", _as_text("metadata"))
_ANNOTATION_TEXT_COLUMNS = (
    "item_id",
    "id",
    "annotator_id",
    "annotator__username",
    "active_ms",
    "late",
    "counted",
    "source",
    "proposal_model_version_id",
    "proposal_accepted",
    _as_text("value"),
    _IsoFormat("created_at"),
    _as_text("proposal_value"),
)
# Their positions in an item row and an annotation row.
_I_ID, _I_EXTERNAL_ID, _I_TEXT, _I_IMAGE, _I_WIDTH, _I_HEIGHT, _I_METADATA = range(7)
(
    _A_ITEM_ID,
    _A_ID,
    _A_ANNOTATOR_ID,
    _A_USERNAME,
    _A_ACTIVE_MS,
    _A_LATE,
    _A_COUNTED,
    _A_SOURCE,
    _A_PROPOSAL_VERSION,
    _A_PROPOSAL_ACCEPTED,
    _A_VALUE,
    _A_CREATED_AT,
    _A_PROPOSAL_VALUE,
) = range(13)


class _Vote(NamedTuple):
    """What voting_values reads of an annotation; `value` here is its jsonb text."""

    annotator_id: int
    value: str
    counted: bool


# Entries of the caches of rendered values; a cache that fills up starts over, so memory stays
# flat whatever the data.
_CACHE_SIZE = 10_000


def _cached(cache: dict, key, make: Callable[[], Any]):
    """`cache[key]`, made by `make()` when missing; a full cache starts over."""
    value = cache.get(key)
    if value is None:
        if len(cache) >= _CACHE_SIZE:
            cache.clear()
        value = cache[key] = make()
    return value


def _text_rows() -> bool:
    """Whether to read pages as text: on PostgreSQL whose session runs in UTC, as Django sets it.

    The generic path labels the session's wall-clock time UTC, so it prints +00:00 offsets; the
    text path prints UTC explicitly, which is the same only then.
    """
    return POSTGRES_TEXT and connection.vendor == "postgresql" and connection.timezone_name == "UTC"


def _fetchall(queryset) -> list[tuple]:
    """The queryset's rows as psycopg makes them, in one fetch (no per-row Django iteration)."""
    sql, params = queryset.query.sql_with_params()
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall()


def _item_pages_text(
    *, project: Project, labeled_only: bool, progress: Progress | None
) -> Iterator[list[tuple]]:
    """Caller holds the read snapshot, on PostgreSQL. As _item_pages, with rows as text tuples.

    Item rows follow _ITEM_TEXT_COLUMNS and annotation rows _ANNOTATION_TEXT_COLUMNS (JSON as
    jsonb's text, None for SQL NULL). Each entry is (item row, its annotation rows oldest first,
    the voting values' texts, its Consensus): equal texts decode to equal values, so items
    that share their votes share one Consensus.
    """
    label_order = list(project.labels.values_list("name", flat=True))
    finals: dict[tuple[str, ...], Consensus] = {}

    def read(after_id: int) -> list[tuple]:
        items = _item_queryset(project=project, labeled_only=labeled_only, after_id=after_id)
        page = _fetchall(items.order_by("id").values_list(*_ITEM_TEXT_COLUMNS)[:PAGE_SIZE])
        if not page:
            return []
        by_item: dict[int, list] = {item[_I_ID]: [] for item in page}
        annotations = _annotation_queryset(project=project, first_id=page[0][_I_ID], last_id=page[-1][_I_ID])
        for row in _fetchall(annotations.values_list(*_ANNOTATION_TEXT_COLUMNS)):
            rows = by_item.get(row[_A_ITEM_ID])
            if rows is not None:
                rows.append(row)
        entries = []
        for item in page:
            rows = by_item[item[_I_ID]]
            votes = tuple(
                voting_values(_Vote(row[_A_ANNOTATOR_ID], row[_A_VALUE], row[_A_COUNTED]) for row in rows)
            )
            final = _cached(
                finals,
                votes,
                lambda votes=votes: consensus(
                    [json.loads(text) for text in votes],
                    multi_label=project.multi_label,
                    label_order=label_order,
                ),
            )
            entries.append((item, rows, votes, final))
        return entries

    return _pages(project=project, labeled_only=labeled_only, progress=progress, read=read)


# A number with a fraction, the only JSON that json.loads then json.dumps may print otherwise.
_FRACTION = re.compile(r"[0-9]\.")
_JSON_FLAGS = {True: "true", False: "false", None: "null"}


def _json_from_jsonb(text: str | None) -> str:
    """What `_dumps` of the value Django decodes from jsonb's text `text` writes (None: SQL NULL).

    jsonb prints objects and arrays with json.dumps' separators and keys in its stored order,
    which json.loads keeps; it escapes strings as json.dumps(ensure_ascii=False) does. Its
    numbers print as PostgreSQL's numeric does: an integer as its digits, which int() and
    repr() keep; a number with a fraction ("1.50") may not survive a float, so such text
    (or any text with a digit before a point) goes through json.loads and json.dumps.
    """
    if text is None:
        return "null"
    if _FRACTION.search(text) is None:
        return text
    return _dumps(json.loads(text))


def _json_int(number: int | None) -> str:
    return "null" if number is None else str(number)


def _json_pages(*, project: Project, labeled_only: bool, progress: Progress | None) -> Iterator[list[str]]:
    """Caller holds the read snapshot. Each page's items as their JSON text, `_dumps(_item_record(…))`."""
    image_url = _image_url(project)
    if not _text_rows():
        for entries in _item_pages(project=project, labeled_only=labeled_only, progress=progress):
            yield [_dumps(_item_record(*entry, image_url=image_url)) for entry in entries]
        return
    finals: dict[tuple[str, ...], str] = {}
    values: dict[str, str] = {}

    def value_json(text: str) -> str:
        return _cached(values, text, lambda: _json_from_jsonb(text))

    def annotation_json(row: tuple) -> str:
        version = row[_A_PROPOSAL_VERSION]
        proposal_value = row[_A_PROPOSAL_VALUE]
        # jsonb null decodes to None as SQL NULL does: no proposal either way.
        if (proposal_value is None or proposal_value == "null") and version is None:
            proposal = "null"
        else:
            proposal = (
                f'{{"value": {_json_from_jsonb(proposal_value)}, "model_version_id": {_json_int(version)}}}'
            )
        return (
            f'{{"id": {row[_A_ID]}, "annotator": {encode_basestring(row[_A_USERNAME])},'
            f' "value": {value_json(row[_A_VALUE])}, "created_at": "{row[_A_CREATED_AT]}",'
            f' "active_ms": {row[_A_ACTIVE_MS]}, "late": {_JSON_FLAGS[row[_A_LATE]]},'
            f' "counted": {_JSON_FLAGS[row[_A_COUNTED]]}, "source": {encode_basestring(row[_A_SOURCE])},'
            f' "proposal": {proposal}, "proposal_accepted": {_JSON_FLAGS[row[_A_PROPOSAL_ACCEPTED]]}}}'
        )

    for entries in _item_pages_text(project=project, labeled_only=labeled_only, progress=progress):
        records = []
        for item, rows, votes, final in entries:
            final_json = _cached(
                finals,
                votes,
                lambda final=final: _dumps({"value": final.value, "tie": final.tie, "votes": final.votes}),
            )
            text = (
                f'{{"id": {item[_I_ID]}, "external_id": {encode_basestring(item[_I_EXTERNAL_ID])},'
                f' "text": {encode_basestring(item[_I_TEXT])}'
            )
            if image_url is not None:
                url = image_url(item[_I_IMAGE])
                text += (
                    f', "image": {encode_basestring(item[_I_IMAGE])},'
                    f' "image_url": {"null" if url is None else encode_basestring(url)},'
                    f' "width": {_json_int(item[_I_WIDTH])}, "height": {_json_int(item[_I_HEIGHT])}'
                )
            annotations = ", ".join([annotation_json(row) for row in rows])
            records.append(
                f'{text}, "metadata": {_json_from_jsonb(item[_I_METADATA])},'
                f' "final_label": {final_json}, "annotations": [{annotations}]}}'
            )
        yield records


def _csv_pages(*, project: Project, labeled_only: bool, progress: Progress | None) -> Iterator[list[list]]:
    """Caller holds the read snapshot. Each page's CSV rows (see export_csv)."""
    image_url = _image_url(project)
    if not _text_rows():
        for entries in _item_pages(project=project, labeled_only=labeled_only, progress=progress):
            yield [row for entry in entries for row in _csv_rows(*entry, image_url=image_url)]
        return
    finals: dict[tuple[str, ...], list] = {}
    cells: dict[str | None, str] = {}

    def value_cell(text: str | None) -> str:
        return _cached(
            cells, text, lambda: _csv_text(_value_cell(None if text is None else json.loads(text)))
        )

    for entries in _item_pages_text(project=project, labeled_only=labeled_only, progress=progress):
        out = []
        for item, rows, votes, final in entries:
            final_cells = _cached(
                finals,
                votes,
                lambda final=final: [_csv_text(_value_cell(final.value)), _csv_bool(final.tie), final.votes],
            )
            head = [item[_I_ID], _csv_text(item[_I_EXTERNAL_ID]), _csv_text(item[_I_TEXT])]
            if image_url is not None:
                image = item[_I_IMAGE]
                head += [_csv_text(image), _csv_text(image_url(image) or ""), item[_I_WIDTH], item[_I_HEIGHT]]
            head += final_cells
            if not rows:
                out.append(head + [""] * 10)
            for row in rows:
                out.append(
                    head
                    + [
                        _csv_text(row[_A_USERNAME]),
                        value_cell(row[_A_VALUE]),
                        row[_A_CREATED_AT],
                        row[_A_ACTIVE_MS],
                        _CSV_FLAGS[row[_A_LATE]],
                        _CSV_FLAGS[row[_A_COUNTED]],
                        _csv_text(row[_A_SOURCE]),
                        value_cell(row[_A_PROPOSAL_VALUE]),
                        row[_A_PROPOSAL_VERSION],
                        _CSV_FLAGS[row[_A_PROPOSAL_ACCEPTED]],
                    ]
                )
        yield out


# The formats -----------------------------------------------------------------------------


def export_jsonl(
    *, project: Project, labeled_only: bool = False, progress: Progress | None = None
) -> Iterator[str]:
    """The project's items as JSON Lines, one item per line, streamed a page at a time.

    `progress(items_done, items_total)` is called after each page (the total is counted at
    the start, in the same snapshot). Consume or close the generator: it holds a transaction.
    """
    with _read_snapshot():
        for records in _json_pages(project=project, labeled_only=labeled_only, progress=progress):
            yield "".join(record + "\n" for record in records)


def export_json(
    *, project: Project, labeled_only: bool = False, progress: Progress | None = None
) -> Iterator[str]:
    """The project's items as one JSON array, streamed a page at a time (see export_jsonl)."""
    with _read_snapshot():
        yield "["
        separator = "\n"
        for records in _json_pages(project=project, labeled_only=labeled_only, progress=progress):
            yield separator + ",\n".join(records)
            separator = ",\n"
        yield "\n]\n" if separator != "\n" else "]\n"


def export_csv(
    *, project: Project, labeled_only: bool = False, progress: Progress | None = None
) -> Iterator[str]:
    """One CSV row per annotation (an item without any gets one row with empty annotation cells).

    Labels are joined by ";". Cells that a spreadsheet would run as a formula start with a
    single quote. Streamed a page at a time (see export_jsonl).
    """
    columns = list(CSV_COLUMNS)
    if project.is_image:
        at = columns.index("text") + 1
        columns[at:at] = CSV_IMAGE_COLUMNS
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(columns)
    with _read_snapshot():
        yield _drain(buffer)
        for rows in _csv_pages(project=project, labeled_only=labeled_only, progress=progress):
            writer.writerows(rows)
            yield _drain(buffer)


def _csv_rows(item, annotations: list, final: Consensus, *, image_url) -> Iterator[list]:
    head = [item.id, _csv_text(item.external_id), _csv_text(item.text)]
    if image_url is not None:
        head += [_csv_text(item.image), _csv_text(image_url(item.image) or ""), item.width, item.height]
    head += [_csv_text(_value_cell(final.value)), _csv_bool(final.tie), final.votes]
    if not annotations:
        yield head + [""] * 10
    for annotation in annotations:
        yield head + [
            _csv_text(annotation.annotator__username),
            _csv_text(_value_cell(annotation.value)),
            _iso(annotation.created_at),
            annotation.active_ms,
            _csv_bool(annotation.late),
            _csv_bool(annotation.counted),
            _csv_text(annotation.source),
            _csv_text(_value_cell(annotation.proposal_value)),
            annotation.proposal_model_version_id,
            _csv_bool(annotation.proposal_accepted),
        ]


def _value_cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, dict) and set(value) == {"choices"} and isinstance(value["choices"], list):
        return ";".join(str(choice) for choice in value["choices"])
    return _dumps(value)


def _csv_text(text: str) -> str:
    return "'" + text if text.startswith(_FORMULA_PREFIXES) else text


_CSV_FLAGS = {True: "true", False: "false", None: ""}


def _csv_bool(flag: bool | None) -> str:
    return "" if flag is None else ("true" if flag else "false")


def _drain(buffer: io.StringIO) -> str:
    text = buffer.getvalue()
    buffer.seek(0)
    buffer.truncate()
    return text


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)


EXPORTERS: dict[str, Callable[..., Iterator[str]]] = {
    "json": export_json,
    "jsonl": export_jsonl,
    "csv": export_csv,
}


def _format_check(format: str) -> None:
    if format not in EXPORTERS:
        raise ValidationError(
            {"format": f"unknown export format {format!r}; use one of {', '.join(FORMATS)}"}
        )


def export_stream(
    *, project: Project, format: str, labeled_only: bool = False, progress: Progress | None = None
) -> Iterator[str]:
    """The exporter of `format` (json, jsonl or csv); ValidationError for any other."""
    _format_check(format)
    return EXPORTERS[format](project=project, labeled_only=labeled_only, progress=progress)


def export_filename(project: Project, format: str) -> str:
    """A download name for an export of `project`, e.g. `reviews-12-20250101-120000.jsonl`."""
    stamp = timezone.now().strftime("%Y%m%d-%H%M%S")
    return f"{slugify(project.name) or 'project'}-{project.id}-{stamp}.{format}"


# Background export -----------------------------------------------------------------------


def item_export_start(
    *, project: Project, format: str, labeled_only: bool = False, created_by: AbstractBaseUser | None = None
) -> ExportJob:
    """Queue an export of `project` to a file; a worker runs it once this transaction commits."""
    _format_check(format)
    with transaction.atomic():
        job = ExportJob.objects.create(
            project=project,
            created_by=created_by if created_by is not None and created_by.is_authenticated else None,
            format=format,
            labeled_only=labeled_only,
        )
        tasks.item_export_run.delay_on_commit(job.id)
    return job


class _ProgressWriter:
    """Writes a job's progress where pollers see it while the export's snapshot is still open:
    through a ProgressConnection, or inside a caller's transaction, there (a second connection
    could not see the uncommitted job)."""

    def __init__(self, job_id: int) -> None:
        self.job_id = job_id
        self._own = None if connections[DEFAULT_DB_ALIAS].in_atomic_block else ProgressConnection()
        self._last = -1

    def __call__(self, done: int, total: int) -> None:
        # 100 only once the file is stored.
        percent = min(99, done * 100 // total) if total else 99
        if percent == self._last:
            return
        self._last = percent
        if self._own is None:
            ExportJob.objects.filter(pk=self.job_id).update(progress=percent, items_written=done)
        else:
            self._own.update(ExportJob, self.job_id, progress=percent, items_written=done)

    def close(self) -> None:
        if self._own is not None:
            self._own.close()


def item_export_run_job(*, job_id: int) -> ExportJob:
    """Write the job's export to a file under MEDIA_ROOT/exports/, with progress; mark it succeeded or failed.

    A job already succeeded or failed is left alone (a redelivered task does nothing).
    """
    job = ExportJob.objects.select_related("project").get(pk=job_id)
    if job.status in (ExportJob.Status.SUCCEEDED, ExportJob.Status.FAILED):
        return job
    job.status = ExportJob.Status.RUNNING
    job.progress = 0
    job.items_written = 0
    job.error = ""
    job.save(update_fields=["status", "progress", "items_written", "error"])
    started = timezone.now()
    writer = _ProgressWriter(job.id)
    written = 0

    def track(done: int, total: int) -> None:
        nonlocal written
        written = done
        writer(done, total)

    try:
        with tempfile.TemporaryFile(mode="w+b") as spool:
            chunks = export_stream(
                project=job.project, format=job.format, labeled_only=job.labeled_only, progress=track
            )
            for chunk in chunks:
                spool.write(chunk.encode("utf-8"))
            spool.seek(0)
            # Storage sees only a complete export, and the job names the file only on success.
            job.file.save(export_filename(job.project, job.format), File(spool, name="export"), save=False)
    except Exception as exc:
        logger.exception("export failed: job=%s project=%s", job.id, job.project_id)
        job.status = ExportJob.Status.FAILED
        job.error = f"{type(exc).__name__}: {exc}"
        job.items_written = written
        job.finished_at = timezone.now()
        job.save(update_fields=["status", "error", "items_written", "finished_at"])
        return job
    finally:
        writer.close()
    job.status = ExportJob.Status.SUCCEEDED
    job.progress = 100
    job.items_written = written
    job.finished_at = timezone.now()
    job.save(update_fields=["status", "progress", "items_written", "file", "finished_at"])
    logger.info(
        "export done: job=%s project=%s items=%s seconds=%.1f",
        job.id,
        job.project_id,
        written,
        (job.finished_at - started).total_seconds(),
    )
    return job
