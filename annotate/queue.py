"""The annotator queue: leasing the next item, submitting, skipping. The hot path.

Every function here keeps the Item row's counters (`annotation_count`, `lease_count`,
`is_complete`) right in the same transaction as the change, so that choosing the next item
is one indexed query whose overlap test reads only the Item row itself. On PostgreSQL the
pick is `SELECT … FOR UPDATE SKIP LOCKED`: after a concurrent commit PostgreSQL re-checks the
locked row's own columns, never subqueries on other tables, so the counters must live on the
row. On SQLite, `transaction_mode="IMMEDIATE"` serialises the whole pick-and-lease.

Bookmarks. An annotator far ahead (20,000 items labeled, overlap 3) would make that query walk
every item they labeled before finding one they have not. So each Membership keeps a
bookmark: a (priority, item id) position such that every item before it in queue order is
complete, or labeled or skipped by that member: states that never change back while the
order stands. The query then starts at the bookmark (a row comparison the queue index
range-scans), and each submit or skip moves the bookmark to the first item at or after it
that is still open to the member. An item leased to someone else, or to this member, stops
the bookmark, so an expired lease never hides an item.

The order stands as long as the project's `queue_epoch` does. Whatever may put an item ahead
of a bookmark bumps it: priorities rewritten (`queue_reordering`, around the whole rewrite),
items added, overlap raised (`queue_order_changed`). A bookmark of another epoch, or any
bookmark while a reordering is under way, is not used and not written.
"""

import logging
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db import connection, transaction
from django.db.models import BooleanField, Case, Exists, F, Func, OuterRef, QuerySet, Value, When
from django.utils import timezone

from annotate.models import Annotation, Assignment, Item, Membership, Neg, Project, Skip
from annotate.values import annotation_value_validate

logger = logging.getLogger(__name__)


class QueueError(Exception):
    """A queue request that cannot be served as asked; the message says why."""


class LeaseLimitReached(QueueError):
    pass


class NotAssigned(QueueError):
    pass


@dataclass(frozen=True)
class Lease:
    assignment: Assignment
    item: Item
    is_new: bool


def _now() -> datetime:
    return timezone.now()


def _max_leases() -> int:
    return settings.LABELLOOP_MAX_LEASES_PER_ANNOTATOR


def _expire_leases(*, project_id: int, now: datetime) -> int:
    """Caller holds a transaction. Close the project's expired leases and give their slots back.

    One UPDATE … RETURNING marks them expired: on PostgreSQL a concurrent transaction that
    expires the same rows waits, re-checks `status = 'open'` and skips them, so each lease
    is given back exactly once.
    """
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE annotate_assignment SET status = %s, closed_at = %s"
            " WHERE project_id = %s AND status = %s AND expires_at <= %s RETURNING item_id",
            [
                Assignment.Status.EXPIRED,
                connection.ops.adapt_datetimefield_value(now),
                project_id,
                Assignment.Status.OPEN,
                connection.ops.adapt_datetimefield_value(now),
            ],
        )
        released = Counter(row[0] for row in cursor.fetchall())
    if released:
        Item.objects.filter(id__in=released).update(
            lease_count=F("lease_count")
            - Case(*(When(id=item_id, then=Value(n)) for item_id, n in released.items()))
        )
    return sum(released.values())


# Queue order: highest priority first, then import order. Spelled as the queue index is
# (-priority, id ascending), so that a bookmark's row comparison can range-scan it.
QUEUE_ORDER = (Neg("priority").asc(), F("id").asc())


class _AtOrAfter(Func):
    """`(-priority, id) >= (-mark priority, mark id)`: at or after a bookmark in queue order."""

    output_field = BooleanField()
    arity = 4

    def as_sql(self, compiler, connection, **extra_context):
        compiled = [compiler.compile(expression) for expression in self.get_source_expressions()]
        sql = "({}, {}) >= ({}, {})".format(*(part_sql for part_sql, _ in compiled))
        return sql, tuple(param for _, params in compiled for param in params)


def _bookmark_usable(*, project: Project, membership: Membership | None) -> bool:
    return (
        membership is not None
        and membership.queue_mark_item_id is not None
        and not project.queue_reordering
        and membership.queue_mark_epoch == project.queue_epoch
    )


def _items_open_to(
    *, project: Project, annotator: AbstractBaseUser, membership: Membership | None = None
) -> QuerySet[Item]:
    """Open items that `annotator` has neither labeled nor skipped, in queue order, from their
    bookmark when it is usable."""
    items = Item.objects.filter(project_id=project.id, is_complete=False).filter(
        ~Exists(Annotation.objects.filter(item_id=OuterRef("pk"), annotator_id=annotator.pk)),
        ~Exists(Skip.objects.filter(item_id=OuterRef("pk"), annotator_id=annotator.pk)),
    )
    if _bookmark_usable(project=project, membership=membership):
        items = items.filter(
            _AtOrAfter(
                Neg("priority"),
                F("id"),
                Value(-membership.queue_mark_priority),
                Value(membership.queue_mark_item_id),
            )
        )
    return items.order_by(*QUEUE_ORDER)


