"""Items: adding them in bulk (all or nothing) and listing them with their queue state."""

import uuid
from collections.abc import Iterable

from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Exists, OuterRef, QuerySet

from annotate.models import Annotation, Item, Project, Skip
from annotate.queue import queue_order_changed

BATCH_SIZE = 2000


def item_list(
    *, project: Project, status: str | None = None, annotator_id: int | None = None
) -> QuerySet[Item]:
    """A project's items in import order; `status` is labeled, unlabeled or skipped.

    With `annotator_id`, the status is that annotator's: labeled by them, not yet, skipped by them.
    """
    qs = Item.objects.filter(project=project).order_by("id")
    annotations = Annotation.objects.filter(item_id=OuterRef("pk"))
    skips = Skip.objects.filter(item_id=OuterRef("pk"))
    if annotator_id is not None:
        annotations = annotations.filter(annotator_id=annotator_id)
        skips = skips.filter(annotator_id=annotator_id)
    if status == "labeled":
        qs = qs.filter(Exists(annotations))
    elif status == "unlabeled":
        qs = qs.filter(~Exists(annotations))
    elif status == "skipped":
        qs = qs.filter(Exists(skips))
    elif status:
        raise ValidationError({"status": "must be labeled, unlabeled or skipped"})
    return qs


def annotation_list(
    *, project: Project, annotator_id: int | None = None, item_id: int | None = None
) -> QuerySet[Annotation]:
    """A project's annotations with their annotators, oldest first; optionally one annotator's or item's."""
    qs = Annotation.objects.filter(project_id=project.id).select_related("annotator").order_by("id")
    if annotator_id is not None:
        qs = qs.filter(annotator_id=annotator_id)
    if item_id is not None:
        qs = qs.filter(item_id=item_id)
    return qs


@transaction.atomic
def item_create_bulk(*, project: Project, rows: Iterable[dict], source: str = "request") -> list[Item]:
    """Add text items `{"text", "external_id"?, "metadata"?}`; any bad row rejects them all.

    Errors name the row (1-based) and the field, and a duplicate external id names both rows.
    """
    items: list[Item] = []
    first_row_of: dict[str, int] = {}
    for number, row in enumerate(rows, start=1):
        where = f"{source}, row {number}"
        if not isinstance(row, dict):
            raise ValidationError(f"{where}: each item must be an object")
        unknown = set(row) - {"text", "external_id", "metadata"}
        if unknown:
            raise ValidationError(f"{where}, field {sorted(unknown)[0]!r}: unknown field")
        text = row.get("text")
        if not isinstance(text, str) or not text.strip():
            raise ValidationError(f"{where}, field 'text': must be a non-empty string")
        external_id = row.get("external_id")
        if external_id is None:
            external_id = uuid.uuid4().hex
        if not isinstance(external_id, (str, int)) or not str(external_id).strip():
            raise ValidationError(f"{where}, field 'external_id': must be a non-empty string")
        external_id = str(external_id).strip()
        if len(external_id) > 255:
            raise ValidationError(f"{where}, field 'external_id': longer than 255 characters")
        if external_id in first_row_of:
            raise ValidationError(
                f"{where}, field 'external_id': {external_id!r} repeats row {first_row_of[external_id]}"
            )
        first_row_of[external_id] = number
        metadata = row.get("metadata", {})
        if not isinstance(metadata, dict):
            raise ValidationError(f"{where}, field 'metadata': must be an object")
        items.append(
            Item(
                project=project,
                external_id=external_id,
                text=text.replace("\r\n", "\n"),
                metadata=metadata,
            )
        )
    existing = set(
        Item.objects.filter(project=project, external_id__in=list(first_row_of)).values_list(
            "external_id", flat=True
        )
    )
    if existing:
        duplicate = sorted(existing, key=first_row_of.__getitem__)[0]
        raise ValidationError(
            f"{source}, row {first_row_of[duplicate]}, field 'external_id': "
            f"{duplicate!r} already exists in this project"
        )
    with transaction.atomic():
        created = Item.objects.bulk_create(items, batch_size=BATCH_SIZE)
        queue_order_changed(project_id=project.id)
    return created
