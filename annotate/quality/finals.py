"""Keeping an item's final label and the project's tallies right when the item changes.

Every change that can move a final label (a submit, a review decision, gold marked or cleared,
Dawid–Skene) ends in item_change: from the item as it was and its voters before and after,
the new final columns and what the change adds to the tallies (agreement, label distribution,
final sources). The caller writes both in the transaction of the change, holding the item's lock.
"""

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

from django.db import connection
from django.utils import timezone

from annotate.models import FinalSource, Item, PickKind
from annotate.quality.consensus import disagree, final_of
from annotate.quality.matching import objects_of
from annotate.quality.tallies import tallies_add
from annotate.quality.votes import Votes, agreement_tallies
from annotate.raw_rows import table


@dataclass(frozen=True)
class ItemChange:
    final_value: dict | None
    final_source: str
    disagreement: bool
    tallies: Counter


def final_tallies(value: dict | None, source: str) -> Counter:
    """What one item's final label adds to the label distribution and the sources: each chosen
    label once, and for boxes and spans each object's label (so "final_label" counts objects)."""
    added: Counter = Counter({("final_source", source): 1})
    for choice in (value or {}).get("choices", []):
        added["final_label", choice] += 1
    for obj in objects_of(value):
        added["final_label", obj["label"]] += 1
    return added


def item_change(
    *,
    item: Item,
    multi_label: bool,
    label_names: Sequence[str],
    votes_before: Votes,
    votes_after: Votes,
    gold_value: dict | None = ...,
    reviewed_value: dict | None = ...,
) -> ItemChange:
    """The item's new final columns and tallies once its voters are `votes_after` (and, when
    given, its gold or reviewed value is the one passed). Answers on gold items are uncounted, so
    they never vote nor count toward agreement; votes given before an item became gold still do."""
    gold = item.gold_value if item.pick_kind == PickKind.GOLD else None
    new_gold = gold if gold_value is ... else gold_value
    new_reviewed = item.reviewed_value if reviewed_value is ... else reviewed_value
    value, source = final_of(
        votes=list(votes_after.values()),
        multi_label=multi_label,
        label_order=label_names,
        gold_value=new_gold,
        reviewed_value=new_reviewed,
    )
    added = final_tallies(value, source)
    added.subtract(final_tallies(item.final_value, item.final_source or FinalSource.NONE))
    added.subtract(agreement_tallies(votes_before, multi_label=multi_label, label_names=label_names))
    added.update(agreement_tallies(votes_after, multi_label=multi_label, label_names=label_names))
    return ItemChange(
        final_value=value,
        final_source=source,
        disagreement=disagree(list(votes_after.values())),
        tallies=added,
    )


def completed_day(counted_at) -> str | None:
    """The day an item was completed, as the progress tallies count it ("completed_day"): the day
    of its latest counted annotation, the one that completed it. None without one."""
    moments = [moment for moment in counted_at if moment is not None]
    return timezone.localdate(max(moments)).isoformat() if moments else None


_FINAL_VALUE = Item._meta.get_field("final_value")


def final_assignments(change: ItemChange) -> tuple[str, list]:
    """`final_value = %s, final_source = %s, disagreement = %s` and its parameters, for an UPDATE."""
    return (
        "final_value = %s, final_source = %s, disagreement = %s",
        [
            _FINAL_VALUE.get_db_prep_save(change.final_value, connection),
            change.final_source,
            change.disagreement,
        ],
    )


def item_change_write(
    cursor, *, project_id: int, item_id: int, change: ItemChange, extra: str = "", params=()
) -> None:
    """Write the change: the item's final columns (with `extra` assignments) and the tallies."""
    assignments, values = final_assignments(change)
    if extra:
        assignments += ", " + extra
        values += list(params)
    cursor.execute(f"UPDATE {table(Item)} SET {assignments} WHERE id = %s", [*values, item_id])
    tallies_add(cursor, project_id=project_id, added=change.tallies)
