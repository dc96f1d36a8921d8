"""Review: the reviewer's queue, and the decisions that settle an item's final label.

The queue. Items wait in it (`Item.review_state = "queued"`) once their annotations are complete,
or when training flags their label as suspicious, or when a lead sends them; it serves
disagreements first, then what the model doubts (`Item.review_priority`, written by training), then
the rest, from one partial index (item_review_queue_idx). An item is leased to one reviewer at a
time (`review_leased_by_id`, `review_lease_expires_at` on the row: one lease per item, no table of
its own), and never to a reviewer who annotated it.

Decisions (Review rows, append-only). A reviewer accepts one annotation (its value becomes the
final label), corrects (their value does), or rejects one annotation with a reason: it stops
counting toward overlap and voting in the same transaction, the item goes back to the labeling
queue for another annotation, and the annotator is shown the reason on their next visit. A decision
names the decision it supersedes (`supersedes`, None for the first): when another reviewer decided
in between, it is refused with ReviewConflict carrying the winning decision (409), so two reviewers
deciding the same item at once cannot both win. A later decision reverses an earlier one; accepting
a rejected annotation takes the reject back. Each decision also records, per annotator, the outcome
it counted for the dashboards (accepted, corrected, rejected), so the next one takes exactly that back.
An answer counts as accepted when it is equivalent to the value put in force (boxes: every box
matched at IoU ≥ 0.5 with the same label; spans: the same spans; annotate/quality/consensus.py).
"""

from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.db import connection, transaction
from django.db.models import QuerySet
from django.utils import timezone

from annotate.items import item_locked
from annotate.models import Annotation, Item, PickKind, Project, Review, ReviewState
from annotate.projects import label_names as label_names_of
from annotate.quality.consensus import values_equivalent
from annotate.quality.finals import completed_day, item_change, item_change_write
from annotate.quality.tallies import key
from annotate.quality.votes import votes_from_rows
from annotate.queue import QueueError, queue_order_changed
from annotate.raw_rows import columns, from_row, table
from annotate.values import annotation_value_validate


class ReviewError(QueueError):
    """A review request that cannot be served as asked (409); the message says why."""


class ReviewConflict(ReviewError):
    """Another decision on the item came first; `winner` is the decision in force."""

    def __init__(self, winner: Review | None):
        self.winner = winner
        who = f" by {winner.reviewer}" if winner is not None else ""
        super().__init__(
            f"another decision on this item came first ({winner.decision if winner else 'none'}{who});"
            " reload the item and decide again if you still disagree"
        )


class OwnAnnotation(ReviewError):
    pass


class ItemNotInProject(ReviewError):
    pass


@dataclass(frozen=True)
class ReviewLease:
    item: Item
    expires_at: datetime
    is_new: bool


def _now() -> datetime:
    return timezone.now()


# The queue -------------------------------------------------------------------------------

_ITEM = table(Item)
_ANNOTATION = table(Annotation)


def review_next(
    *, project: Project, reviewer: AbstractBaseUser, exclude_item_ids=(), now: datetime | None = None
) -> ReviewLease | None:
    """Lease the next item to review to `reviewer`, or give back the one they hold; None when
    nothing is waiting. Items in `exclude_item_ids` (those the page already shows) are skipped."""
    now = now or _now()
    db_now = connection.ops.adapt_datetimefield_value(now)
    excluded = [int(i) for i in exclude_item_ids]
    where = [
        "i.project_id = %s",
        f"i.review_state = '{ReviewState.QUEUED}'",  # a constant: see _OPEN in annotate/queue_leases.py
        "(i.review_leased_by_id IS NULL OR i.review_leased_by_id = %s OR i.review_lease_expires_at <= %s)",
        f"NOT EXISTS (SELECT 1 FROM {_ANNOTATION} a WHERE a.item_id = i.id AND a.annotator_id = %s)",
    ]
    params: list = [project.id, reviewer.pk, db_now, reviewer.pk]
    if excluded:
        where.append(f"i.id NOT IN ({', '.join(['%s'] * len(excluded))})")
        params += excluded
    with transaction.atomic(), connection.cursor() as cursor:
        # The reviewer's own unexpired lease first: a reloaded page gets its item back.
        held_sql = (
            f"SELECT {columns(Item, 'i')} FROM {_ITEM} i WHERE {' AND '.join(where)}"
            " AND i.review_leased_by_id = %s AND i.review_lease_expires_at > %s ORDER BY i.id LIMIT 1"
        )
        cursor.execute(held_sql, [*params, reviewer.pk, db_now])
        row = cursor.fetchone()
        if row is not None:
            item = from_row(Item, row)
            return ReviewLease(item=item, expires_at=item.review_lease_expires_at, is_new=False)
        sql = (
            f"SELECT {columns(Item, 'i')} FROM {_ITEM} i WHERE {' AND '.join(where)}"
            " ORDER BY i.disagreement DESC, i.review_priority DESC, i.id LIMIT 1"
        )
        if connection.features.has_select_for_update_skip_locked:
            sql += " FOR UPDATE SKIP LOCKED"
        cursor.execute(sql, params)
        row = cursor.fetchone()
        if row is None:
            return None
        item = from_row(Item, row)
        expires = now + timedelta(seconds=project.lease_seconds)
        cursor.execute(
            f"UPDATE {_ITEM} SET review_leased_by_id = %s, review_lease_expires_at = %s WHERE id = %s",
            [reviewer.pk, connection.ops.adapt_datetimefield_value(expires), item.pk],
        )
        item.review_leased_by_id, item.review_lease_expires_at = reviewer.pk, expires
    return ReviewLease(item=item, expires_at=expires, is_new=True)


