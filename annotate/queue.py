"""The annotator queue: leasing the next item, submitting, skipping. The hot path.

Every function here keeps the Item row's counters (`annotation_count`, `lease_count`,
`is_complete`) right in the same transaction as the change, so that choosing the next item
is one indexed query whose overlap test reads only the Item row itself. On PostgreSQL the
pick is `SELECT … FOR UPDATE SKIP LOCKED`: after a concurrent commit PostgreSQL re-checks the
locked row's own columns, never subqueries on other tables, so the counters must live on the
row. On SQLite, `transaction_mode="IMMEDIATE"` serialises the whole pick-and-lease.
"""

import logging
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db import connection, transaction
from django.db.models import Case, Exists, F, OuterRef, QuerySet, Value, When
from django.utils import timezone

from annotate.models import Annotation, Assignment, Item, Project, Skip
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


def item_candidates_for(*, project: Project, annotator: AbstractBaseUser) -> QuerySet[Item]:
    """Items this annotator may be given next, in queue order (highest priority, then import order)."""
    return (
        Item.objects.filter(project_id=project.id, is_complete=False)
        .alias(load=F("annotation_count") + F("lease_count"))
        .filter(load__lt=project.overlap)
        .filter(
            ~Exists(Annotation.objects.filter(item_id=OuterRef("pk"), annotator_id=annotator.pk)),
            ~Exists(Skip.objects.filter(item_id=OuterRef("pk"), annotator_id=annotator.pk)),
        )
        .order_by("-priority", "id")
    )


def assignment_next(
    *,
    project: Project,
    annotator: AbstractBaseUser,
    exclude_item_ids: tuple[int, ...] | list[int] = (),
    now: datetime | None = None,
) -> Lease | None:
    """Lease the next item to `annotator`, or give back a lease they already hold.

    A held lease on an item not in `exclude_item_ids` is returned first (a reloaded page gets
    its item back). Otherwise a new item is leased, unless the annotator already holds
    LABELLOOP_MAX_LEASES_PER_ANNOTATOR (LeaseLimitReached). Returns None when nothing is left.
    At most 6 SQL statements, whatever the project's size.
    """
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
        candidates = item_candidates_for(project=project, annotator=annotator).exclude(
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
    too (annotations are append-only) but never counted twice. At most 6 SQL statements;
    pass `label_names` (the project's, in order) to save one.
    """
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
    if late:
        logger.info("late submit stored: item=%s annotator=%s counted=%s", item.pk, annotator.pk, counted)
    return annotation


def item_skip(
    *, project: Project, item_id: int, annotator: AbstractBaseUser, now: datetime | None = None
) -> Skip:
    """Record that `annotator` skips a leased item and give its slot back to the queue."""
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
