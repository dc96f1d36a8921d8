"""The row rules: what every imported row must be before it is written, whatever it came from.

A file of any format and the API's JSON body (annotate.items.item_create_bulk) pass the same
rules: the project's task type, a text that is a non-empty string without NUL, an external id
(given or generated) that is non-empty, at most 255 characters, without NUL, unique within the
upload and new to the project, labels and proposals that name the project's labels. A refusal
is `ImportRejected` naming the file (or "items"), the line, row or entry, and the field.
"""

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

from django.core.exceptions import ValidationError
from django.db import connection

from annotate.models import Annotation, Item, Project
from annotate.values import annotation_value_validate

EXTERNAL_ID_MAX_LENGTH = 255


class ImportRejected(ValidationError):
    """A file refused as a whole; the message names the file, the line or entry and the field."""

    def __init__(self, message: str):
        super().__init__(message, code="import_rejected")

    def __str__(self) -> str:
        return self.message


@dataclass(frozen=True)
class ImportResult:
    items_created: int
    annotations_created: int
    proposals: int
    # Existing items given a label or a proposal (the exchange formats: COCO, YOLO, CoNLL, spaCy).
    items_updated: int = 0


class Row(NamedTuple):
    """One validated item, ready to write. `locator` is "line 7", "item 3 (line 9)" or "entry 'a.png'"."""

    locator: str
    external_id: str
    text: str = ""
    image: str = ""
    width: int | None = None
    height: int | None = None
    metadata: dict = {}  # shared default, never mutated
    choices: dict | None = None
    proposal: dict | None = None
    gold: dict | None = None  # the true value of a gold item
    image_url: str = ""  # an image to fetch (annotate/importing/images.py url_rows_import), then ""


# Items of a text (image) format go into any text (image) project: classification or spans (boxes).
_FAMILIES = {
    Project.TaskType.TEXT_CLASSIFICATION: (Project.TaskType.TEXT_CLASSIFICATION, Project.TaskType.TEXT_SPANS),
    Project.TaskType.IMAGE_CLASSIFICATION: (
        Project.TaskType.IMAGE_CLASSIFICATION,
        Project.TaskType.IMAGE_BOXES,
    ),
}


def task_type_require(project: Project, task_type: str, format: str) -> None:
    """Refuse `format` unless the project's task type is `task_type` or of its family (text
    items also go into span projects, images into box projects)."""
    if project.task_type in _FAMILIES.get(task_type, (task_type,)):
        return
    kind = project.get_task_type_display().lower()
    kind = f"{'an' if kind[0] in 'aeiou' else 'a'} {kind}"
    if task_type in (Project.TaskType.IMAGE_BOXES, Project.TaskType.TEXT_SPANS):
        wanted = "bounding boxes" if task_type == Project.TaskType.IMAGE_BOXES else "text spans"
        raise ImportRejected(f"{format} holds {wanted}: project {project.name!r} is {kind} project")
    if task_type == Project.TaskType.IMAGE_CLASSIFICATION:
        raise ImportRejected(
            f"project {project.name!r} is {kind} project:"
            f" import text (csv, json, jsonl, text) into it, not {format}"
        )
    raise ImportRejected(
        f"project {project.name!r} is {kind} project:"
        f" import images (image files or a zip) into it, not {format}"
    )


def nul_path(value: Any, path: str = "") -> str | None:
    """Where the first NUL character (U+0000, which PostgreSQL cannot store in text) lies in a
    JSON-like value, in keys or strings: "meta.k", "tags[2]", or None when there is none."""
    if isinstance(value, str):
        return (path or "value") if "\x00" in value else None
    if isinstance(value, dict):
        for key, inner in value.items():
            here = f"{path}.{key}" if path else str(key)
            if "\x00" in str(key):
                return here
            found = nul_path(inner, here)
            if found is not None:
                return found
    elif isinstance(value, list):
        for n, inner in enumerate(value):
            found = nul_path(inner, f"{path}[{n}]")
            if found is not None:
                return found
    return None


def nonfinite_path(value: Any, path: str = "") -> str | None:
    """Where the first number that is not finite (NaN, Infinity: Python's JSON reader takes them
    and 1e400, PostgreSQL's jsonb refuses them) lies in a JSON-like value, or None."""
    if isinstance(value, float):
        return None if math.isfinite(value) else (path or "value")
    children = (
        value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    )
    for key, inner in children:
        here = f"{path}[{key}]" if isinstance(key, int) else (f"{path}.{key}" if path else str(key))
        found = nonfinite_path(inner, here)
        if found is not None:
            return found
    return None


