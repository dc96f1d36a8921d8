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
from annotate.models import Annotation, Item, Project
from annotate.quality import consensus, voting_values

# Items per keyset page; each page's annotations come in one query.
PAGE_SIZE = 2000

Progress = Callable[[int, int], None]

_A_ITEM_ID = ANNOTATION_LAYOUT.index("item_id")
_A_ANNOTATOR_ID = ANNOTATION_LAYOUT.index("annotator_id")
_A_VALUE = ANNOTATION_LAYOUT.index("value")
_A_COUNTED = ANNOTATION_LAYOUT.index("counted")


class Vote(NamedTuple):
    """What voting_values reads of an annotation (on the text path `value` is its jsonb text)."""

    annotator_id: int
    value: object
    counted: bool


def votes_of(rows: list[tuple]) -> list:
    """The voting values of one item's annotation rows (oldest first)."""
    return voting_values(Vote(row[_A_ANNOTATOR_ID], row[_A_VALUE], row[_A_COUNTED]) for row in rows)


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


def item_queryset(*, project: Project, labeled_only: bool, after_id: int = 0):
    items = Item.objects.filter(project_id=project.id, id__gt=after_id)
    if labeled_only:
        # The repeated bound lets PostgreSQL start its semi-join at the page, not at the first
        # annotation (a merge scan from the start makes every page cost the whole table).
        labeled = Annotation.objects.filter(item_id=OuterRef("pk"), item_id__gt=after_id)
        items = items.filter(Exists(labeled))
    return items


def annotation_queryset(*, project: Project, first_id: int, last_id: int):
    # An id range, not IN (2,000 ids): a short statement the item index answers with one
    # range scan. Rows of items outside the page (other projects' items in between, or
    # unlabeled ones under labeled_only) are dropped by the caller.
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
    *, project: Project, labeled_only: bool, progress: Progress | None, read: Callable[[int], list]
) -> Iterator[list]:
    """Caller holds the read snapshot. `read(after_id)`'s pages until one is empty, with progress.

    `read` returns a page's entries, each starting with its item row, whose first column is the id.
    """
    total = item_queryset(project=project, labeled_only=labeled_only).count() if progress is not None else 0
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
    *, project: Project, labeled_only: bool, progress: Progress | None, layout: Layout
) -> Iterator[list[tuple]]:
    """Caller holds the read snapshot. The project's items a page at a time, in id order, as
    Django's values in `layout`'s order. Each entry is (item row, its annotation rows oldest
    first, its Consensus)."""
    label_order = list(project.labels.values_list("name", flat=True))

    def read(after_id: int) -> list[tuple]:
        items = item_queryset(project=project, labeled_only=labeled_only, after_id=after_id)
        page = list(items.order_by("id").values_list(*layout.fields)[:PAGE_SIZE])
        if not page:
            return []
        annotations = annotation_queryset(project=project, first_id=page[0][0], last_id=page[-1][0])
        by_item = group_by_item(page, list(annotations.values_list(*ANNOTATION_LAYOUT.fields)))
        entries = []
        for item in page:
            rows = by_item[item[0]]
            final = consensus(votes_of(rows), multi_label=project.multi_label, label_order=label_order)
            entries.append((item, rows, final))
        return entries

    return pages(project=project, labeled_only=labeled_only, progress=progress, read=read)
