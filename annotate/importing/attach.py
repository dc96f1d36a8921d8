"""Writing the values an exchange-format file brings (COCO, YOLO, CoNLL, spaCy), all or nothing.

Each value goes to an existing item (matched by the format's rule) or, for spans, to a new item
made from the file's text. As labels, a value is an annotation of the inactive user
"source:<label_source>", as the text import's label column makes them: counted while the item
is below its overlap, then the item's final label, its counters, review state and the tallies
change in the same way as for a submit (annotate/quality/finals.py item_change). A second import
from the same source is that source's new answer, never a second vote. As predictions, a value
is the item's proposal, `{"value": ..., "score": null}`, which the editors pre-fill. New items
go through writer.rows_write. Everything happens in one transaction.
"""

import re
from collections import Counter
from collections.abc import Callable, Sequence
from typing import NamedTuple

from django.core.exceptions import ValidationError
from django.db import DatabaseError, connection, transaction
from django.utils import timezone

from annotate.importing.rows import ImportRejected, ImportResult, Row, source_name_validate
from annotate.importing.writer import _source_user, rows_write
from annotate.models import Annotation, Item, PickKind, Project, ReviewState
from annotate.quality.finals import final_assignments, item_change
from annotate.quality.tallies import annotation_tallies, tallies_add
from annotate.quality.votes import item_votes
from annotate.raw_rows import table
from annotate.signals import annotations_stored_on_commit
from annotate.values import annotation_value_validate

LABELS, PREDICTIONS = "labels", "predictions"
IMPORT_AS = (LABELS, PREDICTIONS)
# Items locked and written per statement batch.
BATCH = 500


class Target(NamedTuple):
    """One validated value and where it goes: `item_id` (an existing item) or a new item with
    `external_id` and `text`. `where` names it in errors ("a.json, images[3]")."""

    where: str
    value: dict
    item_id: int | None = None
    external_id: str = ""
    text: str = ""


def import_as_check(import_as: str | None) -> str:
    if import_as in (None, ""):
        return LABELS
    if import_as not in IMPORT_AS:
        raise ImportRejected(f"import_as must be {' or '.join(IMPORT_AS)}, not {import_as!r}")
    return import_as


def targets_import(
    *,
    project: Project,
    filename: str,
    targets: Sequence[Target],
    import_as: str,
    label_source: str,
) -> ImportResult:
    """Write `targets` as labels or predictions (`import_as`), in one transaction."""
    if not targets:
        raise ImportRejected(f"{filename}: no labels in the file")
    seen: dict[int, str] = {}
    for target in targets:
        if target.item_id is not None:
            if target.item_id in seen:
                raise ImportRejected(f"{target.where}: the same item as {seen[target.item_id]}")
            seen[target.item_id] = target.where
    labels = import_as == LABELS
    source = source_name_validate(label_source, "label" if labels else None)
    existing = [t for t in targets if t.item_id is not None]
    new = [
        Row(
            locator=t.where.split(", ", 1)[-1],
            external_id=t.external_id,
            text=t.text,
            choices=t.value if labels else None,
            proposal=None if labels else {"value": t.value, "score": None},
        )
        for t in targets
        if t.item_id is None
    ]
    created = annotations = 0
    try:
        with transaction.atomic():
            if existing and labels:
                annotations += _labels_attach(project, existing, source)
            elif existing:
                _proposals_attach(existing)
            if new:
                result = rows_write(project=project, rows=new, source=source, filename=filename)
                created, annotations = result.items_created, annotations + result.annotations_created
    except DatabaseError as exc:
        raise ImportRejected(
            f"{filename}: the database refused the values, nothing was stored: {exc}"
        ) from exc
    return ImportResult(
        items_created=created,
        annotations_created=annotations,
        proposals=0 if labels else len(targets),
        items_updated=len(existing),
    )


def _proposals_attach(targets: Sequence[Target]) -> None:
    items = [Item(pk=t.item_id, proposal={"value": t.value, "score": None}) for t in targets]
    Item.objects.bulk_update(items, ["proposal"], batch_size=BATCH)


