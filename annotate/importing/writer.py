"""Writing validated rows: one pass that checks ids and writes batches, all in one transaction.

On PostgreSQL the batches go in with COPY (several times faster than bulk_create), built on this
thread and written by a second one (`BatchWriter`) over this thread's connection, so PostgreSQL
stores batch k while batch k+1 is validated. Elsewhere they go in with bulk_create. After the
commit the planner's statistics are refreshed (`_statistics_refresh`): a next-item query right
after a bulk import took 193 ms (p50) until the items table was analysed, 5.6 ms after.
New items get random priorities (files are often class-sorted); training/coldstart.py reorders.
"""

import json
import logging
import random
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from typing import Any, NamedTuple

from django.contrib.auth import get_user_model
from django.contrib.auth.hashers import make_password
from django.db import DEFAULT_DB_ALIAS, DatabaseError, connection, connections, models, transaction
from django.utils import timezone

from annotate.faults import fault_point
from annotate.importing.rows import IdCheck, ImportRejected, ImportResult, Row
from annotate.models import Annotation, FinalSource, Item, PickKind, Project, ReviewState
from annotate.quality.finals import final_tallies
from annotate.quality.tallies import annotation_tallies, tallies_add
from annotate.queue import queue_order_changed
from annotate.signals import annotations_stored_on_commit, items_imported_on_commit

logger = logging.getLogger(__name__)

# Rows per COPY; bigger batches hand over between the threads less often (BatchWriter).
BATCH_SIZE = 5000
# On PostgreSQL, write items and annotations with COPY (several times faster than bulk_create).
POSTGRES_COPY = True
PROGRESS_EVERY = 1000
# ANALYZE after an import of at least this many rows (or into a table never analysed): a
# one-item API call should not pay for sampling a big table, a bulk import must.
ANALYZE_MIN_ROWS = 1000

Progress = Callable[[int, int], None]


@dataclass
class ProgressReporter:
    callback: Progress | None
    total: int
    every: int = PROGRESS_EVERY

    def step(self, done: int) -> None:
        if self.callback is not None and done and done % self.every == 0 and done < self.total:
            self.callback(done, self.total)

    def finish(self, done: int) -> None:
        if self.callback is not None:
            self.callback(done, done)


def rows_import(
    *,
    project: Project,
    filename: str,
    rows: Callable[[], Iterator[Row]],
    total: int,
    id_field: str | None,
    source: str | None,
    progress: Progress | None,
    shuffle: bool = True,
) -> ImportResult:
    """Validate and write the rows in one pass, in one transaction: a bad row, or an id that
    repeats or already exists, raises ImportRejected and rolls back whatever was written, so
    the import is all or nothing. (A first pass that only validated cost a sixth of the CPU.)"""
    if total == 0:
        raise ImportRejected(f"{filename}: no items in the file")
    reporter = ProgressReporter(progress, total)
    ids = IdCheck(project=project, filename=filename, id_field=id_field)

    def checked() -> Iterator[Row]:
        for done, row in enumerate(rows(), start=1):
            ids.see(f"{filename}, {row.locator}", row.external_id)
            reporter.step(done)
            yield row

    result = rows_write(
        project=project, rows=checked(), source=source, filename=filename, before_write=ids.check_existing,
        shuffle=shuffle,
    )  # fmt: skip
    reporter.finish(result.items_created)
    return result


