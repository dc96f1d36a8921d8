"""The export formats: JSON, JSON Lines and CSV, each a generator of text chunks; and the
exchange formats of the task types that have them (exporting.boxes: COCO and YOLO, a zip of
bytes; exporting.spans: CoNLL and spaCy JSONL), which hold the items' final labels.

A StreamingHttpResponse, the background job (exporting.jobs) and the `export_project` command
share these. Records follow exporting.columns; pages come from exporting.postgres on PostgreSQL
(text ready to be written) or exporting.pages elsewhere, both in one read snapshot.

A generator holds its transaction open until it is exhausted or closed: consume it fully or
call `.close()` (StreamingHttpResponse does); closing rolls the read transaction back. Don't
write on the same connection while one is open: the writes would join the export's
transaction (on SQLite a deferred read transaction may not be able to take the write lock).

Image projects' records carry `image_url`: the URL the studio serves the image at
(annotate:item-image), absolute when `base_url` is given. It answers only to a logged-in member
of the project (a session, or an API token), never publicly.
"""

import csv
import io
import json
from collections.abc import Callable, Iterator

from django.core.exceptions import ValidationError
from django.urls import reverse
from django.utils import timezone
from django.utils.text import slugify

from annotate.exporting import boxes, columns, pages, postgres, spans
from annotate.exporting.columns import csv_cell, dumps, json_from_jsonb, value_cell
from annotate.models import Project

FORMATS = ("json", "jsonl", "csv", "coco", "yolo", "conll", "spacy")
CONTENT_TYPES = {
    "json": "application/json",
    "jsonl": "application/x-ndjson",
    "csv": "text/csv",
    "coco": "application/json",
    "yolo": "application/zip",
    "conll": "text/plain",
    "spacy": "application/x-ndjson",
}
EXTENSIONS = {"coco": "json", "yolo": "zip", "conll": "conll", "spacy": "jsonl"}
# The exchange formats, and the one task type each holds.
TASK_FORMATS = {
    "coco": Project.TaskType.IMAGE_BOXES,
    "yolo": Project.TaskType.IMAGE_BOXES,
    "conll": Project.TaskType.TEXT_SPANS,
    "spacy": Project.TaskType.TEXT_SPANS,
}
CSV_COLUMNS = tuple(columns.csv_header(image=False))
# Image projects add these after "text".
CSV_IMAGE_COLUMNS = tuple(h for h in columns.csv_header(image=True) if h not in CSV_COLUMNS)


def export_jsonl(
    *,
    project: Project,
    scope: pages.ExportScope = pages.ALL_ITEMS,
    progress: pages.Progress | None = None,
    base_url: str = "",
) -> Iterator[str]:
    """The project's items as JSON Lines, one item per line, streamed a page at a time.

    `progress(items_done, items_total)` is called after each page (the total is counted at
    the start, in the same snapshot). Consume or close the generator: it holds a transaction.
    """
    with pages.read_snapshot():
        for records in _json_pages(project, scope, progress, base_url):
            yield "".join(record + "\n" for record in records)


def export_json(
    *,
    project: Project,
    scope: pages.ExportScope = pages.ALL_ITEMS,
    progress: pages.Progress | None = None,
    base_url: str = "",
) -> Iterator[str]:
    """The project's items as one JSON array, streamed a page at a time (see export_jsonl)."""
    with pages.read_snapshot():
        yield "["
        separator = "\n"
        for records in _json_pages(project, scope, progress, base_url):
            yield separator + ",\n".join(records)
            separator = ",\n"
        yield "\n]\n" if separator != "\n" else "]\n"


def export_csv(
    *,
    project: Project,
    scope: pages.ExportScope = pages.ALL_ITEMS,
    progress: pages.Progress | None = None,
    base_url: str = "",
) -> Iterator[str]:
    """One CSV row per annotation (an item without any gets one row with empty annotation cells).

    Labels are joined by ";". Cells that a spreadsheet would run as a formula start with a
    single quote. Streamed a page at a time (see export_jsonl).
    """
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(columns.csv_header(image=project.is_image))
    with pages.read_snapshot():
        yield _drain(buffer)
        for rows in _csv_pages(project, scope, progress, base_url):
            writer.writerows(rows)
            yield _drain(buffer)


EXPORTERS: dict[str, Callable[..., Iterator[str | bytes]]] = {
    "json": export_json,
    "jsonl": export_jsonl,
    "csv": export_csv,
    "coco": boxes.export_coco,
    "yolo": boxes.export_yolo,
    "conll": spans.export_conll,
    "spacy": spans.export_spacy,
}


def export_formats_for(project: Project) -> tuple[str, ...]:
    """The formats `project` can be exported in: JSON, JSONL and CSV, and its task type's own."""
    return tuple(f for f in FORMATS if TASK_FORMATS.get(f, project.task_type) == project.task_type)


