"""The fast path on PostgreSQL: pages read as text ready to be written.

JSON columns come as jsonb prints them, `created_at` as `isoformat()` prints it, rows as plain
tuples. Decoding them into Python objects only to encode them again was most of an export's
CPU. The columns (exporting.columns) say which fields are read as text; the output is byte for
byte the one the generic path (Django's row converters, then `json.dumps` or `csv` of each
record) writes, and tests compare the two.
"""

from collections.abc import Callable, Iterator
from typing import Any

from django.db import connection
from django.db.models import Func, TextField
from django.db.models.functions import Cast

from annotate.exporting import pages
from annotate.exporting.columns import ANNOTATION_LAYOUT, ISO, PLAIN, TEXT, Layout
from annotate.models import Project

# On PostgreSQL, read pages as text ready for the output. Tests turn it off to compare the
# output with the generic path's.
POSTGRES_TEXT = True

# Entries of the caches of rendered values; a cache that fills up starts over, so memory stays
# flat whatever the data.
_CACHE_SIZE = 10_000


class _IsoFormat(Func):
    """A timestamptz as `datetime.isoformat()` prints it in UTC: 6 fraction digits unless they are all 0."""

    arity = 1
    output_field = TextField()
    template = (
        "to_char(%(expressions)s AT TIME ZONE 'UTC', CASE"
        " WHEN date_trunc('second', %(expressions)s) = %(expressions)s"
        """ THEN 'YYYY-MM-DD"T"HH24:MI:SS"+00:00"' ELSE 'YYYY-MM-DD"T"HH24:MI:SS.US"+00:00"' END)"""
    )


def _selected(layout: Layout) -> list:
    """The SELECT list of `layout`: plain fields by name, the others as text expressions."""
    made = {
        PLAIN: lambda name: name,
        TEXT: lambda name: Cast(name, output_field=TextField()),
        ISO: _IsoFormat,
    }
    return [made[how](field) for field, how in zip(layout.fields, layout.select, strict=True)]


def text_rows() -> bool:
    """Whether to read pages as text: on PostgreSQL whose session runs in UTC, as Django sets it.

    The generic path labels the session's wall-clock time UTC, so it prints +00:00 offsets; the
    text path prints UTC explicitly, which is the same only then.
    """
    return POSTGRES_TEXT and connection.vendor == "postgresql" and connection.timezone_name == "UTC"


def cached(cache: dict, key, make: Callable[[], Any]):
    """`cache[key]`, made by `make()` when missing; a full cache starts over."""
    value = cache.get(key)
    if value is None:
        if len(cache) >= _CACHE_SIZE:
            cache.clear()
        value = cache[key] = make()
    return value


def _fetchall(queryset) -> list[tuple]:
    """The queryset's rows as psycopg makes them, in one fetch (no per-row Django iteration)."""
    sql, params = queryset.query.sql_with_params()
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall()


def item_pages_text(
    *, project: Project, scope: pages.ExportScope, progress: pages.Progress | None, layout: Layout
) -> Iterator[list[tuple]]:
    """Caller holds the read snapshot, on PostgreSQL. As pages.item_pages, with rows as text tuples.

    JSON fields come as jsonb's text, None for SQL NULL. Each entry is (item row, its annotation
    rows oldest first).
    """
    item_select, annotation_select = _selected(layout), _selected(ANNOTATION_LAYOUT)

    def read(after_id: int) -> list[tuple]:
        items = pages.item_queryset(project=project, scope=scope, after_id=after_id)
        page = _fetchall(items.order_by("id").values_list(*item_select)[: pages.PAGE_SIZE])
        if not page:
            return []
        annotations = pages.annotation_queryset(project=project, first_id=page[0][0], last_id=page[-1][0])
        by_item = pages.group_by_item(page, _fetchall(annotations.values_list(*annotation_select)))
        return [(item, by_item[item[0]]) for item in page]

    return pages.pages(project=project, scope=scope, progress=progress, read=read)
