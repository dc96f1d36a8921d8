"""The annotator queue: leasing the next item, submitting, skipping. The hot path.

Every function here keeps the Item row's counters (`annotation_count`, `lease_count`,
`is_complete`) right in the same transaction as the change, so that choosing the next item
is one indexed query whose overlap test reads only the Item row itself. On PostgreSQL the
pick is `SELECT … FOR UPDATE SKIP LOCKED`: after a concurrent commit PostgreSQL re-checks the
locked row's own columns, never subqueries on other tables, so the counters must live on the
row. On SQLite, `transaction_mode="IMMEDIATE"` serialises the whole pick-and-lease.

The parts live beside it: annotate/queue_order.py (the search, the members' bookmarks and the
queue epoch, so that an annotator far ahead does not walk everything they labeled),
annotate/queue_leases.py (expiry, leases given back after a reordering, release) and
annotate/queue_gold.py (a gold item to serve, a gold answer counted). Their public names are
importable from here too.

Each new pick is drawn: a gold item at the project's `gold_share`; otherwise, while the project
has a random slice (queue_order.py), a slice item at its `random_share`; otherwise the queue's
order. Both draws are for members' requests only (the pages and the API pass the membership).
"""

import logging
import random
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from annotate.models import (
    Annotation,
    Assignment,
    Item,
    Label,
    Membership,
    PickKind,
    Project,
    ReviewState,
    Skip,
)
from annotate.quality.finals import ItemChange, final_assignments, item_change
from annotate.quality.tallies import annotation_tallies, tallies_add
from annotate.quality.votes import VOTE_COLUMNS, votes_from_rows
from annotate.queue_gold import _gold_answer, _gold_candidate
from annotate.queue_leases import (
    _OPEN,
    _assignment_with_item,
    _close,
    _expire_leases,
    _stale_leases_give_back,
    assignment_release_all,
)
from annotate.queue_order import (
    QUEUE_ORDER_SQL,
    _bookmark_advance,
    _random_slice_candidate,
    _random_slice_top_up,
    item_candidates_sql,
    queue_order_changed,
    queue_reordering,
    queue_reordering_end,
    random_slice_redraw,
)
from annotate.raw_rows import columns, from_row, insert
from annotate.signals import annotations_stored_on_commit
from annotate.values import annotation_value_validate

__all__ = [
    "QUEUE_ORDER_SQL",
    "AnnotatorPaused",
    "Lease",
    "LeaseLimitReached",
    "NotAssigned",
    "QueueError",
    "annotation_submit",
    "assignment_next",
    "assignment_release_all",
    "item_candidates_sql",
    "item_skip",
    "queue_order_changed",
    "queue_reordering",
    "queue_reordering_end",
    "random_slice_redraw",
]

logger = logging.getLogger(__name__)
_random = random.Random()  # the gold and random-slice draws; tests seed it


class QueueError(Exception):
    """A queue request that cannot be served as asked; the message says why."""


class LeaseLimitReached(QueueError):
    pass


class NotAssigned(QueueError):
    pass


class AnnotatorPaused(QueueError):
    """The member is paused in this project (by a lead, or by the gold bar): nothing is served."""


class IdempotencyKeyReused(QueueError):
    """The submit's idempotency key was used before for another item: nothing is stored."""


@dataclass(frozen=True)
class Lease:
    assignment: Assignment
    item: Item
    is_new: bool


def _now() -> datetime:
    return timezone.now()


def _max_leases() -> int:
    return settings.LABELLOOP_MAX_LEASES_PER_ANNOTATOR


# The statements below are written in SQL: see annotate/raw_rows.py for why.
_ITEM = Item._meta.db_table
_ASSIGNMENT = Assignment._meta.db_table
_ANNOTATION = Annotation._meta.db_table
_LABEL = Label._meta.db_table
_VALUE = Annotation._meta.get_field("value")


