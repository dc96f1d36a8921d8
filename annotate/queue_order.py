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

The random slice. A share of picks (`Project.random_share`) is served from a uniformly random
subset of the pool, marked ahead as `pick_kind = 'random'`: drawn afresh when a model has scored
the pool, and topped up inside the next-item transaction when
the slice has nothing left for an annotator (`_random_slice_top_up`): `random_slice_redraw`,
which pool scoring calls. The items are drawn by
rejection sampling on the project's id range, never `ORDER BY random()`: every id in the range is
equally likely, so every item of the pool is. The queue's own search never serves slice items
(they would no longer be random), the slice's search serves them from item_random_slice_idx in a
freshly shuffled order, and `Project.random_slice_open`, read from the row the queue already
holds, spares a project without a slice any statement for it.

The statements are written in SQL: see annotate/raw_rows.py for why.
"""

import math
import random
from collections.abc import Iterator
from contextlib import contextmanager

from django.contrib.auth.models import AbstractBaseUser
from django.db import connection, transaction
from django.db.models import F
from django.utils import timezone

from annotate.models import Annotation, Assignment, Item, Membership, PickKind, Project, Skip
from annotate.raw_rows import columns

_ITEM = Item._meta.db_table
_ANNOTATION = Annotation._meta.db_table
_SKIP = Skip._meta.db_table
_MEMBERSHIP = Membership._meta.db_table
_PROJECT = Project._meta.db_table

# Queue order: highest priority first, then import order. Spelled as the queue index is,
# (-priority, id), so that a bookmark's row comparison can range-scan it.
QUEUE_ORDER_SQL = "-i.priority, i.id"

# Written into the SQL, not passed as parameters: see annotate/queue_leases.py `_OPEN`.
_RANDOM = f"'{PickKind.RANDOM}'"
_QUEUE = f"'{PickKind.QUEUE}'"
# Items marked per draw of the slice: small, so that the slice stays a sample of the pool as it
# is now (the strategy keeps taking items out of the pool the slice was drawn from).
RANDOM_SLICE_SIZE = 20  # at most; a small pool gets random_share of itself (at least 1)
_SAMPLE_IDS_PER_STATEMENT = 900  # under SQLite's oldest limit of 999 parameters
_SAMPLE_ROUNDS = 4
_slice_random = random.Random()  # the slice's sampling and shuffles; tests seed it


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
    it is usable (and, for a member, not in the random slice); with `below_overlap`, only items
    with a free slot. `select` defaults to
    every Item column (aliased `i`). The next-item pick runs it; so does moving a bookmark.
    """
    where = ["i.project_id = %s", "NOT i.is_complete"]
    params: list = [project.id]
    if membership is not None:
        # A member's slice items come from its own draw only (`_random_slice_candidate`); a
        # request without a membership has no draws, and the slice is plain queue to it.
        where.append(f"i.pick_kind <> {_RANDOM}")
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


def _random_slice_candidate(
    cursor, *, project: Project, annotator_id: int, held: list[Assignment]
) -> tuple | None:
    """Caller holds a transaction. A random-slice item with a free slot that the annotator has
    neither labeled, skipped nor holds, in a freshly shuffled order, locked: every Item column, or None.

    The slice is a few dozen rows of item_random_slice_idx, so ordering them by a salted hash of
    the id costs a small sort; the shuffle keeps the items served under one model version a
    random subset of the slice even when the file was sorted by class.
    """
    where = [
        "i.project_id = %s",
        f"i.pick_kind = {_RANDOM}",
        "NOT i.is_complete",
        "i.annotation_count + i.lease_count < %s",
        f"NOT EXISTS (SELECT 1 FROM {_ANNOTATION} a WHERE a.item_id = i.id AND a.annotator_id = %s)",
        f"NOT EXISTS (SELECT 1 FROM {_SKIP} s WHERE s.item_id = i.id AND s.annotator_id = %s)",
    ]
    params: list = [project.id, project.overlap, annotator_id, annotator_id]
    if held:
        where.append(f"i.id NOT IN ({', '.join(['%s'] * len(held))})")
        params += [a.item_id for a in held]
    sql = (
        f"SELECT {columns(Item, 'i')} FROM {_ITEM} i WHERE {' AND '.join(where)}"
        " ORDER BY (i.id * %s) %% 2147483647, i.id LIMIT 1"
    )
    params.append(_slice_random.randrange(1, 2**31 - 1))
    if connection.features.has_select_for_update_skip_locked:
        sql += " FOR UPDATE SKIP LOCKED"
    cursor.execute(sql, params)
    return cursor.fetchone()