def source_name_validate(name: str, label_field: str | None) -> str | None:
    """The name imported labels are attributed to ("source:<name>"); None without a label field."""
    if label_field is None:
        return None
    name = (name or "").strip()
    if not name or len(name) > Annotation._meta.get_field("source").max_length:
        raise ImportRejected("the label source must be a name of 1 to 64 characters, e.g. 'import'")
    return name


def external_id_check(external_id: str, *, where: str, field: str | None) -> None:
    label = f", field {field!r}" if field else ""
    if not external_id:
        raise ImportRejected(f"{where}{label}: the id is empty")
    if len(external_id) > EXTERNAL_ID_MAX_LENGTH:
        raise ImportRejected(f"{where}{label}: the id is longer than {EXTERNAL_ID_MAX_LENGTH} characters")
    if "\x00" in external_id:
        raise ImportRejected(f"{where}{label}: the id contains a NUL character")


def json_type(value: Any) -> str:
    names = {dict: "an object", list: "a list", str: "a string", bool: "true/false", type(None): "null"}
    return names.get(type(value), "a number")


class RowBuilder:
    """Turns one record (CSV cells, a JSON object, a line of text) into a validated Row, or
    raises ImportRejected.

    Fields other than the named ones are kept as the item's metadata; with `metadata_field`
    (the API's body) the metadata is that field's object instead, and other fields are refused.
    With `image_field` (an image project's CSV, JSON or JSONL) each row names an image by http(s)
    URL in that field instead of a text; the project must fetch image URLs (fetch_image_urls).
    """

    def __init__(
        self,
        *,
        project: Project,
        filename: str,
        text_field: str | None,
        id_field: str | None,
        label_field: str | None = None,
        prediction_field: str | None = None,
        gold_field: str | None = None,
        cells_are_text: bool,
        metadata_field: str | None = None,
        image_field: str | None = None,
    ):
        self.filename = filename
        self.text_field = text_field
        self.image_field = image_field
        self.fetch_image_urls = project.fetch_image_urls
        self.id_field = id_field
        self.label_field = label_field
        self.prediction_field = prediction_field
        # A field is one thing: a gold field that is also the text, id, label or prediction (a
        # label column named "gold", say) is not read as gold values.
        taken = {text_field, image_field, id_field, label_field, prediction_field}
        self.gold_field = gold_field if gold_field not in taken else None
        self.cells_are_text = cells_are_text
        self.metadata_field = metadata_field
        self.known = {
            f
            for f in (
                text_field,
                image_field,
                id_field,
                label_field,
                prediction_field,
                self.gold_field,
                metadata_field,
            )
            if f
        }
        self.choices = ChoicesValidator(project)

    def build(self, *, locator: str, fields: Any, generated_id: str) -> Row:
        where = f"{self.filename}, {locator}"
        if not isinstance(fields, dict):
            raise ImportRejected(f"{where}: expected an object, not {json_type(fields)}")
        if self.image_field is not None:
            text, image_url = "", self._image_url(fields, where=where)
        else:
            text, image_url = self._text(fields, where=where), ""

        if self.id_field is not None and self.id_field in fields:
            external_id = fields[self.id_field]
            if isinstance(external_id, int) and not isinstance(external_id, bool):
                external_id = str(external_id)
            if not isinstance(external_id, str):
                raise ImportRejected(
                    f"{where}, field {self.id_field!r}: expected a string or an integer,"
                    f" not {json_type(external_id)}"
                )
            external_id = external_id.strip()
            external_id_check(external_id, where=where, field=self.id_field)
        else:
            external_id = generated_id
            external_id_check(external_id, where=where, field=None)

        choices = None
        if self.label_field is not None:
            names = self._names(fields.get(self.label_field), where=where, field=self.label_field)
            if names:
                choices = self.choices.validate(names, where=where, field=self.label_field)

        proposal = None
        if self.prediction_field is not None:
            proposal = self._proposal(fields.get(self.prediction_field), where=where)

        gold = None
        if self.gold_field is not None:
            names = self._names(fields.get(self.gold_field), where=where, field=self.gold_field)
            if names:
                gold = self.choices.validate(names, where=where, field=self.gold_field)
                if choices is not None:
                    raise ImportRejected(
                        f"{where}, field {self.gold_field!r}: a gold item's label is its true value;"
                        f" leave {self.label_field!r} empty on this row"
                    )

        if self.metadata_field is None:
            # An unnamed CSV column (a trailing delimiter) is kept only when it holds something.
            metadata = {
                key: value for key, value in fields.items() if key not in self.known and (key or value)
            }
        else:
            metadata = self._metadata(fields, where=where)
        nul = nul_path(metadata)
        if nul is not None:
            raise ImportRejected(f"{where}, field {nul!r}: contains a NUL character")
        nonfinite = nonfinite_path(metadata)
        if nonfinite is not None:
            raise ImportRejected(
                f"{where}, field {nonfinite!r}: a number that is not finite (NaN or Infinity)"
                " cannot be stored"
            )
        return Row(
            locator=locator,
            external_id=external_id,
            text=text,
            metadata=metadata,
            choices=choices,
            proposal=proposal,
            gold=gold,
            image_url=image_url,
        )

    def _text(self, fields: dict, *, where: str) -> str:
        if self.text_field not in fields:
            raise ImportRejected(
                f"{where}: no field {self.text_field!r}; its fields are: " + ", ".join(map(str, fields))
            )
        text = fields[self.text_field]
        if not isinstance(text, str):
            raise ImportRejected(
                f"{where}, field {self.text_field!r}: expected a string, not {json_type(text)}"
            )
        text = text.replace("\r\n", "\n")
        if not text.strip():
            raise ImportRejected(f"{where}, field {self.text_field!r}: the text is empty")
        if "\x00" in text:
            raise ImportRejected(f"{where}, field {self.text_field!r}: contains a NUL character")
        return text

    def _image_url(self, fields: dict, *, where: str) -> str:
        field = self.image_field
        if field not in fields:
            raise ImportRejected(
                f"{where}: no field {field!r} with the image's http(s) URL (this is an image project);"
                " its fields are: " + ", ".join(map(str, fields))
            )
        url = fields[field]
        if not isinstance(url, str):
            raise ImportRejected(f"{where}, field {field!r}: expected a URL, not {json_type(url)}")
        url = url.strip()
        if not url:
            raise ImportRejected(f"{where}, field {field!r}: the URL is empty")
        if "\x00" in url:
            raise ImportRejected(f"{where}, field {field!r}: contains a NUL character")
        if not self.fetch_image_urls:
            raise ImportRejected(
                f"{where}, field {field!r}: fetching images by URL is off for this project;"
                " a manager can turn it on in the settings"
            )
        scheme = url.split(":", 1)[0].lower() if ":" in url else ""
        if scheme not in ("http", "https"):
            raise ImportRejected(
                f"{where}, field {field!r}: only http and https URLs are fetched, not {url[:200]!r}"
            )
        return url

    def _metadata(self, fields: dict, *, where: str) -> dict:
        unknown = [key for key in fields if key not in self.known]
        if unknown:
            raise ImportRejected(f"{where}, field {sorted(map(str, unknown))[0]!r}: unknown field")
        metadata = fields.get(self.metadata_field)
        if metadata is None:
            return {}
        if not isinstance(metadata, dict):
            raise ImportRejected(
                f"{where}, field {self.metadata_field!r}: expected an object, not {json_type(metadata)}"
            )
        return metadata

    def _names(self, raw: Any, *, where: str, field: str) -> list | None:
        """Label names from a cell or field; None or [] when it is empty."""
        if raw is None:
            return None
        if isinstance(raw, str):
            if self.cells_are_text and self.choices.multi_label:
                return [name.strip() for name in raw.split(";") if name.strip()]
            return [raw.strip()] if raw.strip() else None
        if isinstance(raw, list):
            return raw
        raise ImportRejected(
            f"{where}, field {field!r}: expected a label name or a list of label names, not {json_type(raw)}"
        )

    def _proposal(self, raw: Any, *, where: str) -> dict | None:
        field_name = self.prediction_field
        if self.cells_are_text and isinstance(raw, str) and raw.strip().startswith(("{", "[")):
            try:
                raw = json.loads(raw)
            except json.JSONDecodeError as exc:
                raise ImportRejected(
                    f"{where}, field {field_name!r}: malformed JSON at column {exc.colno}: {exc.msg}"
                ) from None
        score = None
        if isinstance(raw, dict):
            unknown = set(raw) - {"label", "choices", "score"}
            if unknown or ("label" in raw) == ("choices" in raw):
                raise ImportRejected(
                    f"{where}, field {field_name!r}: expected "
                    '{"label": "<name>", "score": 0.9} or {"choices": ["<name>", ...], "score": 0.9}'
                )
            score = raw.get("score")
            if score is not None:
                if isinstance(score, bool) or not isinstance(score, (int, float)) or not math.isfinite(score):
                    raise ImportRejected(f"{where}, field {field_name!r}: the score must be a number")
                score = float(score)
            raw = raw.get("label", raw.get("choices"))
        names = self._names(raw, where=where, field=field_name)
        if not names:
            return None
        return {"value": self.choices.validate(names, where=where, field=field_name), "score": score}