def item_candidates_for(
    *, project: Project, annotator: AbstractBaseUser, membership: Membership | None = None
) -> QuerySet[Item]:
    """Items this annotator may be given next, in queue order (highest priority, then import order).

    With the annotator's `membership`, the walk starts at their bookmark.
    """
    return (
        _items_open_to(project=project, annotator=annotator, membership=membership)
        .alias(load=F("annotation_count") + F("lease_count"))
        .filter(load__lt=project.overlap)
    )


def _bookmark_advance(*, project: Project, annotator: AbstractBaseUser, membership: Membership) -> None:
    """Caller holds a transaction, after a submit or skip. Move the member's bookmark to the
    first item at or after it that is still open to them: one UPDATE … FROM.

    The new position and the epoch it belongs to are read in one statement, so they agree;
    during a reordering nothing is written. When the old bookmark is used as the start, the
    update also requires its epoch to be still the project's.
    """
    position = _items_open_to(project=project, annotator=annotator, membership=membership).filter(
        project__queue_reordering=False
    )
    if _bookmark_usable(project=project, membership=membership):
        position = position.filter(project__queue_epoch=membership.queue_mark_epoch)
    sql, params = position.values("priority", "id", queue_epoch=F("project__queue_epoch"))[
        :1
    ].query.sql_with_params()
    table = Membership._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {table} SET queue_mark_priority = q.priority, queue_mark_item_id = q.id,"
            f" queue_mark_epoch = q.queue_epoch FROM ({sql}) AS q WHERE {table}.id = %s"
            " RETURNING queue_mark_priority, queue_mark_item_id, queue_mark_epoch",
            [*params, membership.pk],
        )
        row = cursor.fetchone()
    if row is not None:
        membership.queue_mark_priority, membership.queue_mark_item_id, membership.queue_mark_epoch = row


def _membership_check(
    *, project: Project, annotator: AbstractBaseUser, membership: Membership | None
) -> None:
    if membership is not None and (membership.project_id != project.id or membership.user_id != annotator.pk):
        raise ValueError("membership is not the annotator's in this project")


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
    Project.objects.filter(pk=project_id).update(queue_epoch=F("queue_epoch") + 1, queue_reordering=False)


def assignment_next(
    *,
    project: Project,
    annotator: AbstractBaseUser,
    membership: Membership | None = None,
    exclude_item_ids: tuple[int, ...] | list[int] = (),
    now: datetime | None = None,
) -> Lease | None:
    """Lease the next item to `annotator`, or give back a lease they already hold.

    A held lease on an item not in `exclude_item_ids` is returned first (a reloaded page gets
    its item back). Otherwise a new item is leased, unless the annotator already holds
    LABELLOOP_MAX_LEASES_PER_ANNOTATOR (LeaseLimitReached). Returns None when nothing is left.
    With the annotator's `membership` the search starts at their bookmark. At most 6 SQL
    statements, whatever the project's size.
    """
    _membership_check(project=project, annotator=annotator, membership=membership)
    now = now or _now()
    excluded = {int(i) for i in exclude_item_ids}
    with transaction.atomic():
        _expire_leases(project_id=project.id, now=now)
        held = list(
            Assignment.objects.select_related("item").filter(
                project_id=project.id, annotator_id=annotator.pk, status=Assignment.Status.OPEN
            )
        )
        for assignment in held:
            if assignment.item_id not in excluded:
                return Lease(assignment=assignment, item=assignment.item, is_new=False)
        if len(held) >= _max_leases():
            raise LeaseLimitReached(
                f"you already hold {len(held)} items; submit or skip one before asking for more"
            )
        candidates = item_candidates_for(project=project, annotator=annotator, membership=membership).exclude(
            id__in=[a.item_id for a in held]
        )
        item = next(iter(candidates.select_for_update(skip_locked=True)[:1]), None)
        if item is None:
            return None
        assignment = Assignment.objects.create(
            project_id=project.id,
            item=item,
            annotator=annotator,
            status=Assignment.Status.OPEN,
            created_at=now,
            expires_at=now + timedelta(seconds=project.lease_seconds),
        )
        Item.objects.filter(pk=item.pk).update(lease_count=F("lease_count") + 1)
        item.lease_count += 1
    return Lease(assignment=assignment, item=item, is_new=True)


def _latest_assignment_locked(*, project: Project, item_id: int, annotator: AbstractBaseUser) -> Assignment:
    """Caller holds a transaction. Lock and return the annotator's latest lease of the item (and the item)."""
    assignment = (
        Assignment.objects.select_for_update()
        .select_related("item")
        .filter(project_id=project.id, item_id=item_id, annotator_id=annotator.pk)
        .order_by("-id")
        .first()
    )
    if assignment is None:
        raise NotAssigned(f"item {item_id} is not assigned to you; ask for the next item first")
    return assignment


