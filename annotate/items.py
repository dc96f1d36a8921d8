"""Items: adding them in bulk (all or nothing) and listing them with their queue state."""

from collections.abc import Iterable

from django.core.exceptions import ValidationError
from django.db import connection
from django.db.models import Exists, OuterRef, QuerySet

from annotate.importing import ImportResult, import_records
from annotate.models import Annotation, Item, Project, Skip
from annotate.raw_rows import columns, from_row, table


def item_image_get(*, project: Project, item_id: int) -> Item | None:
    """The project's item `item_id` with its image field only, or None."""
    return Item.objects.filter(project=project, pk=item_id).only("image").first()


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


def item_create_bulk(*, project: Project, rows: Iterable[dict], source: str = "items") -> ImportResult:
    """Add text items `{"text", "external_id"?, "metadata"?}`; any bad row rejects them all.

    The rows pass the import's row rules and its batch writer (COPY on PostgreSQL): errors
    (ImportRejected, a ValidationError) name the row (1-based) and the field, and a duplicate
    external id names both rows; an absent external id gets a random one. The items keep the
    body's order in the queue (priority 0): an API client chooses it, unlike a file's import.
    """
    rows = rows if isinstance(rows, list) else list(rows)
    if not rows:
        return ImportResult(items_created=0, annotations_created=0, proposals=0)
    return import_records(project=project, records=rows, source=source, shuffle=False)


def item_locked(cursor, *, project: Project, item_id: int) -> Item | None:
    """Caller holds a transaction. The project's item `item_id` with its row locked (FOR UPDATE
    on PostgreSQL; SQLite's IMMEDIATE transactions serialise writers already), or None."""
    sql = f"SELECT {columns(Item, 'i')} FROM {table(Item)} i WHERE i.id = %s AND i.project_id = %s"
    if connection.features.has_select_for_update:
        sql += " FOR UPDATE"
    cursor.execute(sql, [int(item_id), project.id])
    row = cursor.fetchone()
    return None if row is None else from_row(Item, row)