def review_release(*, project: Project, reviewer: AbstractBaseUser, item_id: int | None = None) -> int:
    """Give back the review leases `reviewer` holds in `project`: every one (leaving the page), or
    that of `item_id` alone (an item they pass, so another reviewer may take it)."""
    held = Item.objects.filter(project=project, review_leased_by_id=reviewer.pk)
    if item_id is not None:
        held = held.filter(pk=item_id)
    return held.update(review_leased_by_id=None, review_lease_expires_at=None)


def review_queue_count(*, project: Project) -> int:
    """How many items wait for review (the partial index's rows)."""
    return Item.objects.filter(project=project, review_state=ReviewState.QUEUED).count()


# What a reviewer sees --------------------------------------------------------------------


def review_item_annotations(*, item: Item) -> QuerySet[Annotation]:
    """The item's annotations, oldest first, with their annotators: every answer side by side."""
    return Annotation.objects.filter(item=item).select_related("annotator").order_by("id")


def review_history(*, item: Item) -> QuerySet[Review]:
    """The item's decisions, newest first."""
    return (
        Review.objects.filter(item=item).select_related("reviewer", "annotation__annotator").order_by("-id")
    )


def review_notices(*, project: Project, annotator: AbstractBaseUser) -> list[Review]:
    """Rejects of `annotator`'s annotations they have not seen yet, oldest first."""
    return list(
        Review.objects.filter(
            project=project,
            decision=Review.Decision.REJECT,
            annotation__annotator=annotator,
            seen_at__isnull=True,
        )
        .select_related("item", "reviewer", "annotation")
        .order_by("id")
    )


def review_notices_seen(*, reviews: list[Review], now: datetime | None = None) -> int:
    """Mark the notices shown (the labeling page shows each reject's reason once)."""
    if not reviews:
        return 0
    return Review.objects.filter(pk__in=[r.pk for r in reviews]).update(seen_at=now or _now())


# Decisions -------------------------------------------------------------------------------


def _decision_input_check(
    *, project: Project, label_names, decision, annotation_id, value, reason
) -> dict | None:
    """Validate a decision's fields before anything is locked; returns the correction's value."""
    if decision not in Review.Decision.values:
        raise ValidationError({"decision": f"must be one of: {', '.join(Review.Decision.values)}"})
    if decision in (Review.Decision.ACCEPT, Review.Decision.REJECT) and annotation_id is None:
        raise ValidationError({"annotation": f"a {decision} names the annotation it {decision}s"})
    if decision == Review.Decision.CORRECT:
        if value is None:
            raise ValidationError({"value": "a correction gives the value that becomes the final label"})
        return annotation_value_validate(project=project, label_names=label_names, value=value, field="value")
    if decision == Review.Decision.REJECT and not (reason or "").strip():
        raise ValidationError({"reason": "a reject says why: the annotator is shown the reason"})
    return None


def _item_locked(cursor, *, project: Project, item_id: int) -> Item:
    item = item_locked(cursor, project=project, item_id=item_id)
    if item is None:
        raise ItemNotInProject(f"item {item_id} is not an item of this project")
    return item


def _outcomes(
    *, decision: str, votes: dict[int, dict], final: dict | None, rejected_annotator: int | None
) -> dict:
    """{annotator id (str): outcome} this decision counts for the dashboards."""
    if decision == Review.Decision.REJECT:
        return {str(rejected_annotator): "rejected"}
    return {
        str(a): "accepted" if values_equivalent(value, final) else "corrected" for a, value in votes.items()
    }


def _outcome_tallies(outcomes: dict, sign: int) -> Counter:
    return Counter({("review", key(int(a), outcome)): sign for a, outcome in outcomes.items()})


