"""Gold items: a lead marks items with their true value; the queue mixes them into every
annotator's work unannounced (annotate/queue.py, the project's gold_share), and each answer is
checked against the value (annotate/quality/gold.py keeps the accuracy and the pause).

A gold item's true value is its final label (source "gold") and trains like a reviewed one; it
is complete, so the queue's own search never serves it, and its answers never vote or count.
For boxes and spans an answer is scored per entity (annotate/quality/gold.py gold_answer_score).
"""

from django.core.exceptions import ValidationError
from django.db import connection, transaction

from annotate.items import item_locked
from annotate.models import Annotation, Item, PickKind, Project, ReviewState
from annotate.projects import label_names as label_names_of
from annotate.quality.finals import completed_day, item_change, item_change_write
from annotate.quality.votes import item_votes
from annotate.queue import queue_order_changed
from annotate.values import annotation_value_validate


def _locked(cursor, *, project: Project, item_id: int) -> Item:
    item = item_locked(cursor, project=project, item_id=item_id)
    if item is None:
        raise ValidationError({"item": f"item {item_id} is not an item of this project"})
    return item


def _progress_change(change, *, item: Item, sign: int) -> None:
    """Count a complete item in, or out of, the progress tallies (the day it was completed)."""
    counted_at = Annotation.objects.filter(item_id=item.pk, counted=True).values_list("created_at", flat=True)
    day = completed_day(counted_at)
    if day is not None:
        change.tallies["completed_day", day] += sign


def item_gold_set(*, project: Project, item_id: int, value: object) -> Item:
    """Make the item gold with `value` as its true value (or change the value of a gold item)."""
    label_names = label_names_of(project=project)
    clean = annotation_value_validate(
        project=project, label_names=label_names, value=value, field="gold_value"
    )
    with transaction.atomic(), connection.cursor() as cursor:
        item = _locked(cursor, project=project, item_id=item_id)
        if project.task_type == Project.TaskType.TEXT_SPANS:
            # Offsets are checked against the item's text, which only now is read.
            clean = annotation_value_validate(
                project=project, label_names=label_names, value=clean, field="gold_value", text=item.text
            )
        votes = item_votes(cursor, item_id=item.pk)
        change = item_change(
            item=item,
            multi_label=project.multi_label,
            label_names=label_names,
            votes_before=votes,
            votes_after=votes,
            gold_value=clean,
        )
        if item.is_complete and item.pick_kind != PickKind.GOLD:
            _progress_change(change, item=item, sign=-1)  # a gold item is not progress
        gold_value = Item._meta.get_field("gold_value").get_db_prep_save(clean, connection)
        item_change_write(
            cursor,
            project_id=project.id,
            item_id=item.pk,
            change=change,
            extra="pick_kind = %s, gold_value = %s, is_complete = %s, review_state = %s",
            params=[PickKind.GOLD, gold_value, True, ReviewState.NONE],
        )
    item.refresh_from_db()
    return item


def item_gold_clear(*, project: Project, item_id: int) -> Item:
    """Make a gold item an ordinary one again: its final label is its voters' once more."""
    label_names = label_names_of(project=project)
    with transaction.atomic(), connection.cursor() as cursor:
        item = _locked(cursor, project=project, item_id=item_id)
        if item.pick_kind != PickKind.GOLD:
            raise ValidationError({"item": f"item {item.pk} is not a gold item"})
        votes = item_votes(cursor, item_id=item.pk)
        change = item_change(
            item=item,
            multi_label=project.multi_label,
            label_names=label_names,
            votes_before=votes,
            votes_after=votes,
            gold_value=None,
        )
        complete = item.annotation_count >= project.overlap
        if complete:
            _progress_change(change, item=item, sign=+1)
        item_change_write(
            cursor,
            project_id=project.id,
            item_id=item.pk,
            change=change,
            extra="pick_kind = %s, gold_value = NULL, is_complete = %s, review_state = %s",
            params=[PickKind.QUEUE, complete, ReviewState.QUEUED if complete else ReviewState.NONE],
        )
        if not complete:
            queue_order_changed(project_id=project.id)  # back in the queue, maybe ahead of bookmarks
    item.refresh_from_db()
    return item