def _membership_check(
    *, project: Project, annotator: AbstractBaseUser, membership: Membership | None
) -> None:
    if membership is not None and (membership.project_id != project.id or membership.user_id != annotator.pk):
        raise ValueError("membership is not the annotator's in this project")


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
    With the annotator's `membership` the search starts at their bookmark, and a share of picks
    is gold or random-slice (see the module's docstring). At most 6 SQL statements, whatever the
    project's size: one more when a draw finds nothing to serve, a few more when that empties
    the random slice (a fresh batch is marked); when the queue's order has nothing left, the
    slice's leftovers are served (one more statement).
    """
    _membership_check(project=project, annotator=annotator, membership=membership)
    if membership is not None and membership.paused:
        raise AnnotatorPaused(
            (membership.paused_reason or "a lead paused you in this project")
            + "; ask the project's lead to resume you"
        )
    now = now or _now()
    excluded = {int(i) for i in exclude_item_ids}
    with transaction.atomic():
        _expire_leases(project_id=project.id, now=now)
        with connection.cursor() as cursor:
            cursor.execute(
                f"SELECT {columns(Assignment, 'a')}, {columns(Item, 'i')} FROM {_ASSIGNMENT} a"
                f" JOIN {_ITEM} i ON i.id = a.item_id"
                f" WHERE a.project_id = %s AND a.annotator_id = %s AND a.status = {_OPEN} ORDER BY a.id",
                [project.id, annotator.pk],
            )
            held = [_assignment_with_item(row) for row in cursor.fetchall()]
            held = _stale_leases_give_back(cursor, project=project, held=held, keep=excluded, now=now)
            for assignment in held:
                if assignment.item_id not in excluded:
                    return Lease(assignment=assignment, item=assignment.item, is_new=False)
            if len(held) >= _max_leases():
                raise LeaseLimitReached(
                    f"you already hold {len(held)} items; submit or skip one before asking for more"
                )
            row = None
            if project.gold_share and membership is not None and _gold_draw(project.gold_share):
                row = _gold_candidate(cursor, project=project, annotator_id=annotator.pk, held=held)
            slice_open = project.random_slice_open and project.random_share and membership is not None
            if row is None and slice_open and _random_draw(project.random_share):
                row = _random_slice_candidate(cursor, project=project, annotator_id=annotator.pk, held=held)
                if row is None and _random_slice_top_up(cursor, project=project):
                    row = _random_slice_candidate(
                        cursor, project=project, annotator_id=annotator.pk, held=held
                    )
                slice_open = False  # looked already
            if row is None:
                sql, params = item_candidates_sql(
                    project=project,
                    annotator_id=annotator.pk,
                    membership=membership,
                    exclude_item_ids=[a.item_id for a in held],
                )
                if connection.features.has_select_for_update_skip_locked:
                    sql += " FOR UPDATE SKIP LOCKED"
                cursor.execute(sql, params)
                row = cursor.fetchone()
            if row is None and slice_open:
                # The queue's order is done for them: the slice's leftovers are all that is left.
                row = _random_slice_candidate(cursor, project=project, annotator_id=annotator.pk, held=held)
            if row is None:
                return None
            item = from_row(Item, row)
            assignment = Assignment(
                project_id=project.id,
                item=item,
                annotator=annotator,
                status=Assignment.Status.OPEN,
                created_at=now,
                expires_at=now + timedelta(seconds=project.lease_seconds),
            )
            insert(
                cursor,
                assignment,
                ["project_id", "item_id", "annotator_id", "status", "created_at", "expires_at"],
            )
            cursor.execute(f"UPDATE {_ITEM} SET lease_count = lease_count + 1 WHERE id = %s", [item.pk])
            item.lease_count += 1
    return Lease(assignment=assignment, item=item, is_new=True)


def _gold_draw(share: float) -> bool:
    """Whether this request serves a gold item: a draw with the project's gold share."""
    return _random.random() < share


def _random_draw(share: float) -> bool:
    """Whether this request serves a random-slice item: a draw with the project's random share."""
    return _random.random() < share


def _latest_assignment_locked(*, project: Project, item_id: int, annotator: AbstractBaseUser) -> Assignment:
    """Caller holds a transaction. Lock and return the annotator's latest lease of the item (and the item)."""
    sql = (
        f"SELECT {columns(Assignment, 'a')}, {columns(Item, 'i')} FROM {_ASSIGNMENT} a"
        f" JOIN {_ITEM} i ON i.id = a.item_id"
        " WHERE a.project_id = %s AND a.item_id = %s AND a.annotator_id = %s ORDER BY a.id DESC LIMIT 1"
    )
    if connection.features.has_select_for_update:
        sql += " FOR UPDATE"
    with connection.cursor() as cursor:
        cursor.execute(sql, [project.id, item_id, annotator.pk])
        row = cursor.fetchone()
    if row is None:
        raise NotAssigned(f"item {item_id} is not assigned to you; ask for the next item first")
    return _assignment_with_item(row)


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
    idempotency_key: str = "",
) -> Annotation:
    """Store one annotation of a leased item, whole or not at all, and update the item's counters.

    With an `idempotency_key` (the labeling page sends one per item shown, and again when it
    resends from its outbox): if this annotator stored an annotation with that key already, that
    annotation is returned and nothing changes; the key used before for another item raises
    IdempotencyKeyReused. Requests racing with one key are serialized by the lease's row lock, and
    the unique constraint annotation_idempotency_unique keeps one row whatever happens.

    On time: counted, and the lease's slot becomes an annotation. After the lease expired
    (or after a skip): stored and flagged late, counted only if the item still has room
    below its overlap. A second submit of the same item by the same annotator (a changed
    answer, from their history) is stored too (annotations are append-only) and replaces
    their vote, but is never counted twice; if their earlier answer no longer counts (a
    reviewer rejected it, or it came late to a full item) the new one counts when the item
    has room. A changed answer sends a reviewed item back to review; the review's value
    stays the final label until a reviewer decides again. With the annotator's
    `membership`, their bookmark moves on. The item's final label, the agreement counts and the
    dashboards' tallies change in the same transaction (annotate/quality/). At most 8 SQL
    statements (7 without a bookmark); pass `label_names` (the project's, in order) to save one.
    Sends annotate.signals.annotations_stored on commit.
    """
    _membership_check(project=project, annotator=annotator, membership=membership)
    now = now or _now()
    if label_names is None:
        with connection.cursor() as cursor:
            cursor.execute(
                f'SELECT name FROM {_LABEL} WHERE project_id = %s ORDER BY "order", id', [project.id]
            )
            label_names = [name for (name,) in cursor.fetchall()]
    clean_value = annotation_value_validate(project=project, label_names=label_names, value=value)
    if proposal_value is not None:
        proposal_value = annotation_value_validate(
            project=project, label_names=label_names, value=proposal_value, field="proposal"
        )
    active_ms = max(0, int(active_ms))
    try:
        with transaction.atomic():
            assignment = _latest_assignment_locked(project=project, item_id=item_id, annotator=annotator)
            if idempotency_key:
                stored = _annotation_by_key(annotator=annotator, key=idempotency_key, item_id=item_id)
                if stored is not None:
                    return stored
            return _annotation_store(
                project=project, assignment=assignment, annotator=annotator, membership=membership,
                value=clean_value, label_names=label_names, active_ms=active_ms, now=now,
                proposal_value=proposal_value, proposal_model_version_id=proposal_model_version_id,
                idempotency_key=idempotency_key,
            )  # fmt: skip
    except IntegrityError:
        # Two submits with one key for different items, at once: the other one stored its row.
        if not idempotency_key:
            raise
        stored = _annotation_by_key(annotator=annotator, key=idempotency_key, item_id=item_id)
        if stored is None:
            raise
        return stored