def annotation_submit(
    *,
    project: Project,
    item_id: int,
    annotator: AbstractBaseUser,
    value: object,
    membership: Membership | None = None,
    active_ms: int = 0,
    proposal_value: dict | None = None,
    proposal_model_version_id: int | None = None,
    label_names: list[str] | None = None,
    now: datetime | None = None,
) -> Annotation:
    """Store one annotation of a leased item, whole or not at all, and update the item's counters.

    On time: counted, and the lease's slot becomes an annotation. After the lease expired
    (or after a skip): stored and flagged late, counted only if the item still has room
    below its overlap. A second submit of the same item by the same annotator is stored
    too (annotations are append-only) but never counted twice. With the annotator's
    `membership`, their bookmark moves on. At most 6 SQL statements; pass `label_names` (the
    project's, in order) to save one.
    """
    _membership_check(project=project, annotator=annotator, membership=membership)
    now = now or _now()
    if label_names is None:
        label_names = list(project.labels.values_list("name", flat=True))
    clean_value = annotation_value_validate(project=project, label_names=label_names, value=value)
    if proposal_value is not None:
        proposal_value = annotation_value_validate(
            project=project, label_names=label_names, value=proposal_value, field="proposal"
        )
    active_ms = max(0, int(active_ms))
    with transaction.atomic():
        assignment = _latest_assignment_locked(project=project, item_id=item_id, annotator=annotator)
        item = assignment.item
        open_lease = assignment.status == Assignment.Status.OPEN
        late = not open_lease or assignment.expires_at <= now
        if assignment.status == Assignment.Status.SUBMITTED:
            # A resubmit: the first one already holds this annotator's slot.
            late, counted = False, False
        elif not late:
            counted = True
        else:
            others = item.lease_count - (1 if open_lease else 0)
            counted = item.annotation_count + others < project.overlap
        new_count = item.annotation_count + (1 if counted else 0)
        if counted or open_lease:
            Item.objects.filter(pk=item.pk).update(
                annotation_count=F("annotation_count") + (1 if counted else 0),
                lease_count=F("lease_count") - (1 if open_lease else 0),
                is_complete=new_count >= project.overlap,
            )
        annotation = Annotation.objects.create(
            project_id=project.id,
            item_id=item.pk,
            annotator=annotator,
            value=clean_value,
            active_ms=active_ms,
            created_at=now,
            late=late,
            counted=counted,
            proposal_value=proposal_value,
            proposal_model_version_id=proposal_model_version_id,
            proposal_accepted=None if proposal_value is None else proposal_value == clean_value,
        )
        if open_lease:
            Assignment.objects.filter(pk=assignment.pk).update(
                status=Assignment.Status.SUBMITTED, closed_at=now
            )
        if membership is not None:
            _bookmark_advance(project=project, annotator=annotator, membership=membership)
    if late:
        logger.info("late submit stored: item=%s annotator=%s counted=%s", item.pk, annotator.pk, counted)
    return annotation


def item_skip(
    *,
    project: Project,
    item_id: int,
    annotator: AbstractBaseUser,
    membership: Membership | None = None,
    now: datetime | None = None,
) -> Skip:
    """Record that `annotator` skips a leased item and give its slot back to the queue.

    With the annotator's `membership`, their bookmark moves on.
    """
    _membership_check(project=project, annotator=annotator, membership=membership)
    now = now or _now()
    with transaction.atomic():
        assignment = _latest_assignment_locked(project=project, item_id=item_id, annotator=annotator)
        skip, _ = Skip.objects.get_or_create(
            item_id=item_id,
            annotator=annotator,
            defaults={"project_id": project.id, "created_at": now},
        )
        if assignment.status == Assignment.Status.OPEN:
            Assignment.objects.filter(pk=assignment.pk).update(
                status=Assignment.Status.SKIPPED, closed_at=now
            )
            Item.objects.filter(pk=item_id).update(lease_count=F("lease_count") - 1)
        if membership is not None:
            _bookmark_advance(project=project, annotator=annotator, membership=membership)
    return skip


def assignment_release_all(
    *, project: Project, annotator: AbstractBaseUser, now: datetime | None = None
) -> int:
    """Give back every lease `annotator` holds in `project` (leaving the page, logging out)."""
    now = now or _now()
    with transaction.atomic():
        held = list(
            Assignment.objects.select_for_update()
            .filter(project_id=project.id, annotator_id=annotator.pk, status=Assignment.Status.OPEN)
            .values_list("id", "item_id")
        )
        if not held:
            return 0
        Assignment.objects.filter(id__in=[a for a, _ in held]).update(
            status=Assignment.Status.EXPIRED, closed_at=now
        )
        Item.objects.filter(id__in=[i for _, i in held]).update(lease_count=F("lease_count") - 1)
    return len(held)
