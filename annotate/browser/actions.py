"""The item browser's actions on a selection (ticked ids, or "all N matching" filters).

Actions (`selection_review_send`, `selection_gold_mark`, `selection_export`) each change their
whole selection in one statement, never a loop over items.
"""

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass

from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.db import connection, transaction
from django.db.models import Count, Q, QuerySet

from annotate.browser.filters import ItemFilters, Proposals, _ids, item_filters_parse, item_list_filtered
from annotate.models import ExportJob, FinalSource, Item, PickKind, Project, ReviewState
from annotate.quality.tallies import tallies_add
from annotate.raw_rows import table


@dataclass(frozen=True)
class Selection:
    """Items chosen in the browser: by their ids (checkboxes) or by filters ("all N matching")."""

    filters: ItemFilters


def selection_parse(*, project: Project, data, proposals: Proposals | None = None) -> Selection:
    """A selection from {"ids": [...]} or {"filters": {...}}; ValidationError naming the field.
    Ids that are not items of this project are refused, all of them named by count."""
    if not isinstance(data, Mapping) or len(data) != 1 or next(iter(data)) not in ("ids", "filters"):
        raise ValidationError({"selection": 'must be {"ids": [...]} or {"filters": {...}}'})
    if "ids" in data:
        filters = ItemFilters(ids=_ids(data["ids"]))
        found = Item.objects.filter(project=project, pk__in=filters.ids).count()
        if found != len(filters.ids):
            missing = len(filters.ids) - found
            raise ValidationError({"ids": f"{missing} of these ids are not items of this project"})
        return Selection(filters=filters)
    raw = data["filters"]
    if not isinstance(raw, Mapping):
        raise ValidationError({"filters": "must be an object of filters"})
    try:
        filters = item_filters_parse(project=project, params=raw, proposals=proposals, strict=True)
    except ValidationError as exc:
        named = {f"filters.{name}": messages for name, messages in exc.message_dict.items()}
        raise ValidationError(named) from None
    return Selection(filters=filters)


@dataclass(frozen=True)
class ActionResult:
    changed: int
    skipped: int
    message: str
    job: ExportJob | None = None


def _selected(project: Project, selection: Selection) -> QuerySet[Item]:
    return item_list_filtered(project=project, filters=selection.filters).values("id")


def _items(n: int) -> str:
    return f"{n} item" if n == 1 else f"{n} items"


def selection_review_send(*, project: Project, selection: Selection) -> ActionResult:
    """Queue the selected items for review, in one UPDATE. Gold items are never reviewed, and an
    item neither complete nor reviewed before would only be refused by the reviewer's decision
    (annotate/review.py), so both are left out and counted as skipped."""
    selected = item_list_filtered(project=project, filters=selection.filters).count()
    changed = (
        Item.objects.filter(project=project, pk__in=_selected(project, selection))
        .exclude(pick_kind=PickKind.GOLD)
        .filter(Q(is_complete=True) | Q(last_review__isnull=False))
        .update(review_state=ReviewState.QUEUED)
    )
    skipped = selected - changed
    message = f"Sent {_items(changed)} to review."
    if skipped:
        message += f" {_items(skipped)} left out: gold, or not fully annotated yet."
    return ActionResult(changed=changed, skipped=skipped, message=message)


def selection_gold_mark(*, project: Project, selection: Selection) -> ActionResult:
    """Make the selected items gold with their final value as the true value, in one UPDATE.

    Refused (nothing changed) when any selected item has no final value yet. Gold items are
    complete (the queue no longer serves them) and out of the review queue, as
    annotate.gold.item_gold_set leaves one; their final label keeps its value, so of the tallies
    only "final_source" moves: the sources the items had are counted from the rows as they are
    locked and changed, so a submit committing meanwhile cannot make them wrong.
    """
    counts = item_list_filtered(project=project, filters=selection.filters).aggregate(
        total=Count("id"), unlabeled=Count("id", filter=Q(final_value__isnull=True))
    )
    unlabeled = counts["unlabeled"]
    if unlabeled:
        raise ValidationError(
            {
                "selection": f"{_items(unlabeled)} of the selection {'has' if unlabeled == 1 else 'have'}"
                " no final label to make gold; select labeled items only (labeled = yes)"
            }
        )
    with transaction.atomic(), connection.cursor() as cursor:
        sql, params = _selected(project, selection).query.sql_with_params()
        assignments = (
            "pick_kind = %s, gold_value = final_value, final_source = %s, is_complete = %s, review_state = %s"
        )
        values = [PickKind.GOLD, FinalSource.GOLD, True, ReviewState.NONE]
        where = f"id IN ({sql}) AND final_value IS NOT NULL AND pick_kind <> %s"
        if connection.vendor == "postgresql":
            # Lock, change and count in one statement: the sources counted are those the rows
            # had when locked, the ones the UPDATE overwrites.
            cursor.execute(
                f"WITH locked AS (SELECT id, final_source FROM {table(Item)} WHERE {where} FOR UPDATE),"
                f" changed AS (UPDATE {table(Item)} SET {assignments} FROM locked"
                f" WHERE {table(Item)}.id = locked.id RETURNING locked.final_source AS old)"
                " SELECT old, COUNT(*) FROM changed GROUP BY old",
                [*params, PickKind.GOLD, *values],
            )
            before = dict(cursor.fetchall())
        else:
            # SQLite: the transaction holds the database's write lock from its start
            # (transaction_mode IMMEDIATE), so nothing changes between these two statements.
            cursor.execute(
                f"SELECT final_source, COUNT(*) FROM {table(Item)} WHERE {where} GROUP BY final_source",
                [*params, PickKind.GOLD],
            )
            before = dict(cursor.fetchall())
            cursor.execute(
                f"UPDATE {table(Item)} SET {assignments} WHERE {where}", [*values, *params, PickKind.GOLD]
            )
        changed = sum(before.values())
        added: Counter = Counter()
        for source, n in before.items():
            added["final_source", source] -= n
        added["final_source", FinalSource.GOLD] += changed
        tallies_add(cursor, project_id=project.id, added=added)
    skipped = max(counts["total"] - changed, 0)
    message = f"Marked {_items(changed)} as gold with their final labels."
    if skipped:
        message += f" {_items(skipped)} already gold."
    return ActionResult(changed=changed, skipped=skipped, message=message)


def selection_export(
    *,
    project: Project,
    selection: Selection,
    format: str,
    requested_by: AbstractBaseUser | None = None,
    base_url: str = "",
) -> ActionResult:
    """Start a background export of the selection: an ExportJob whose `selection` is the
    selection's filters (`ItemFilters.as_selection`; {"ids": [...]} for ticked items), which the
    exporter applies through `items_filtered`."""
    # Imported here: the exporter imports annotate.browser (items_filtered) to read selections.
    from annotate import exporting

    stored = selection.filters.as_selection()
    job = exporting.item_export_start(
        project=project, format=format, selection=stored, created_by=requested_by, base_url=base_url
    )
    count = item_list_filtered(project=project, filters=selection.filters).count()
    return ActionResult(
        changed=count, skipped=0, message=f"Exporting {_items(count)} as {format.upper()}.", job=job
    )


ACTIONS = {
    "review": selection_review_send,
    "gold": selection_gold_mark,
    "export": selection_export,
}