def _labels_attach(project: Project, targets: Sequence[Target], source: str) -> int:
    """Caller holds a transaction. One annotation per target, with the item's change as a submit's."""
    annotator_id = _source_user(source).pk
    label_names = list(project.labels.order_by("order", "id").values_list("name", flat=True))
    now = timezone.now()
    day = timezone.localdate(now).isoformat()
    by_item = {t.item_id: t for t in targets}
    ids = sorted(by_item)
    added = annotation_tallies(
        annotator_id=annotator_id, day=day, active_ms=0, proposal_version_id=None, proposal_accepted=None
    )
    rows = []
    tallies: Counter = Counter()
    with connection.cursor() as cursor:
        for start in range(0, len(ids), BATCH):
            # Locked in id order, as every writer of items does: no deadlock.
            items = Item.objects.select_for_update().filter(pk__in=ids[start : start + BATCH]).order_by("pk")
            for item in items:
                value = by_item[item.pk].value
                before = item_votes(cursor, item_id=item.pk)
                voted = annotator_id in before
                counted = (
                    not voted and item.pick_kind != PickKind.GOLD and item.annotation_count < project.overlap
                )
                after = dict(before)
                if counted or voted:
                    after[annotator_id] = value
                change = item_change(
                    item=item,
                    multi_label=project.multi_label,
                    label_names=label_names,
                    votes_before=before,
                    votes_after=after,
                )
                tallies.update(change.tallies)
                tallies.update(added)
                complete = item.is_complete or item.annotation_count + counted >= project.overlap
                if complete and not item.is_complete:
                    tallies["completed_day", day] += 1
                queued = complete and not item.is_complete and item.review_state == ReviewState.NONE
                if item.review_state == ReviewState.DONE and voted and before[annotator_id] != value:
                    queued = True  # as a changed answer does: a reviewed item is reviewed again
                assignments, params = final_assignments(change)
                cursor.execute(
                    f"UPDATE {table(Item)} SET annotation_count = annotation_count + %s,"
                    f" is_complete = %s, {assignments},"
                    " review_state = CASE WHEN %s THEN %s ELSE review_state END WHERE id = %s",
                    [1 if counted else 0, complete, *params, queued, ReviewState.QUEUED, item.pk],
                )
                rows.append(
                    Annotation(
                        project_id=project.id,
                        item_id=item.pk,
                        annotator_id=annotator_id,
                        value=value,
                        created_at=now,
                        late=False,
                        counted=counted,
                        source=source,
                    )
                )
        # One upsert for the whole file, its keys in sorted order (tallies_add).
        tallies_add(cursor, project_id=project.id, added=tallies)
    Annotation.objects.bulk_create(rows, batch_size=BATCH)
    annotations_stored_on_commit(project=project)
    return len(rows)


_ENTRY = re.compile(r"^value\.(?:boxes|spans)\[(\d+)\](?:\.(\w+))?$")


def value_check(
    *,
    project: Project,
    label_names: Sequence[str],
    value: dict,
    where: str,
    entry_where: Callable[[int, str | None], str],
    text: str | None = None,
) -> dict:
    """annotation_value_validate's answer, or ImportRejected naming the place in the file:
    `entry_where(k, key)` names the k-th box or span (and its key, e.g. "w") as the file holds it."""
    try:
        return annotation_value_validate(project=project, label_names=label_names, value=value, text=text)
    except ValidationError as exc:
        key, messages = next(iter(exc.message_dict.items()))
        match = _ENTRY.match(key)
        prefix = entry_where(int(match[1]), match[2]) if match else where
        raise ImportRejected(f"{prefix}: {'; '.join(messages)}") from None


def items_by_external_id(project: Project, external_ids: Sequence[str], *fields: str) -> dict[str, tuple]:
    """The project's items among `external_ids`: external id -> (id, *fields)."""
    found: dict[str, tuple] = {}
    keys = list(dict.fromkeys(external_ids))
    for start in range(0, len(keys), 2000):
        rows = Item.objects.filter(project=project, external_id__in=keys[start : start + 2000])
        for external_id, *rest in rows.values_list("external_id", "id", *fields):
            found[external_id] = tuple(rest)
    return found