def _annotation_by_key(*, annotator, key: str, item_id: int) -> Annotation | None:
    """The annotator's annotation stored with this idempotency key, if any (of this item, or
    IdempotencyKeyReused)."""
    stored = Annotation.objects.filter(annotator=annotator, idempotency_key=key).first()
    if stored is not None and stored.item_id != item_id:
        raise IdempotencyKeyReused(
            f"idempotency_key {key!r} was used for item {stored.item_id}; send a new key for item {item_id}"
        )
    return stored


def _annotation_store(
    *, project, assignment, annotator, membership, value, label_names, active_ms, now,
    proposal_value, proposal_model_version_id, idempotency_key,
) -> Annotation:  # fmt: skip
    """annotation_submit's writes, inside its transaction, the lease locked."""
    clean_value = value
    item = assignment.item
    if project.task_type == Project.TaskType.TEXT_SPANS:
        # Offsets are checked against the item's text, which only now is read.
        clean_value = annotation_value_validate(
            project=project, label_names=label_names, value=clean_value, text=item.text
        )
    open_lease = assignment.status == Assignment.Status.OPEN
    late = not open_lease or assignment.expires_at <= now
    gold = item.pick_kind == PickKind.GOLD
    if gold:
        # Gold items are served once per annotator: a submitted lease means answered before.
        votes, mine = {}, None
        answered_before = assignment.status == Assignment.Status.SUBMITTED
    else:
        votes, answered_before, mine = _item_answers(item_id=item.pk, annotator_id=annotator.pk)
    if assignment.status == Assignment.Status.SUBMITTED:
        late = False  # a changed answer, not a late one
    if gold or annotator.pk in votes:
        # Gold answers are outside overlap; a voter's changed answer keeps their one slot.
        counted = False
    elif not late and not answered_before:
        counted = True
    else:
        # Late, or a changed answer whose earlier one no longer counts (rejected, or late to
        # a full item): it counts only if the item still has room.
        others = item.lease_count - (1 if open_lease else 0)
        counted = item.annotation_count + others < project.overlap
    new_count = item.annotation_count + (1 if counted else 0)
    annotation = Annotation(
        project_id=project.id,
        item_id=item.pk,
        annotator=annotator,
        value=clean_value,
        active_ms=active_ms,
        created_at=now,
        late=late,
        counted=counted,
        source="",
        idempotency_key=idempotency_key,
        proposal_value=proposal_value,
        proposal_model_version_id=proposal_model_version_id,
        proposal_accepted=None if proposal_value is None else proposal_value == clean_value,
    )
    with connection.cursor() as cursor:
        added = annotation_tallies(
            annotator_id=annotator.pk,
            day=timezone.localdate(now).isoformat(),
            active_ms=active_ms,
            proposal_version_id=proposal_model_version_id,
            proposal_accepted=annotation.proposal_accepted,
        )
        if gold and not answered_before:
            _gold_answer(
                cursor,
                project=project,
                item=item,
                annotator=annotator,
                membership=membership,
                value=clean_value,
            )
        if gold:
            cursor.execute(
                f"UPDATE {_ITEM} SET lease_count = lease_count - %s WHERE id = %s",
                [1 if open_lease else 0, item.pk],
            )
        else:
            complete = new_count >= project.overlap
            change = _item_change_on_submit(
                project=project,
                item=item,
                annotator=annotator,
                counted=counted,
                value=clean_value,
                label_names=label_names,
                votes_before=votes,
            )
            added.update(change.tallies)
            queued = complete and not item.is_complete and item.review_state == ReviewState.NONE
            if item.review_state == ReviewState.DONE and answered_before and mine != clean_value:
                queued = True  # a reviewed item whose answer changed is reviewed again
            if complete and not item.is_complete:
                added["completed_day", timezone.localdate(now).isoformat()] += 1
            assignments, params = final_assignments(change)
            cursor.execute(
                f"UPDATE {_ITEM} SET annotation_count = annotation_count + %s,"
                f" lease_count = lease_count - %s, is_complete = %s, {assignments},"
                " review_state = CASE WHEN %s THEN %s ELSE review_state END WHERE id = %s",
                [
                    1 if counted else 0,
                    1 if open_lease else 0,
                    complete,
                    *params,
                    queued,
                    ReviewState.QUEUED,
                    item.pk,
                ],
            )
        insert(cursor, annotation, _ANNOTATION_INSERT)
        if open_lease:
            _close(cursor, assignment, Assignment.Status.SUBMITTED, now)
        tallies_add(cursor, project_id=project.id, added=added)
    if membership is not None:
        _bookmark_advance(project=project, annotator=annotator, membership=membership)
    # After the commit, so "retrain every N labels" counts this one, and never for a rollback.
    annotations_stored_on_commit(project=project)
    if late:
        logger.info("late submit stored: item=%s annotator=%s counted=%s", item.pk, annotator.pk, counted)
    return annotation