def rows_write(
    *,
    project: Project,
    rows: Iterable[Row],
    source: str | None,
    filename: str,
    before_write: Callable[..., None] | None = None,
    shuffle: bool = True,
) -> ImportResult:
    """Write validated rows in one transaction: items in batches, each batch's annotations after it.

    On PostgreSQL the batches go in with COPY (POSTGRES_COPY), elsewhere with bulk_create.
    `before_write(batch, using=connection)` may refuse a batch (ImportRejected), rolling back
    what went before. Once committed, the planner's statistics are refreshed. `shuffle`: random
    priorities and items_imported; off, priority 0 (the queue serves the rows in their order).
    """
    now = timezone.now()
    draw = _priorities.random if shuffle else float
    copy = POSTGRES_COPY and connection.vendor == "postgresql"
    created = annotations = proposals = 0
    try:
        with transaction.atomic(), _LostConnection() as lost, BatchWriter(threaded=copy) as writer:
            if copy:
                # Each COPY checks its rows' foreign keys as it ends, while the next batch is
                # being validated, instead of all of them at COMMIT with nothing else to do.
                writer.execute("SET CONSTRAINTS ALL IMMEDIATE")
            annotator_id = None
            batch: list[Row] = []

            def flush() -> None:
                nonlocal annotator_id, batch
                if annotator_id is None and any(row.choices is not None for row in batch):
                    writer.wait()  # the connection is free again
                    annotator_id = _source_user(source).pk
                tallies.update(_rows_tallies(project, batch, annotator_id, now))
                priorities, rest = [draw() for _ in batch], (annotator_id, source, now, before_write)
                if copy:  # the lines are built here: the writer thread's share is PostgreSQL's
                    items = _item_copy(project, batch, priorities, now)
                    writer.submit(_batch_copy, project, batch, items, *rest)
                else:
                    writer.submit(_batch_bulk_create, project, batch, priorities, *rest)
                batch = []

            tallies: Counter = Counter()
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
            with connection.cursor() as cursor:
                tallies_add(cursor, project_id=project.id, added=tallies)
            queue_order_changed(project_id=project.id)
            if shuffle:
                items_imported_on_commit(project=project)
            transaction.on_commit(
                lambda: _statistics_refresh(items=created, annotations=annotations), robust=True
            )
            if annotations:
                # Imported labels count toward "retrain every N labels" as submitted ones do.
                annotations_stored_on_commit(project=project)
    except DatabaseError as exc:
        if lost.lost:
            # The server rolled the transaction back as the connection died.
            raise ImportRejected(f"{filename}: {CONNECTION_LOST} ({exc})") from exc
        # A concurrent import of the same ids, or a value the database refuses (e.g. "\u0000" in JSON).
        raise ImportRejected(
            f"{filename}: the database refused the items, nothing was stored: {exc}"
        ) from exc
    return ImportResult(items_created=created, annotations_created=annotations, proposals=proposals)


CONNECTION_LOST = (
    "the database connection was lost during the import; nothing was imported. Import the file again"
)


class _LostConnection:
    """Notes whether an error inside the import's transaction came with its connection dying.

    Asked inside the transaction, before Django rolls back (a failed rollback closes the
    connection and opens a new one, which would look healthy). psycopg marks its connection
    closed once the server has gone; a query refused on a live connection leaves it open.
    """

    lost = False

    def __enter__(self) -> "_LostConnection":
        return self

    def __exit__(self, exc_type, exc, traceback) -> None:
        if exc_type is not None and issubclass(exc_type, DatabaseError):
            raw = connection.connection
            self.lost = raw is None or bool(getattr(raw, "closed", False))


def _statistics_refresh(*, items: int, annotations: int) -> None:
    """ANALYZE the tables an import wrote to (PostgreSQL), so the next-item query is planned with
    the new rows: autovacuum would only get to it later. Run after the import's commit.

    Only the columns queries filter, join and sort on (keys, numbers, flags, dates), with the
    table's row count: the payload (text, names, JSON) cost two thirds of a whole-table ANALYZE
    (65 against 22 ms on 60,000 items), and an ANALYZE of some columns leaves autovacuum's count
    of changed rows alone, so it still analyses the whole table, with the full sample, in its time.
    """
    if connection.vendor != "postgresql":
        return
    quote = connection.ops.quote_name
    # A sample of 3,000 rows (statistics target 10, not 100) gives the planner the row count and
    # the spread it needs to pick the queue's index: 14 against 161 ms on 400,000 items.
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SET LOCAL default_statistics_target = 10")
        for model, written in ((Item, items), (Annotation, annotations)):
            if not written:
                continue
            table = quote(model._meta.db_table)
            cursor.execute("SELECT reltuples FROM pg_class WHERE oid = %s::regclass", [table])
            (estimate,) = cursor.fetchone()
            if written >= ANALYZE_MIN_ROWS or estimate < 0:  # -1: never analysed
                planned = [
                    quote(f.column) for f in model._meta.concrete_fields if not isinstance(f, _PAYLOAD)
                ]
                cursor.execute(f"ANALYZE {table} ({', '.join(planned)})")


# Columns no query filters or sorts on by their value.
_priorities = random.Random()  # new items' random priorities; the simulation seeds it

_PAYLOAD = (models.CharField, models.TextField, models.JSONField, models.FileField)


class BatchWriter:
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

    def __enter__(self) -> "BatchWriter":
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


def _item_counters(project: Project, row: Row) -> tuple[int, bool]:
    """(annotation_count, is_complete) of a new item: known before insert."""
    count = 1 if row.choices is not None else 0
    return count, count >= project.overlap or row.gold is not None  # gold items are complete


