"""Importing items: one module per format, the row rules written once, one job lifecycle.

Every importer validates each row as it goes and writes the items (and the annotations and
proposals that came with them) in one transaction; a rejected file leaves no rows and no files
behind. Errors are `ImportRejected` naming the file, the line (or item, row or zip entry) and the
field, e.g. "reviews.csv, line 12, field 'label': unknown label 'meh'; this project's labels are:
positive, negative".

Fields of the text formats: text (required); id (the external id; when absent "<filename>:<line>",
or "<filename>:<item number>" in a JSON array); label (imported as a counted annotation by the
inactive user "source:<label_source>"); prediction (stored as Item.proposal: a label name, a list
of names, or {"label" | "choices": ..., "score": 0.9}; a CSV cell may hold that JSON too); gold
(the true value of a gold item: a label name or a list; the row's label must then be empty).
Other columns or fields are kept in Item.metadata.

The exchange formats (coco, yolo, conll, spacy) carry label values, not items: option
`import_as` is "labels" (the default) or "predictions" (Item.proposal, pre-filled by the editors).

    options.py   formats, and the import options validated once for every caller
    rows.py      the row rules: task type, text, ids, labels, proposals; ImportRejected
    text.py      CSV, JSON, JSON Lines, plain text, and parsed records (the API's JSON body)
    images.py    image files and zips, with image and zip safety; images named by URL in an
                 image project's CSV, JSON or JSONL (field "image_url"), fetched by remote.py
    remote.py    fetching an image URL: http(s), public addresses only, pinned, with limits
    boxes.py     COCO JSON and YOLO zips: boxes onto existing images
    spans.py     CoNLL and spaCy JSONL: spans onto existing items, or new items from their text
    attach.py    writing those values as labels (annotations of "source:<label_source>") or as
                 predictions (Item.proposal), and the value check naming the file's place
    writer.py    the batch writer (COPY on PostgreSQL) and the statistics refresh after it
    jobs.py      one entry point per upload, background import jobs and their sweeper

Code outside this package imports what it needs from here, never from the modules.
"""

from annotate.importing.boxes import import_coco, import_yolo
from annotate.importing.images import import_image_zip, import_images
from annotate.importing.jobs import (
    import_job_get,
    import_jobs_sweep,
    item_import,
    item_import_run_job,
    item_import_start,
)
from annotate.importing.options import (
    EXCHANGE_FORMATS,
    FORMATS,
    OPTION_NAMES,
    import_format_for,
    import_options_validate,
)
from annotate.importing.rows import ImportRejected, ImportResult
from annotate.importing.spans import import_conll, import_spacy
from annotate.importing.text import import_csv, import_json, import_jsonl, import_records, import_text

__all__ = [
    "EXCHANGE_FORMATS",
    "FORMATS",
    "OPTION_NAMES",
    "ImportRejected",
    "ImportResult",
    "import_coco",
    "import_conll",
    "import_csv",
    "import_format_for",
    "import_image_zip",
    "import_images",
    "import_job_get",
    "import_jobs_sweep",
    "import_json",
    "import_jsonl",
    "import_options_validate",
    "import_records",
    "import_spacy",
    "import_text",
    "import_yolo",
    "item_import",
    "item_import_run_job",
    "item_import_start",
]
