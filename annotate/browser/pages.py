"""The item browser's pages: keyset pages of the filtered items, their count, and one item in full.

Pages are keyset pages: a cursor holds the last row's sort key and id, and the next page starts
right after it, so page 50 costs what page 1 does and ties in the sort key never repeat or skip
an item. By time, a row comparison `(created_at, id) > (…)` starts a range of the (project,
created_at, id) index, either way round (an import gives all its items one created_at, so
`created_at >= …` alone would start at the project's first item). By confidence, the items with
a proposal come first in (score, id) order, then the items without one in id order: two plain
keyset walks, no made-up score. How many items match is its own question (`item_count`), which
the page asks after showing the rows: counting reads every match.
"""

import base64
import binascii
import json
import math
from dataclasses import dataclass
from datetime import datetime

from django.core.exceptions import ValidationError
from django.db.models import BooleanField, F, Func, QuerySet, Value
from django.utils import timezone

from annotate.browser.filters import MAX_PAGE_SIZE, PAGE_SIZE, ItemFilters, item_list_filtered
from annotate.models import Annotation, Item, ItemNote, Membership, Project, Review


@dataclass(frozen=True)
class ItemPage:
    items: list[Item]  # each with .proposal_value and .proposal_score (None without one)
    next_cursor: str | None


def _cursor_encode(sort: str, key, item_id: int) -> str:
    raw = json.dumps([sort, key, item_id], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _cursor_decode(cursor: str, sort: str):
    """(sort key, item id) after which the page starts; ValidationError for a foreign cursor.
    A confidence cursor's key is None once the pages have reached the items without a proposal."""
    bad = ValidationError({"cursor": "is not a cursor of this listing (start again from the first page)"})
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        cursor_sort, key, item_id = json.loads(text)
    except (binascii.Error, UnicodeDecodeError, ValueError, TypeError):
        raise bad from None
    if cursor_sort != sort or not isinstance(item_id, int) or isinstance(item_id, bool):
        raise bad
    if sort.endswith("created_at"):
        try:
            key = datetime.fromisoformat(key)
        except (TypeError, ValueError):
            raise bad from None
        if timezone.is_naive(key):
            raise bad
    elif key is not None and (
        isinstance(key, bool) or not isinstance(key, int | float) or not math.isfinite(key)
    ):
        raise bad
    return key, item_id


class RowAfter(Func):
    """`(key, id) > (value, item_id)` (`<` when descending): a row comparison, which PostgreSQL
    turns into the start of an index range on (…, key, id). Written as `key > v OR (key = v AND
    id > i)` it is only a filter: the walk would start at the first row with key = v, which after
    an import (one created_at for all its items) is the first item of the project."""

    output_field = BooleanField()

    def __init__(self, key: str, value, item_id: int, *, descending: bool):
        super().__init__(F(key), F("id"), Value(value), Value(item_id))
        self.operator = "<" if descending else ">"

    def as_sql(self, compiler, connection, **extra):
        (key, key_params), (pk, pk_params), (value, value_params), (item, item_params) = (
            compiler.compile(expression) for expression in self.get_source_expressions()
        )
        sql = f"(({key}, {pk}) {self.operator} ({value}, {item}))"
        return sql, (*key_params, *pk_params, *value_params, *item_params)


def _rows(qs: QuerySet[Item], *, key: str | None, after, descending: bool, limit: int) -> list[Item]:
    """Up to `limit` rows of `qs` in (key, id) order (id order without a key) after the position
    `after` (None: from the start)."""
    if after is not None:
        value, item_id = after
        if key:
            # The plain bound as well: where key and id come from different tables (a proposal's
            # score, the item's id) the row comparison cannot start an index range, this can.
            bound = {f"{key}__{'lte' if descending else 'gte'}": value}
            qs = qs.filter(RowAfter(key, value, item_id, descending=descending), **bound)
        else:
            qs = qs.filter(id__lt=item_id) if descending else qs.filter(id__gt=item_id)
    fields = [key, "id"] if key else ["id"]
    return list(qs.order_by(*(f"-{name}" if descending else name for name in fields))[:limit])


def item_page(
    *,
    project: Project,
    filters: ItemFilters,
    cursor: str = "",
    page_size: int = PAGE_SIZE,
) -> ItemPage:
    """One keyset page of the filtered items in the filters' sort, and the cursor of the next.

    By time: (created_at, id). By confidence: the items with a proposal of the version in
    (score, id) order, then those without one in id order (the same direction), so no item
    needs a made-up score and each part is a plain keyset walk.
    """
    if not 1 <= page_size <= MAX_PAGE_SIZE:
        raise ValidationError({"page_size": f"must be from 1 to {MAX_PAGE_SIZE}"})
    after = _cursor_decode(cursor, filters.sort) if cursor else None
    qs = item_list_filtered(project=project, filters=filters, with_proposals=True)
    descending, limit = filters.sort.startswith("-"), page_size + 1
    if filters.sort.endswith("created_at"):
        rows = _rows(qs, key="created_at", after=after, descending=descending, limit=limit)
    else:
        rows = []
        # Every prediction has a score: a null score is an item without a proposal.
        if after is None or after[0] is not None:
            scored = qs.filter(proposal_score__isnull=False)
            rows = _rows(scored, key="proposal_score", after=after, descending=descending, limit=limit)
        if len(rows) < limit:
            unscored = qs.filter(proposal_score__isnull=True)
            since = after if after is not None and after[0] is None else None
            rows += _rows(unscored, key=None, after=since, descending=descending, limit=limit - len(rows))
    next_cursor = None
    if len(rows) > page_size:
        rows = rows[:page_size]
        last = rows[-1]
        if filters.sort.endswith("created_at"):
            next_cursor = _cursor_encode(filters.sort, last.created_at.isoformat(), last.pk)
        else:
            next_cursor = _cursor_encode(filters.sort, last.proposal_score, last.pk)
    if filters.proposals is None:
        for item in rows:
            item.proposal_value = item.proposal_score = None
    return ItemPage(items=rows, next_cursor=next_cursor)


def item_count(*, project: Project, filters: ItemFilters) -> int:
    """How many of the project's items pass the filters: a scan of the matches, so pages ask
    for it apart from their rows (the table shows at once; the count follows)."""
    return item_list_filtered(project=project, filters=filters).count()


def browser_members(*, project: Project) -> QuerySet[Membership]:
    """The project's members by username, with their users (the annotator filter's choices).
    Not projects.membership_list: its annotation counts scan every annotation of the project."""
    return Membership.objects.filter(project=project).select_related("user").order_by("user__username")


@dataclass(frozen=True)
class ItemDetail:
    item: Item
    annotations: list[Annotation]
    reviews: list[Review]
    notes: list[ItemNote]


def item_detail_get(*, project: Project, item_id: int) -> ItemDetail | None:
    """One item of the project with its annotations (and annotators), reviews and notes, oldest first."""
    item = Item.objects.filter(project=project, pk=item_id).first()
    if item is None:
        return None
    annotations = list(Annotation.objects.filter(item=item).select_related("annotator").order_by("id"))
    reviews = list(
        Review.objects.filter(item=item).select_related("reviewer", "annotation__annotator").order_by("id")
    )
    notes = list(ItemNote.objects.filter(item=item).select_related("author").order_by("id"))
    return ItemDetail(item=item, annotations=annotations, reviews=reviews, notes=notes)