def export_format_check(format: str, project: Project | None = None) -> None:
    """ValidationError {"format": …} unless `format` is one of FORMATS (and, given the
    `project`, one its task type has)."""
    if format not in EXPORTERS:
        raise ValidationError(
            {"format": f"unknown export format {format!r}; use one of {', '.join(FORMATS)}"}
        )
    if project is not None and format not in export_formats_for(project):
        raise ValidationError(
            {
                "format": f"{format} holds {TASK_FORMATS[format].label.lower()}: project {project.name!r}"
                f" is a {project.get_task_type_display().lower()} project; export it as one of"
                f" {', '.join(export_formats_for(project))}"
            }
        )


def export_stream(
    *,
    project: Project,
    format: str,
    labeled_only: bool = False,
    reviewed_only: bool = False,
    selection: dict | None = None,
    progress: pages.Progress | None = None,
    base_url: str = "",
) -> Iterator[str]:
    """The exporter of `format` (json, jsonl, csv, or the project's exchange formats:
    coco and yolo, whose zip comes as bytes; conll, spacy); ValidationError for any other.

    `labeled_only`, `reviewed_only` and `selection` (the item browser's filters) limit the items
    (pages.ExportScope). `base_url` ("https://studio.example") makes image URLs absolute;
    without it they are paths.
    """
    export_format_check(format, project)
    scope = pages.ExportScope(
        labeled_only=labeled_only, reviewed_only=reviewed_only, selection=selection or None
    )
    return EXPORTERS[format](project=project, scope=scope, progress=progress, base_url=base_url)


def export_filename(project: Project, format: str) -> str:
    """A download name for an export of `project`, e.g. `reviews-12-20250101-120000.jsonl`
    (COCO: .json, YOLO: .zip, CoNLL: .conll, spaCy: .jsonl)."""
    stamp = timezone.now().strftime("%Y%m%d-%H%M%S")
    return f"{slugify(project.name) or 'project'}-{project.id}-{stamp}.{EXTENSIONS.get(format, format)}"


def image_url_for(project: Project, base_url: str = "") -> Callable[[int, str], str | None] | None:
    """For an image project, (item id, image name) -> the URL the studio serves the image at to
    its members (None for an item without an image); None for other projects."""
    if not project.is_image:
        return None
    # reverse() once, not per item: the item id goes between the path's two halves.
    marker = 9_876_543_210
    head, tail = reverse("annotate:item-image", args=[project.id, marker]).rsplit(str(marker), 1)
    head = base_url.rstrip("/") + head
    return lambda item_id, image: f"{head}{item_id}{tail}" if image else None


def _json_pages(project: Project, scope: pages.ExportScope, progress, base_url: str) -> Iterator[list[str]]:
    """Caller holds the read snapshot. Each page's items as their JSON text."""
    image_url = image_url_for(project, base_url)
    layout = columns.item_layout(image=image_url is not None)
    if not postgres.text_rows():
        render = columns.renderers(fmt="json", text=False, image_url=image_url)
        for entries in pages.item_pages(project=project, scope=scope, progress=progress, layout=layout):
            yield [
                dumps(render.item(item, [render.annotation(row) for row in rows])) for item, rows in entries
            ]
        return
    values: dict[str, str] = {}
    render = columns.renderers(
        fmt="json",
        text=True,
        image_url=image_url,
        values=lambda text: postgres.cached(values, text, lambda: json_from_jsonb(text)),
    )
    entries_pages = postgres.item_pages_text(project=project, scope=scope, progress=progress, layout=layout)
    item, annotation = render.item, render.annotation
    for entries in entries_pages:
        yield [item(row, ", ".join([annotation(a) for a in rows])) for row, rows in entries]


def _csv_pages(project: Project, scope: pages.ExportScope, progress, base_url: str) -> Iterator[list[list]]:
    """Caller holds the read snapshot. Each page's CSV rows (see export_csv)."""
    image_url = image_url_for(project, base_url)
    layout = columns.item_layout(image=image_url is not None)
    if not postgres.text_rows():
        render = columns.renderers(fmt="csv", text=False, image_url=image_url)
        for entries in pages.item_pages(project=project, scope=scope, progress=progress, layout=layout):
            yield [row for item, rows in entries for row in _csv_rows(render, item, rows)]
        return
    cells: dict[str | None, str] = {}
    render = columns.renderers(
        fmt="csv",
        text=True,
        image_url=image_url,
        values=lambda text: postgres.cached(
            cells, text, lambda: csv_cell(value_cell(None if text is None else json.loads(text)))
        ),
    )
    entries_pages = postgres.item_pages_text(project=project, scope=scope, progress=progress, layout=layout)
    for entries in entries_pages:
        yield [row for item, rows in entries for row in _csv_rows(render, item, rows)]


def _csv_rows(render: columns.Renderers, item: tuple, rows: list) -> list[list]:
    head = render.item(item)
    if not rows:
        return [head + render.empty]
    return [head + render.annotation(row) for row in rows]


def _drain(buffer: io.StringIO) -> str:
    text = buffer.getvalue()
    buffer.seek(0)
    buffer.truncate()
    return text
