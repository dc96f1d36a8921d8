"""The queue's order: the next-item search, the members' bookmarks and the queue epoch.

Bookmarks. An annotator far ahead (20,000 items labeled, overlap 3) would make the queue's search
walk every item they labeled before finding one they have not. So each Membership keeps a
bookmark: a (priority, item id) position such that every item before it in queue order is
complete, or labeled or skipped by that member: states that never change back while the
order stands. The search then starts at the bookmark (a row comparison the queue index
range-scans), and each submit or skip (annotate/queue.py) moves the bookmark to the first item
at or after it that is still open to the member. An item leased to someone else, or to this
member, stops the bookmark, so an expired lease never hides an item.

The order stands as long as the project's `queue_epoch` does. Whatever may put an item ahead
of a bookmark bumps it: priorities rewritten (`queue_reordering`, around the whole rewrite),
items added, overlap raised (`queue_order_changed`). A bookmark of another epoch, or any
bookmark while a reordering is under way, is not used and not written.

The statements are written in SQL: see annotate/raw_rows.py for why.
"""

from collections.abc import Iterator
from contextlib import contextmanager

from django.contrib.auth.models import AbstractBaseUser
from django.db import connection
from django.db.models import F
from django.utils import timezone

from annotate.models import Annotation, Item, Membership, Project, Skip
from annotate.raw_rows import columns

_ITEM = Item._meta.db_table
_ANNOTATION = Annotation._meta.db_table
_SKIP = Skip._meta.db_table
_MEMBERSHIP = Membership._meta.db_table
_PROJECT = Project._meta.db_table

# Queue order: highest priority first, then import order. Spelled as the queue index is,
# (-priority, id), so that a bookmark's row comparison can range-scan it.
QUEUE_ORDER_SQL = "-i.priority, i.id"


def _bookmark_usable(*, project: Project, membership: Membership | None) -> bool:
    return (
        membership is not None
        and membership.queue_mark_item_id is not None
        and not project.queue_reordering
        and membership.queue_mark_epoch == project.queue_epoch
    )


def item_candidates_sql(
    *,
    project: Project,
    annotator_id: int,
    membership: Membership | None = None,
    select: str | None = None,
    exclude_item_ids: list[int] | tuple[int, ...] = (),
    below_overlap: bool = True,
) -> tuple[str, list]:
    """The queue's search: `SELECT … LIMIT 1` of the first item `annotator_id` may be given.

    Open items they have neither labeled nor skipped, in queue order, from their bookmark when
    it is usable; with `below_overlap`, only items with a free slot. `select` defaults to
    every Item column (aliased `i`). The next-item pick runs it; so does moving a bookmark.
    """
    where = ["i.project_id = %s", "NOT i.is_complete"]
    params: list = [project.id]
    if below_overlap:
        where.append("i.annotation_count + i.lease_count < %s")
        params.append(project.overlap)
    if _bookmark_usable(project=project, membership=membership):
        where.append("(-i.priority, i.id) >= (%s, %s)")
        params += [-membership.queue_mark_priority, membership.queue_mark_item_id]
    if exclude_item_ids:
        where.append(f"i.id NOT IN ({', '.join(['%s'] * len(exclude_item_ids))})")
        params += list(exclude_item_ids)
    where.append(f"NOT EXISTS (SELECT 1 FROM {_ANNOTATION} a WHERE a.item_id = i.id AND a.annotator_id = %s)")
    where.append(f"NOT EXISTS (SELECT 1 FROM {_SKIP} s WHERE s.item_id = i.id AND s.annotator_id = %s)")
    params += [annotator_id, annotator_id]
    sql = (
        f"SELECT {select or columns(Item, 'i')} FROM {_ITEM} i WHERE {' AND '.join(where)}"
        f" ORDER BY {QUEUE_ORDER_SQL} LIMIT 1"
    )
    return sql, params


def _bookmark_advance(*, project: Project, annotator: AbstractBaseUser, membership: Membership) -> None:
    """Caller holds a transaction, after a submit or skip. Move the member's bookmark to the
    first item at or after it that is still open to them: one UPDATE … FROM.

    The new position and the epoch it belongs to are read in one statement, so they agree;
    during a reordering nothing is written. When the old bookmark is used as the start, the
    update also requires its epoch to be still the project's.
    """
    search, params = item_candidates_sql(
        project=project,
        annotator_id=annotator.pk,
        membership=membership,
        select="i.priority, i.id",
        below_overlap=False,
    )
    guard, guard_params = "NOT p.queue_reordering", []
    if _bookmark_usable(project=project, membership=membership):
        guard, guard_params = guard + " AND p.queue_epoch = %s", [membership.queue_mark_epoch]
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {_MEMBERSHIP} SET queue_mark_priority = q.priority, queue_mark_item_id = q.id,"
            f" queue_mark_epoch = p.queue_epoch FROM ({search}) AS q, {_PROJECT} p"
            f" WHERE {_MEMBERSHIP}.id = %s AND p.id = %s AND {guard}"
            " RETURNING queue_mark_priority, queue_mark_item_id, queue_mark_epoch",
            [*params, membership.pk, project.id, *guard_params],
        )
        row = cursor.fetchone()
    if row is not None:
        membership.queue_mark_priority, membership.queue_mark_item_id, membership.queue_mark_epoch = row


def queue_order_changed(*, project_id: int) -> None:
    """Items may now stand ahead of bookmarks (items added, overlap raised): retire them all."""
    Project.objects.filter(pk=project_id).update(queue_epoch=F("queue_epoch") + 1)


@contextmanager
def queue_reordering(*, project_id: int) -> Iterator[None]:
    """Around a rewrite of the project's priorities: bookmarks are neither used nor written
    meanwhile, and those from before are retired.

    If the process dies inside, `queue_reordering` stays set and the queue merely walks without
    bookmarks until `queue_reordering_end` (the next rewrite, or the run sweeper) clears it.
    """
    Project.objects.filter(pk=project_id).update(queue_epoch=F("queue_epoch") + 1, queue_reordering=True)
    try:
        yield
    finally:
        queue_reordering_end(project_id=project_id)


def queue_reordering_end(*, project_id: int) -> None:
    """The rewrite of priorities is over: bookmarks count again, and leases from before are stale."""
    Project.objects.filter(pk=project_id).update(
        queue_epoch=F("queue_epoch") + 1, queue_reordering=False, queue_reordered_at=timezone.now()
    )