class ChoicesValidator:
    """annotation_value_validate for every row, remembering the answer per distinct list of names."""

    def __init__(self, project: Project):
        self.project = project
        self.multi_label = project.multi_label
        # Read now: rows are validated while the writer thread may be using the connection.
        self.label_names = list(project.labels.order_by("order", "id").values_list("name", flat=True))
        self.seen: dict[tuple, dict | str] = {}

    def validate(self, names: list, *, where: str, field: str) -> dict:
        key = (field, tuple(names)) if all(isinstance(n, str) for n in names) else None
        answer = self.seen.get(key) if key else None
        if answer is None:
            try:
                answer = annotation_value_validate(
                    project=self.project, label_names=self.label_names, value={"choices": names}, field=field
                )
            except ValidationError as exc:
                answer = "; ".join(exc.messages)
            if key:
                self.seen[key] = answer
        if isinstance(answer, str):
            raise ImportRejected(f"{where}, field {field!r}: {answer}")
        return answer


class IdCheck:
    """Refuses an id that repeats within the upload (naming both places) or already exists in
    the project. Ids come one at a time (`see`); existing ones are looked up a batch at a time
    (`check_existing`), not at all when the project had no items."""

    def __init__(self, *, project: Project, filename: str | None, id_field: str | None):
        self.project = project
        self.filename = filename
        self.label = f", field {id_field!r}" if id_field else ""
        self.first: dict[str, str] = {}
        # A concurrent import of the same ids still fails on the unique constraint.
        self.project_had_items = Item.objects.filter(project=project).exists()

    def see(self, where: str, external_id: str) -> None:
        """`where` is "<file>, line 7" or "<zip>, entry 'a.png'"."""
        earlier = self.first.get(external_id)
        if earlier is not None:
            if self.filename and earlier.startswith(f"{self.filename}, "):
                earlier = earlier[len(self.filename) + 2 :]
            raise ImportRejected(f"{where}{self.label}: {external_id!r} repeats {earlier}")
        self.first[external_id] = where

    def check_existing(self, rows: Sequence[Row], *, using=connection) -> None:
        self.check_existing_ids([row.external_id for row in rows], using=using)

    def check_existing_ids(self, keys: list[str], *, using=connection) -> None:
        if not self.project_had_items:
            return
        existing = _existing_ids(self.project, keys, using=using)
        if existing:
            external_id = next(key for key in keys if key in existing)
            raise ImportRejected(
                f"{self.first[external_id]}{self.label}: an item with id {external_id!r}"
                " already exists in this project"
            )


def ids_check(
    *,
    project: Project,
    filename: str | None,
    id_field: str | None,
    ids: Sequence[tuple[str, str]],
    batch_size: int,
) -> None:
    """Refuse an id that repeats within `ids` (where, external id) or already exists in the project."""
    check = IdCheck(project=project, filename=filename, id_field=id_field)
    for where, external_id in ids:
        check.see(where, external_id)
    keys = list(check.first)
    for start in range(0, len(keys), batch_size):
        check.check_existing_ids(keys[start : start + batch_size])


def _existing_ids(project: Project, keys: list[str], *, using=connection) -> set[str]:
    if using.vendor == "postgresql":
        # One array parameter: a 2,000-placeholder IN list cost psycopg 10 ms to parse.
        with using.cursor() as cursor:
            cursor.execute(
                f"SELECT external_id FROM {using.ops.quote_name(Item._meta.db_table)}"
                " WHERE project_id = %s AND external_id = ANY(%s)",
                [project.id, keys],
            )
            return {external_id for (external_id,) in cursor.fetchall()}
    return set(
        Item.objects.filter(project=project, external_id__in=keys).values_list("external_id", flat=True)
    )