def _random_slice_mark(cursor, *, project_id: int, size: int) -> int:
    """Caller holds a transaction. Mark `size` items of the pool (open, queue-picked, never
    labeled nor leased; fewer if it has fewer) as the random slice, uniformly at random; return
    how many were marked.

    Rejection sampling: ids drawn without replacement from the project's id range (read from
    item_project_id_idx's two ends), kept where they name an item of the pool. Every id is
    equally likely, so every item of the pool is, however sparse the project's ids: the pool's
    items are taken in the sample's order until `size` are marked, so the marked set is a
    uniform one. A pool sparser than the rounds can find gives a smaller slice, topped up again
    when it runs out.
    """
    cursor.execute(f"SELECT MIN(id), MAX(id) FROM {_ITEM} WHERE project_id = %s", [project_id])
    low, high = cursor.fetchone()
    if low is None:
        return 0
    span = high - low + 1
    ids = _slice_random.sample(range(low, high + 1), min(span, _SAMPLE_ROUNDS * _SAMPLE_IDS_PER_STATEMENT))
    marked, tried = 0, 0
    while tried < len(ids) and marked < size:
        chunk = ids[tried : tried + _SAMPLE_IDS_PER_STATEMENT]
        tried += len(chunk)
        cursor.execute(
            f"SELECT id FROM {_ITEM} WHERE project_id = %s AND pick_kind = {_QUEUE}"
            " AND NOT is_complete AND annotation_count = 0 AND lease_count = 0"
            f" AND id IN ({', '.join(['%s'] * len(chunk))})",
            [project_id, *chunk],
        )
        pool = {item_id for (item_id,) in cursor.fetchall()}
        # The first of the pool in the sample's (random) order: exactly what is missing.
        chosen = [item_id for item_id in chunk if item_id in pool][: size - marked]
        if chosen:
            cursor.execute(
                f"UPDATE {_ITEM} SET pick_kind = {_RANDOM} WHERE id IN ({', '.join(['%s'] * len(chosen))})",
                chosen,
            )
            marked += len(chosen)
    return marked


def _random_slice_size(cursor, *, project_id: int, share: float) -> int:
    """How many items the next slice batch marks: RANDOM_SLICE_SIZE, or `share` of a smaller pool
    (at least 1), so that a small project's queue order is not mostly held out."""
    cursor.execute(
        f"SELECT COUNT(*) FROM {_ITEM} WHERE project_id = %s AND pick_kind = {_QUEUE} AND NOT is_complete",
        [project_id],
    )
    (pool,) = cursor.fetchone()
    return max(1, min(RANDOM_SLICE_SIZE, math.ceil(share * pool)))


def _random_slice_top_up(cursor, *, project: Project) -> bool:
    """Caller holds a transaction; the slice had nothing for the annotator. Mark a fresh batch;
    when the pool has none left, close the slice (no more draws from it). Whether any was marked."""
    size = _random_slice_size(cursor, project_id=project.id, share=project.random_share)
    marked = _random_slice_mark(cursor, project_id=project.id, size=size)
    if not marked:
        cursor.execute(f"UPDATE {_PROJECT} SET random_slice_open = %s WHERE id = %s", [False, project.id])
        project.random_slice_open = False
    return marked > 0


def random_slice_redraw(*, project_id: int) -> int:
    """Draw the random slice afresh from the pool as it is now: the slice items nobody has
    labeled or holds go back to the queue, and a new uniform batch is marked (none when the
    project's random_share is 0). Returns how many were marked.

    Pool scoring (training/scoring.py) calls it once a model has scored the pool, so that the
    items served under the new version are a sample of the pool it scored. Items going back to
    the queue may stand ahead of bookmarks: call it inside `queue_reordering`, whose end
    retires them.
    """
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(f"SELECT random_share FROM {_PROJECT} WHERE id = %s", [project_id])
        row = cursor.fetchone()
        if row is None:
            return 0
        cursor.execute(
            f"UPDATE {_ITEM} SET pick_kind = {_QUEUE} WHERE project_id = %s AND pick_kind = {_RANDOM}"
            " AND NOT is_complete AND annotation_count = 0 AND lease_count = 0",
            [project_id],
        )
        marked = 0
        if row[0]:
            size = _random_slice_size(cursor, project_id=project_id, share=row[0])
            marked = _random_slice_mark(cursor, project_id=project_id, size=size)
        cursor.execute(
            f"UPDATE {_PROJECT} SET random_slice_open = %s WHERE id = %s", [marked > 0, project_id]
        )
    return marked


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
