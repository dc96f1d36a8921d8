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
import random
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db import connection, transaction
from django.db.models import Case, F, Value, When
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
from annotate.quality.gold import gold_answer_score, gold_pause_reason
from annotate.quality.tallies import annotation_tallies, tallies_add
from annotate.quality.votes import votes_from_rows
from annotate.raw_rows import columns, from_row, insert
from annotate.signals import annotations_stored_on_commit
from annotate.values import annotation_value_validate

logger = logging.getLogger(__name__)
_random = random.Random()  # the gold draw; tests seed it


class QueueError(Exception):
    """A queue request that cannot be served as asked; the message says why."""


class LeaseLimitReached(QueueError):
    pass


class NotAssigned(QueueError):
    pass


class AnnotatorPaused(QueueError):
    """The member is paused in this project (by a lead, or by the gold bar): nothing is served."""


@dataclass(frozen=True)
class Lease:
    assignment: Assignment
    item: Item
    is_new: bool


def _now() -> datetime:
    return timezone.now()


def _max_leases() -> int:
    return settings.LABELLOOP_MAX_LEASES_PER_ANNOTATOR


# Constants the partial indexes' conditions name, written into the SQL rather than passed as
# parameters: with server-side binding PostgreSQL moves a statement to a generic plan after a
# few runs, and a generic plan cannot prove `status = $1` implies a partial index's
# `status = 'open'`. Measured at 80,000 assignments: the expiry UPDATE took 18.5 ms, the held
# leases 7.1 ms (1.5 ms with the index), growing with the table.
_OPEN = f"'{Assignment.Status.OPEN}'"


