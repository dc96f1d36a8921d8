"""Exporting a project's items with their annotations and final labels: JSON, JSON Lines, CSV;
and the final labels in the formats people exchange: COCO, YOLO (boxes), CoNLL, spaCy (spans).

    columns.py   the columns of an export, described once, and the record renderers made from them
    pages.py     the read snapshot and the keyset pages (the generic path)
    postgres.py  the fast path on PostgreSQL: pages read as text ready to be written
    formats.py   the formats, streamed a page at a time, and the image URLs they carry
    boxes.py     COCO JSON and YOLO (a zip) of bounding-box projects' final labels
    spans.py     CoNLL (BIO) and spaCy JSONL of text-span projects' final labels
    jobs.py      export_request (stream or background job), export jobs and their sweeper

Image projects' records carry `image_url`, the studio's URL of the image (annotate:item-image):
it answers only to a logged-in member of the project (session or API token).

Code outside this package imports what it needs from here, never from the modules.
"""

from annotate.exporting.formats import (
    CONTENT_TYPES,
    CSV_COLUMNS,
    CSV_IMAGE_COLUMNS,
    FORMATS,
    export_csv,
    export_filename,
    export_formats_for,
    export_json,
    export_jsonl,
    export_stream,
)
from annotate.exporting.jobs import (
    ExportAnswer,
    export_job_get,
    export_job_list,
    export_jobs_sweep,
    export_request,
    item_export_run_job,
    item_export_start,
)
from annotate.exporting.pages import read_snapshot
from annotate.exporting.spans import conll_tag_label

__all__ = [
    "CONTENT_TYPES",
    "CSV_COLUMNS",
    "CSV_IMAGE_COLUMNS",
    "FORMATS",
    "ExportAnswer",
    "conll_tag_label",
    "export_csv",
    "export_filename",
    "export_formats_for",
    "export_job_get",
    "export_job_list",
    "export_jobs_sweep",
    "export_json",
    "export_jsonl",
    "export_request",
    "export_stream",
    "item_export_run_job",
    "item_export_start",
    "read_snapshot",
]