def _item_quality(project: Project, row: Row) -> tuple[dict | None, str, str]:
    """(final_value, final_source, review_state) of a new item: an imported label is its one vote,
    a gold value its true value."""
    if row.gold is not None:
        return row.gold, FinalSource.GOLD, ReviewState.NONE
    if row.choices is None:
        return None, FinalSource.NONE, ReviewState.NONE
    _, complete = _item_counters(project, row)
    return row.choices, FinalSource.SINGLE, ReviewState.QUEUED if complete else ReviewState.NONE


def _rows_tallies(project: Project, rows: list[Row], annotator_id: int | None, now: datetime) -> Counter:
    """What a batch adds to the dashboards' tallies (final labels, labels per day, progress)."""
    added: Counter = Counter()
    day = timezone.localdate(now).isoformat()
    for row in rows:
        value, source, _ = _item_quality(project, row)
        added.update(final_tallies(value, source))
        if row.choices is not None:
            added.update(
                annotation_tallies(
                    annotator_id=annotator_id,
                    day=day,
                    active_ms=0,
                    proposal_version_id=None,
                    proposal_accepted=None,
                )
            )
            if _item_counters(project, row)[1]:
                added["completed_day", day] += 1
    return added


def _item_fields(project: Project, row: Row, priority: float, now: datetime) -> dict:
    count, complete = _item_counters(project, row)
    final_value, final_source, review_state = _item_quality(project, row)
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
        "final_value": final_value,
        "final_source": final_source,
        "review_state": review_state,
        "pick_kind": PickKind.GOLD if row.gold is not None else PickKind.QUEUE,
        "gold_value": row.gold,
        "priority": priority,
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
    rows: list[Row],
    priorities: list[float],
    annotator_id: int | None,
    source: str | None,
    now: datetime,
    before_write: Callable[..., None] | None,
) -> None:
    """Caller holds a transaction on `using`, this thread's connection. Insert one batch of
    items, then their annotations, with bulk_create."""
    if before_write is not None:
        before_write(rows, using=using)
    fields = [_item_fields(project, row, p, now) for row, p in zip(rows, priorities, strict=True)]
    items = Item.objects.bulk_create([Item(**f) for f in fields])
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
    fault_point("import.batch_written", connection=using, rows=len(rows))


# The columns an import sets row by row, in the order _item_copy and _batch_copy write them;
# the others are the same for the whole import, or their defaults.
_ITEM_VARYING = (
    "external_id", "text", "image", "width", "height",
    "metadata", "proposal", "annotation_count", "is_complete",
    "final_value", "final_source", "review_state", "pick_kind", "gold_value", "priority",
)  # fmt: skip
_ANNOTATION_VARYING = ("item_id", "value")


def _item_copy(project: Project, rows: list[Row], priorities: list[float], now: datetime) -> tuple[str, str]:
    """The COPY statement for the batch's items, and the items as lines of its text format."""
    copy_rows = _copy_rows(
        Item, _ITEM_VARYING, {"project_id": project.id, "created_at": now}, using=connection
    )
    text, number, json_text = _copy_text, _copy_number, _copy_json
    lines = []
    for row, priority in zip(rows, priorities, strict=True):
        count, complete = _item_counters(project, row)
        final_value, final_source, review_state = _item_quality(project, row)
        lines.append(
            f"{text(row.external_id)}\t{text(row.text)}\t{text(row.image)}\t{number(row.width)}\t"
            f"{number(row.height)}\t{json_text(row.metadata)}\t{json_text(row.proposal)}\t{count}\t"
            f"{'t' if complete else 'f'}\t{json_text(final_value)}\t{final_source}\t{review_state}\t"
            f"{PickKind.GOLD if row.gold is not None else PickKind.QUEUE}\t{json_text(row.gold)}\t"
            f"{priority!r}{copy_rows.tail}"
        )
    return copy_rows.sql, "".join(lines)


def _batch_copy(
    using,
    project: Project,
    rows: list[Row],
    items: tuple[str, str],
    annotator_id: int | None,
    source: str | None,
    now: datetime,
    before_write: Callable[..., None] | None,
) -> None:
    """Caller holds a transaction on PostgreSQL. COPY one batch of items, then their annotations."""
    if before_write is not None:
        before_write(rows, using=using)
    _copy(using, *items)
    labelled = [row for row in rows if row.choices is not None]
    if labelled:
        _annotations_copy(using, project, labelled, annotator_id, source, now)
    fault_point("import.batch_written", connection=using, rows=len(rows))


def _annotations_copy(
    using, project: Project, labelled: list[Row], annotator_id: int | None, source: str | None, now: datetime
) -> None:
    """COPY the annotations of a batch's labelled rows, whose items are written."""
    table = using.ops.quote_name(Item._meta.db_table)
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
