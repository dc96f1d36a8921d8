"""The read snapshot an export runs in, and its keyset pages of items with their annotations.

Each export reads from one consistent snapshot: the whole generator runs inside one
transaction (REPEATABLE READ on PostgreSQL; a deferred read transaction on SQLite, which in WAL
mode is a snapshot and leaves writers alone). Items are read by keyset pages on id and each
page's annotations in one query, so memory stays flat however large the project is. Rows are
tuples in the order of columns.Layout; this module's pages hold Django's values (the generic
path), exporting.postgres's hold PostgreSQL's text.
"""

from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from typing import NamedTuple

from django.db import transaction
from django.db.models import Exists, OuterRef

from annotate.exporting.columns import ANNOTATION_LAYOUT, Layout
from annotate.models import Annotation, FinalSource, Item, Project

# Items per keyset page; each page's annotations come in one query.
PAGE_SIZE = 2000

Progress = Callable[[int, int], None]

_A_ITEM_ID = ANNOTATION_LAYOUT.index("item_id")


class ExportScope(NamedTuple):
    """Which items an export holds: all, or only those with an annotation (`labeled_only`), with
    a reviewer's final label (`reviewed_only`), or in the item browser's `selection` (its filters,
    annotate.browser.items_filtered)."""

    labeled_only: bool = False
    reviewed_only: bool = False
    selection: dict | None = None


ALL_ITEMS = ExportScope()


@contextmanager
def read_snapshot() -> Iterator[None]:
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


def item_queryset(*, project: Project, scope: ExportScope, after_id: int = 0):
    items = Item.objects.filter(project_id=project.id, id__gt=after_id)
    if scope.selection:
        from annotate.browser import items_filtered  # here: the browser starts exports itself

        items = items & items_filtered(project=project, filters=scope.selection)
    if scope.reviewed_only:
        items = items.filter(final_source=FinalSource.REVIEW)
    if scope.labeled_only:
        # The repeated bound lets PostgreSQL start its semi-join at the page, not at the first
        # annotation (a merge scan from the start makes every page cost the whole table).
        labeled = Annotation.objects.filter(item_id=OuterRef("pk"), item_id__gt=after_id)
        items = items.filter(Exists(labeled))
    return items


def annotation_queryset(*, project: Project, first_id: int, last_id: int):
    # An id range, not IN (2,000 ids): a short statement the item index answers with one
    # range scan. Rows of items outside the page (other projects' items in between, or items
    # outside the scope) are dropped by the caller.
    return Annotation.objects.filter(
        project_id=project.id, item_id__gte=first_id, item_id__lte=last_id
    ).order_by("item_id", "id")


def group_by_item(page: list[tuple], annotations: list[tuple]) -> dict[int, list[tuple]]:
    """The page's items' ids -> their annotation rows, in the order given; rows of other items dropped."""
    by_item: dict[int, list] = {item[0]: [] for item in page}
    for row in annotations:
        rows = by_item.get(row[_A_ITEM_ID])
        if rows is not None:
            rows.append(row)
    return by_item


def pages(
    *, project: Project, scope: ExportScope, progress: Progress | None, read: Callable[[int], list]
) -> Iterator[list]:
    """Caller holds the read snapshot. `read(after_id)`'s pages until one is empty, with progress.

    `read` returns a page's entries, each starting with its item row, whose first column is the id.
    """
    total = item_queryset(project=project, scope=scope).count() if progress is not None else 0
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


def item_pages(
    *, project: Project, scope: ExportScope, progress: Progress | None, layout: Layout
) -> Iterator[list[tuple]]:
    """Caller holds the read snapshot. The project's items a page at a time, in id order, as
    Django's values in `layout`'s order. Each entry is (item row, its annotation rows oldest first)."""

    def read(after_id: int) -> list[tuple]:
        items = item_queryset(project=project, scope=scope, after_id=after_id)
        page = list(items.order_by("id").values_list(*layout.fields)[:PAGE_SIZE])
        if not page:
            return []
        annotations = annotation_queryset(project=project, first_id=page[0][0], last_id=page[-1][0])
        by_item = group_by_item(page, list(annotations.values_list(*ANNOTATION_LAYOUT.fields)))
        return [(item, by_item[item[0]]) for item in page]

    return pages(project=project, scope=scope, progress=progress, read=read)


def final_label_pages(
    *, project: Project, scope: ExportScope, progress: Progress | None, fields: tuple[str, ...]
) -> Iterator[list[tuple]]:
    """Caller holds the read snapshot. The items in `scope` that have a final label, a page at a
    time in id order, as ("id", *fields, "final_value") tuples (the exchange formats: COCO, YOLO,
    CoNLL, spaCy). An item without a final label is left out: in a training file it would read
    as "nothing here"."""
    labeled = item_queryset(project=project, scope=scope).filter(final_value__isnull=False)
    total = labeled.count() if progress is not None else 0
    done = last_id = 0
    while True:
        items = item_queryset(project=project, scope=scope, after_id=last_id).filter(
            final_value__isnull=False
        )
        page = list(items.order_by("id").values_list("id", *fields, "final_value")[:PAGE_SIZE])
        if not page:
            break
        last_id = page[-1][0]
        yield page
        done += len(page)
        if progress is not None:
            progress(done, total)
    if progress is not None and not done:
        progress(0, total)
