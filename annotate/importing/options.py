"""Import formats and options, validated in one place for every caller (API, page, command, jobs).

`import_options_validate` tells the format (from the file's name when none is given), refuses
what an upload cannot be (several files for a format that takes one, an unknown option, a column
option for a format without columns), drops empty values so that the importers' defaults apply,
and says each refusal once, naming the field at fault.
"""

from collections.abc import Mapping, Sequence
from pathlib import PurePosixPath
from typing import Any

from django.core.exceptions import ValidationError

TEXT_FORMATS = ("csv", "json", "jsonl", "text")
# Labels in the formats people exchange, onto existing items (or, for spans, new ones).
EXCHANGE_FORMATS = ("coco", "yolo", "conll", "spacy")
FORMATS = (*TEXT_FORMATS, "images", "zip", *EXCHANGE_FORMATS)
# The formats whose records have named columns or fields, and the options naming them.
COLUMN_FORMATS = ("csv", "json", "jsonl")
# image_column: the image URL of each row, in an image project's file (annotate/importing/remote.py).
COLUMN_OPTIONS = (
    "text_column",
    "image_column",
    "id_column",
    "label_column",
    "prediction_column",
    "gold_column",
)
# import_as: "labels" (the default) or "predictions", for the exchange formats.
OPTION_NAMES = frozenset({*COLUMN_OPTIONS, "label_source", "import_as"})

_EXTENSION_FORMATS = {
    ".csv": "csv",
    ".tsv": "csv",
    ".json": "json",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".txt": "text",
    ".zip": "zip",
    ".conll": "conll",
    ".conllu": "conll",
}
IMAGE_EXTENSIONS = frozenset(
    {".jpg", ".jpeg", ".png", ".gif", ".webp", ".bmp", ".tif", ".tiff", ".avif", ".jfif"}
)


def import_format_for(filename: str) -> str | None:
    """The import format a file name suggests (csv, json, jsonl, text, zip, images, conll), or
    None. COCO (.json), YOLO (.zip) and spaCy (.jsonl) are named, never guessed."""
    suffix = PurePosixPath(filename.lower()).suffix
    if suffix in IMAGE_EXTENSIONS:
        return "images"
    return _EXTENSION_FORMATS.get(suffix)


def import_options_validate(
    *, format: str | None, options: Mapping[str, Any] | None, filenames: Sequence[str] = ()
) -> tuple[str, dict[str, str]]:
    """(format, options) for an upload of `filenames`, or ValidationError {field: message}.

    An empty `format` is told from the first file's name. Options left empty (None or "") are
    dropped; "label_source" is taken by every format (and used only with a label column, where
    the importer checks the name).
    """
    if not format:
        name = filenames[0] if filenames else ""
        format = import_format_for(name)
        if format is None:
            known = ", ".join(FORMATS)
            raise ValidationError(
                {"format": f"cannot tell the format from the name {name!r}; give one of: {known}"}
            )
    if format not in FORMATS:
        raise ValidationError(
            {"format": f"unknown import format {format!r}; choose one of: {', '.join(FORMATS)}"}
        )
    if len(filenames) > 1 and format != "images":
        raise ValidationError(
            {"file": 'only the format "images" takes several files; send a zip or one file'}
        )
    given = {name: value for name, value in (options or {}).items() if value is not None and value != ""}
    unknown = sorted(set(given) - OPTION_NAMES)
    if unknown:
        raise ValidationError(
            {unknown[0]: f"unknown import option {unknown[0]!r}; known: {', '.join(sorted(OPTION_NAMES))}"}
        )
    for name, value in given.items():
        if not isinstance(value, str):
            raise ValidationError({name: f"{name} must be a column or field name, not {value!r}"})
    if "import_as" in given and format not in EXCHANGE_FORMATS:
        raise ValidationError(
            {"import_as": f"format {format!r} takes no import_as; only {', '.join(EXCHANGE_FORMATS)} do"}
        )
    if given.get("import_as", "labels") not in ("labels", "predictions"):
        raise ValidationError(
            {"import_as": f"import_as is labels or predictions, not {given['import_as']!r}"}
        )
    if format not in COLUMN_FORMATS:
        column = next((name for name in COLUMN_OPTIONS if name in given), None)
        if column is not None:
            raise ValidationError(
                {column: f"format {format!r} takes no column options; only {', '.join(COLUMN_FORMATS)} do"}
            )
    return format, given