def _expire_leases(*, project_id: int, now: datetime) -> int:
    """Caller holds a transaction. Close the project's expired leases and give their slots back.

    One UPDATE … RETURNING marks them expired: on PostgreSQL a concurrent transaction that
    expires the same rows waits, re-checks `status = 'open'` and skips them, so each lease
    is given back exactly once.
    """
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {Assignment._meta.db_table} SET status = %s, closed_at = %s"
            f" WHERE project_id = %s AND status = {_OPEN} AND expires_at <= %s RETURNING item_id",
            [
                Assignment.Status.EXPIRED,
                connection.ops.adapt_datetimefield_value(now),
                project_id,
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


# The statements below are written in SQL: see annotate/raw_rows.py for why.
_ITEM = Item._meta.db_table
_ASSIGNMENT = Assignment._meta.db_table
_ANNOTATION = Annotation._meta.db_table
_SKIP = Skip._meta.db_table
_MEMBERSHIP = Membership._meta.db_table
_PROJECT = Project._meta.db_table
_LABEL = Label._meta.db_table
_VALUE = Annotation._meta.get_field("value")

# Queue order: highest priority first, then import order. Spelled as the queue index is,
# (-priority, id), so that a bookmark's row comparison can range-scan it.
QUEUE_ORDER_SQL = "-i.priority, i.id"


def _db_time(moment: datetime):
    return connection.ops.adapt_datetimefield_value(moment)


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
    """The rewrite of priorities is over: bookmarks count again, and leases from before are stale."""
    Project.objects.filter(pk=project_id).update(
        queue_epoch=F("queue_epoch") + 1, queue_reordering=False, queue_reordered_at=_now()
    )


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


def _gold_candidate(cursor, *, project: Project, annotator_id: int, held: list[Assignment]) -> tuple | None:
    """A gold item the annotator has neither answered nor skipped nor holds (item_gold_idx), or None.

    Gold items are complete, so the queue's own search never sees them, and they are outside
    overlap: any number of annotators answer each, each once.
    """
    where = [
        "i.project_id = %s",
        f"i.pick_kind = '{PickKind.GOLD}'",
        f"NOT EXISTS (SELECT 1 FROM {_ANNOTATION} a WHERE a.item_id = i.id AND a.annotator_id = %s)",
        f"NOT EXISTS (SELECT 1 FROM {_SKIP} s WHERE s.item_id = i.id AND s.annotator_id = %s)",
    ]
    params: list = [project.id, annotator_id, annotator_id]
    if held:
        where.append(f"i.id NOT IN ({', '.join(['%s'] * len(held))})")
        params += [a.item_id for a in held]
    cursor.execute(
        f"SELECT {columns(Item, 'i')} FROM {_ITEM} i WHERE {' AND '.join(where)} ORDER BY i.id LIMIT 1",
        params,
    )
    return cursor.fetchone()


def _stale_leases_give_back(
    cursor, *, project: Project, held: list[Assignment], keep: set[int], now: datetime
) -> list[Assignment]:
    """Caller holds a transaction. Give back the held leases taken before the last reordering
    (except those in `keep`, the items the page shows); return the others.

    A lease is served to its holder first, so that a reloaded page gets its item back. One taken
    under the old order (a closed browser's prefetched items, say) would then jump the new,
    uncertainty order: it is released instead, and the item competes on its new priority.
    """
    reordered = project.queue_reordered_at
    stale = [a for a in held if reordered and a.created_at < reordered and a.item_id not in keep]
    if not stale:
        return held
    for assignment in stale:
        _close(cursor, assignment, Assignment.Status.EXPIRED, now)
    ids = [a.item_id for a in stale]
    cursor.execute(
        f"UPDATE {_ITEM} SET lease_count = lease_count - 1 WHERE id IN ({', '.join(['%s'] * len(ids))})", ids
    )
    return [a for a in held if a not in stale]


def _assignment_with_item(row: tuple) -> Assignment:
    width = len(Assignment._meta.concrete_fields)
    assignment = from_row(Assignment, row[:width])
    assignment.item = from_row(Item, row[width:])
    return assignment


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


def _close(cursor, assignment: Assignment, status: str, now: datetime) -> None:
    cursor.execute(
        f"UPDATE {_ASSIGNMENT} SET status = %s, closed_at = %s WHERE id = %s",
        [status, _db_time(now), assignment.pk],
    )


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
    with transaction.atomic():
        assignment = _latest_assignment_locked(project=project, item_id=item_id, annotator=annotator)
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
            votes, mine = {}, (clean_value if assignment.status == Assignment.Status.SUBMITTED else None)
        else:
            votes, mine = _item_answers(item_id=item.pk, annotator_id=annotator.pk)
        answered_before = mine is not None
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


def _item_answers(*, item_id: int, annotator_id: int) -> tuple[dict[int, dict], dict | None]:
    """Caller holds the item's lock. The item's voters and their values (as
    annotate.quality.votes.votes_from_rows reads them) and `annotator_id`'s own latest answer
    (None when they never answered the item): one statement."""
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT annotator_id, value, counted FROM {_ANNOTATION} WHERE item_id = %s ORDER BY id",
            [item_id],
        )
        rows = [(a, _VALUE.from_db_value(v, None, connection), c) for a, v, c in cursor.fetchall()]
    mine = next((value for a, value, _ in reversed(rows) if a == annotator_id), None)
    return votes_from_rows(rows), mine


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


def _gold_answer(
    cursor,
    *,
    project: Project,
    item: Item,
    annotator: AbstractBaseUser,
    membership: Membership | None,
    value: dict,
) -> None:
    """Caller holds the item's lock. Count a gold answer (once per annotator and item: the queue
    serves a gold item once) and pause the member when their accuracy is surely below the bar."""
    if membership is None:
        membership = Membership.objects.filter(project_id=project.id, user_id=annotator.pk).first()
        if membership is None:
            return
    # One answer per item for classification; per entity (box or span) for the other types.
    answers, correct = gold_answer_score(value=value, gold_value=item.gold_value)
    cursor.execute(
        f"UPDATE {_MEMBERSHIP} SET gold_answers = gold_answers + %s, gold_correct = gold_correct + %s"
        " WHERE id = %s RETURNING gold_answers, gold_correct",
        [answers, correct, membership.pk],
    )
    membership.gold_answers, membership.gold_correct = cursor.fetchone()
    reason = gold_pause_reason(
        project=project, answers=membership.gold_answers, correct=membership.gold_correct
    )
    if reason and not membership.paused:
        cursor.execute(
            f"UPDATE {_MEMBERSHIP} SET paused = %s, paused_reason = %s WHERE id = %s",
            [True, reason, membership.pk],
        )
        membership.paused, membership.paused_reason = True, reason


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