def review_decide(
    *,
    project: Project,
    item_id: int,
    reviewer: AbstractBaseUser,
    decision: str,
    supersedes: int | None,
    annotation_id: int | None = None,
    value: dict | None = None,
    reason: str = "",
    now: datetime | None = None,
) -> Review:
    """Store one decision on an item and settle its final label, whole or not at all.

    `supersedes` is the id of the decision the reviewer saw in force (None when there was none);
    if another has come since, ReviewConflict (409) with the winner. Raises ValidationError (400)
    naming the field for bad input, ReviewError (409) for an item that cannot be decided now, and
    OwnAnnotation for a reviewer who annotated the item.
    """
    now = now or _now()
    label_names = label_names_of(project=project)
    correction = _decision_input_check(
        project=project,
        label_names=label_names,
        decision=decision,
        annotation_id=annotation_id,
        value=value,
        reason=reason,
    )
    with transaction.atomic(), connection.cursor() as cursor:
        item = _item_locked(cursor, project=project, item_id=item_id)
        if correction is not None and project.task_type == Project.TaskType.TEXT_SPANS:
            # Offsets are checked against the item's text, which only now is read.
            correction = annotation_value_validate(
                project=project, label_names=label_names, value=correction, field="value", text=item.text
            )
        if item.last_review_id != supersedes:
            raise ReviewConflict(
                Review.objects.select_related("reviewer").filter(pk=item.last_review_id).first()
            )
        if item.pick_kind == PickKind.GOLD:
            raise ReviewError(f"item {item.pk} is a gold item: its final label is its true value")
        annotations = list(Annotation.objects.filter(item_id=item.pk).order_by("id"))
        if any(a.annotator_id == reviewer.pk for a in annotations):
            raise OwnAnnotation(f"you annotated item {item.pk}: another reviewer must review it")
        if not item.is_complete and item.last_review_id is None:
            raise ReviewError(
                f"item {item.pk} is not complete: it has {item.annotation_count} of the"
                f" {project.overlap} annotations it needs"
            )
        chosen = None
        if annotation_id is not None:
            chosen = next((a for a in annotations if a.pk == int(annotation_id)), None)
            if chosen is None:
                raise ValidationError(
                    {"annotation": f"annotation {annotation_id} is not an annotation of item {item.pk}"}
                )
        votes_before = votes_from_rows((a.annotator_id, a.value, a.counted, a.rejected) for a in annotations)
        reviewed_value = None
        counts = {"annotation_count": item.annotation_count}
        if decision == Review.Decision.REJECT:
            if chosen.rejected:
                raise ReviewError(f"annotation {chosen.pk} is rejected already")
            if chosen.counted:
                counts["annotation_count"] -= 1
            Annotation.objects.filter(pk=chosen.pk).update(rejected=True, counted=False)
            chosen.rejected, chosen.counted = True, False
        else:
            if decision == Review.Decision.ACCEPT:
                if chosen.rejected:  # taking a reject back: it counts again if there is room
                    counted = counts["annotation_count"] < project.overlap
                    counts["annotation_count"] += 1 if counted else 0
                    Annotation.objects.filter(pk=chosen.pk).update(rejected=False, counted=counted)
                    chosen.rejected, chosen.counted = False, counted
                reviewed_value = chosen.value
            else:
                reviewed_value = correction
        votes_after = votes_from_rows((a.annotator_id, a.value, a.counted, a.rejected) for a in annotations)
        change = item_change(
            item=item,
            multi_label=project.multi_label,
            label_names=label_names,
            votes_before=votes_before,
            votes_after=votes_after,
            reviewed_value=reviewed_value,
        )
        outcomes = _outcomes(
            decision=decision,
            votes=votes_after,
            final=reviewed_value,
            rejected_annotator=chosen.annotator_id if chosen is not None else None,
        )
        previous = Review.objects.filter(pk=item.last_review_id).first()
        review = Review.objects.create(
            project=project,
            item_id=item.pk,
            reviewer=reviewer,
            decision=decision,
            annotation=chosen,
            value=reviewed_value,
            reason=(reason or "").strip(),
            supersedes=previous,
            outcomes=outcomes,
            created_at=now,
        )
        change.tallies.update(_outcome_tallies(outcomes, +1))
        if previous is not None:
            change.tallies.update(_outcome_tallies(previous.outcomes, -1))
        complete = counts["annotation_count"] >= project.overlap
        if decision == Review.Decision.REJECT:
            state = ReviewState.QUEUED if complete else ReviewState.NONE
        else:
            state = ReviewState.DONE
        if complete != item.is_complete:
            # Progress counts an item on the day it was completed: take it back from that day, or
            # count it on the day of the annotation that completes it again.
            if not complete:
                counted_at = [a.created_at for a in annotations if a.counted or a.pk == chosen.pk]
            else:
                counted_at = [a.created_at for a in annotations if a.counted]
            day = completed_day(counted_at)
            if day is not None:
                change.tallies["completed_day", day] += 1 if complete else -1
        reviewed = Item._meta.get_field("reviewed_value").get_db_prep_save(reviewed_value, connection)
        item_change_write(
            cursor,
            project_id=project.id,
            item_id=item.pk,
            change=change,
            extra="annotation_count = %s, is_complete = %s, reviewed_value = %s, last_review_id = %s,"
            " review_state = %s, review_leased_by_id = NULL, review_lease_expires_at = NULL",
            params=[counts["annotation_count"], complete, reviewed, review.pk, state],
        )
        if item.is_complete and not complete:
            # Back in the labeling queue, possibly ahead of bookmarks.
            queue_order_changed(project_id=project.id)
    return review