def _item_answers(*, item_id: int, annotator_id: int) -> tuple[dict[int, dict], bool, dict | None]:
    """Caller holds the item's lock. The item's voters and their values (as
    annotate.quality.votes.votes_from_rows reads them), whether `annotator_id` answered the item
    before, and their latest answer not rejected (None when there is none): one statement."""
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT {VOTE_COLUMNS} FROM {_ANNOTATION} WHERE item_id = %s ORDER BY id",
            [item_id],
        )
        rows = [(a, _VALUE.from_db_value(v, None, connection), c, r) for a, v, c, r in cursor.fetchall()]
    answered = any(a == annotator_id for a, *_ in rows)
    mine = next(
        (value for a, value, _, rejected in reversed(rows) if a == annotator_id and not rejected), None
    )
    return votes_from_rows(rows), answered, mine


def _item_change_on_submit(
    *,
    project: Project,
    item: Item,
    annotator: AbstractBaseUser,
    counted: bool,
    value: dict,
    label_names,
    votes_before: dict[int, dict],
) -> ItemChange:
    """Caller holds the item's lock. The item's final label and tallies once this submit is in:
    a new voter (counted) or a voter's resubmit changes the votes; anyone else's late one does not."""
    after = dict(votes_before)
    if counted or annotator.pk in votes_before:
        after[annotator.pk] = value
    return item_change(
        item=item,
        multi_label=project.multi_label,
        label_names=label_names,
        votes_before=votes_before,
        votes_after=after,
    )


_ANNOTATION_INSERT = (
    "project_id",
    "item_id",
    "annotator_id",
    "value",
    "active_ms",
    "created_at",
    "late",
    "counted",
    "source",
    "proposal_value",
    "proposal_model_version_id",
    "proposal_accepted",
    "rejected",
    "idempotency_key",
)


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
            with connection.cursor() as cursor:
                _close(cursor, assignment, Assignment.Status.SKIPPED, now)
                cursor.execute(f"UPDATE {_ITEM} SET lease_count = lease_count - 1 WHERE id = %s", [item_id])
        if membership is not None:
            _bookmark_advance(project=project, annotator=annotator, membership=membership)
    return skip
