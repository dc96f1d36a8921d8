"""The columns of an export, described once, and the record renderers made from that description.

ITEM_COLUMNS and ANNOTATION_COLUMNS list, in order, every key of a JSON record (an item, then
each of its annotations) and the CSV columns they become, each with the model fields it is read
from and its `Kind`: how such a value is selected (as it is, or as text on PostgreSQL's fast path)
and written to JSON and CSV, from Django's values (the generic path) or from PostgreSQL's text
(exporting.postgres). A new column is one line here; both paths and both formats follow.

From the tables, `renderers()` builds the functions that turn one page row into its record: for
speed, each is compiled from the columns into one expression, e.g. for the text path's annotations

    f'{{"id": {r[1]}, "annotator": {_enc(r[3])}, "value": {value_json(r[10])}, …}}'

which costs what the hand-written f-string it replaced cost (writing the records is a third of a
JSON export's CPU, most of a CSV export's).
"""

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from json.encoder import encode_basestring
from typing import Any, NamedTuple

# How the text path selects a field: as it is, as text (JSON columns), as isoformat text.
PLAIN, TEXT, ISO = "plain", "text", "iso"

# An expression's source, given its fields' value expressions (e.g. ["r[3]"]).
Snippet = Callable[[list[str]], str]
Cells = Callable[[list[str]], list[str]]


@dataclass(frozen=True)
class Kind:
    """How one kind of value goes from its fields into a record, as Python source snippets."""

    select: tuple[str, ...]  # per field: PLAIN, TEXT or ISO
    json: Snippet  # the generic path: the value json.dumps writes
    json_text: Snippet  # the text path: an f-string fragment writing its JSON text
    csv: Cells  # the generic path: its CSV cells
    csv_text: Cells  # the text path: its CSV cells


def _same(v):
    return v[0]


NUMBER = Kind(
    select=(PLAIN,),
    json=_same,
    json_text=lambda v: f"{{{v[0]}}}",
    csv=lambda v: [v[0]],
    csv_text=lambda v: [v[0]],
)
OPTIONAL_NUMBER = Kind(
    select=(PLAIN,),
    json=_same,
    json_text=lambda v: f"{{_json_int({v[0]})}}",
    csv=lambda v: [v[0]],
    csv_text=lambda v: [v[0]],
)
STRING = Kind(
    select=(PLAIN,),
    json=_same,
    json_text=lambda v: f"{{_enc({v[0]})}}",
    csv=lambda v: [f"_cell({v[0]})"],
    csv_text=lambda v: [f"_cell({v[0]})"],
)
FLAG = Kind(
    select=(PLAIN,),
    json=_same,
    json_text=lambda v: f"{{_JSON_FLAGS[{v[0]}]}}",
    csv=lambda v: [f"_csv_bool({v[0]})"],
    csv_text=lambda v: [f"_CSV_FLAGS[{v[0]}]"],
)
MOMENT = Kind(
    select=(ISO,),
    json=lambda v: f"_iso({v[0]})",
    json_text=lambda v: f'"{{{v[0]}}}"',
    csv=lambda v: [f"_iso({v[0]})"],
    csv_text=lambda v: [v[0]],
)
# A JSON column written to JSON only (CSV has no column for it).
OBJECT = Kind(
    select=(TEXT,),
    json=_same,
    json_text=lambda v: f"{{_json_from_jsonb({v[0]})}}",
    csv=lambda v: [],
    csv_text=lambda v: [],
)
# A label value: JSON as it is; in CSV its choices joined by ";".
VALUE = Kind(
    select=(TEXT,),
    json=_same,
    json_text=lambda v: f"{{value_json({v[0]})}}",
    csv=lambda v: [f"_cell(_value_cell({v[0]}))"],
    csv_text=lambda v: [f"value_cell({v[0]})"],
)
# (proposal value, model version id): JSON {"value", "model_version_id"} or null; CSV two cells.
PROPOSAL = Kind(
    select=(TEXT, PLAIN),
    json=lambda v: f"_proposal({v[0]}, {v[1]})",
    json_text=lambda v: f"{{_proposal_json({v[0]}, {v[1]})}}",
    csv=lambda v: [f"_cell(_value_cell({v[0]}))", v[1]],
    csv_text=lambda v: [f"value_cell({v[0]})", v[1]],
)
# (item id, image name): the URL the studio serves the image at (annotate:item-image).
IMAGE_URL = Kind(
    select=(PLAIN, PLAIN),
    json=lambda v: f"image_url({v[0]}, {v[1]})",
    json_text=lambda v: f"{{_json_or_null(image_url({v[0]}, {v[1]}))}}",
    csv=lambda v: [f"_cell(image_url({v[0]}, {v[1]}) or '')"],
    csv_text=lambda v: [f"_cell(image_url({v[0]}, {v[1]}) or '')"],
)
# (final value, its source): the item's own final label (annotate/quality/ keeps it). JSON
# {"value", "source"}; CSV two cells.
FINAL = Kind(
    select=(TEXT, PLAIN),
    json=lambda v: f"_final({v[0]}, {v[1]})",
    json_text=lambda v: f"{{_final_json({v[0]}, {v[1]})}}",
    csv=lambda v: [f"_cell(_value_cell({v[0]}))", v[1]],
    csv_text=lambda v: [f"value_cell({v[0]})", v[1]],
)
# pick_kind: whether the item is a gold item (its annotations are answers checked against the
# true value, never labels of their own).
GOLD = Kind(
    select=(PLAIN,),
    json=lambda v: f"_is_gold({v[0]})",
    json_text=lambda v: f"{{_JSON_FLAGS[_is_gold({v[0]})]}}",
    csv=lambda v: [f"_csv_bool(_is_gold({v[0]}))"],
    csv_text=lambda v: [f"_CSV_FLAGS[_is_gold({v[0]})]"],
)


class Column(NamedTuple):
    key: str  # the JSON key
    kind: Kind
    fields: tuple[str, ...] = ()  # the model fields it is read from (item's, or annotation's)
    csv: tuple[str, ...] | None = None  # its CSV headers: (key,) unless given; () for JSON only
    image_only: bool = False  # only in image projects' exports

    def headers(self) -> tuple[str, ...]:
        return (self.key,) if self.csv is None else self.csv


ITEM_COLUMNS = (
    Column("id", NUMBER, ("id",), csv=("item_id",)),
    Column("external_id", STRING, ("external_id",)),
    Column("text", STRING, ("text",)),
    Column("image", STRING, ("image",), image_only=True),
    Column("image_url", IMAGE_URL, ("id", "image"), image_only=True),
    Column("width", OPTIONAL_NUMBER, ("width",), image_only=True),
    Column("height", OPTIONAL_NUMBER, ("height",), image_only=True),
    Column("metadata", OBJECT, ("metadata",), csv=()),
    Column("final_label", FINAL, ("final_value", "final_source"), csv=("final_label", "final_source")),
    Column("gold", GOLD, ("pick_kind",)),
)
# After the item's columns: JSON's "annotations" list of these records; in CSV, one row per
# annotation (an item without any gets one row whose annotation cells are empty).
ANNOTATION_COLUMNS = (
    Column("id", NUMBER, ("id",), csv=()),
    Column("annotator", STRING, ("annotator__username",)),
    Column("value", VALUE, ("value",)),
    Column("created_at", MOMENT, ("created_at",)),
    Column("active_ms", NUMBER, ("active_ms",)),
    Column("late", FLAG, ("late",)),
    Column("counted", FLAG, ("counted",)),
    Column("rejected", FLAG, ("rejected",)),
    Column("source", STRING, ("source",)),
    Column(
        "proposal",
        PROPOSAL,
        ("proposal_value", "proposal_model_version_id"),
        csv=("proposal", "proposal_model_version_id"),
    ),
    Column("proposal_accepted", FLAG, ("proposal_accepted",)),
)
# Read whatever the columns: the keyset, and which item an annotation belongs to.
_ITEM_NEEDS = ("id",)
_ANNOTATION_NEEDS = ("item_id",)


def item_columns(*, image: bool) -> tuple[Column, ...]:
    return tuple(column for column in ITEM_COLUMNS if image or not column.image_only)


def csv_header(*, image: bool) -> list[str]:
    """The CSV's header row."""
    return [h for column in (*item_columns(image=image), *ANNOTATION_COLUMNS) for h in column.headers()]


class Layout(NamedTuple):
    """The fields a page query selects, in order: those selected as they are first, then those
    selected as text (the text path's SELECT list keeps that order, so each row is the tuple
    psycopg makes). `select[i]` says how field `fields[i]` is selected."""

    fields: tuple[str, ...]
    select: tuple[str, ...]

    def index(self, field: str) -> int:
        return self.fields.index(field)


def _layout(columns: tuple[Column, ...], needs: tuple[str, ...]) -> Layout:
    how: dict[str, str] = {field: PLAIN for field in needs if field != "value"}
    how.update({"value": TEXT} if "value" in needs else {})
    for column in columns:
        for field, select in zip(column.fields, column.kind.select, strict=True):
            if how.setdefault(field, select) != select:
                raise ValueError(f"field {field!r} is selected both as {how[field]} and as {select}")
    ordered = sorted(how, key=lambda field: how[field] != PLAIN)  # stable: plain ones first
    return Layout(tuple(ordered), tuple(how[field] for field in ordered))


def item_layout(*, image: bool) -> Layout:
    return _layout(item_columns(image=image), _ITEM_NEEDS)


ANNOTATION_LAYOUT = _layout(ANNOTATION_COLUMNS, _ANNOTATION_NEEDS)


# The renderers ---------------------------------------------------------------------------


class Renderers(NamedTuple):
    """Page row -> record, for one format and path. JSON: `item(row, annotations)` gives the
    item's record (the generic path: a dict; the text path: its JSON text, `annotations` being
    the annotations' JSON texts joined), `annotation(row)` an annotation's. CSV: `item(row)` and
    `annotation(row)` give their cells; `empty` fills an item's row that has no annotation."""

    item: Callable
    annotation: Callable
    empty: list


def renderers(
    *, fmt: str, text: bool, image_url: Callable | None, values: Callable | None = None
) -> Renderers:
    """The renderers of `fmt` ("json" or "csv") for the text path (`text`) or the generic one.

    `image_url(item id, image name)` gives an image's URL (image projects); `values(text)` is the
    text path's cached writer of a label value (JSON text, or CSV cell).
    """
    items = item_columns(image=image_url is not None)
    item_fields, annotation_fields = _layout(items, _ITEM_NEEDS).fields, ANNOTATION_LAYOUT.fields
    namespace = {**_HELPERS, "image_url": image_url, "value_json": values, "value_cell": values}

    def expressions(columns, fields, part):
        out = []
        for column in columns:
            v = [f"r[{fields.index(field)}]" for field in column.fields]
            out.append((column, getattr(column.kind, part)(v)))
        return out

    if fmt == "json":
        part = "json_text" if text else "json"
        item_parts = expressions(items, item_fields, part)
        annotation_parts = expressions(ANNOTATION_COLUMNS, annotation_fields, part)
        if text:
            item = (
                "f'{{"
                + ", ".join(f'"{c.key}": {e}' for c, e in item_parts)
                + ', "annotations": [{annotations}]}}\''
            )
            annotation = "f'{{" + ", ".join(f'"{c.key}": {e}' for c, e in annotation_parts) + "}}'"
        else:
            item = "{" + ", ".join(f"{c.key!r}: {e}" for c, e in item_parts) + ", 'annotations': annotations}"
            annotation = "{" + ", ".join(f"{c.key!r}: {e}" for c, e in annotation_parts) + "}"
        return Renderers(
            _compile("item", "r, annotations", item, namespace),
            _compile("annotation", "r", annotation, namespace),
            [],
        )
    part = "csv_text" if text else "csv"
    in_csv = [column for column in items if column.headers()], [c for c in ANNOTATION_COLUMNS if c.headers()]
    item_cells = [cell for _, cells in expressions(in_csv[0], item_fields, part) for cell in cells]
    annotation_cells = [
        cell for _, cells in expressions(in_csv[1], annotation_fields, part) for cell in cells
    ]
    if len(item_cells) + len(annotation_cells) != len(csv_header(image=image_url is not None)):
        raise ValueError("a CSV column's kind writes another number of cells than it has headers")
    return Renderers(
        _compile("item", "r", "[" + ", ".join(item_cells) + "]", namespace),
        _compile("annotation", "r", "[" + ", ".join(annotation_cells) + "]", namespace),
        [""] * len(annotation_cells),
    )


def _compile(name: str, parameters: str, expression: str, namespace: dict) -> Callable:
    source = f"def {name}({parameters}):\n    return {expression}\n"
    scope = dict(namespace)
    exec(compile(source, f"<export {name}>", "exec"), scope)  # the source is built from the tables above
    return scope[name]


# What the snippets call ------------------------------------------------------------------

# OWASP CSV injection: a spreadsheet runs a cell that starts with one of these as a formula.
_FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")
_JSON_FLAGS = {True: "true", False: "false", None: "null"}
_CSV_FLAGS = {True: "true", False: "false", None: ""}
# A number with a fraction, the only JSON that json.loads then json.dumps may print otherwise.
_FRACTION = re.compile(r"[0-9]\.")


def dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)


def csv_cell(text: str) -> str:
    """A text cell, with a single quote before what a spreadsheet would run as a formula."""
    return "'" + text if text.startswith(_FORMULA_PREFIXES) else text


def value_cell(value: Any) -> str:
    """A label value's CSV cell: its choices joined by ";", other JSON as it is; "" for none."""
    if value is None:
        return ""
    if isinstance(value, dict) and set(value) == {"choices"} and isinstance(value["choices"], list):
        return ";".join(str(choice) for choice in value["choices"])
    return dumps(value)


def json_from_jsonb(text: str | None) -> str:
    """What `dumps` of the value Django decodes from jsonb's text `text` writes (None: SQL NULL).

    jsonb prints objects and arrays with json.dumps' separators and keys in its stored order,
    which json.loads keeps; it escapes strings as json.dumps(ensure_ascii=False) does. Its
    numbers print as PostgreSQL's numeric does: an integer as its digits, which int() and
    repr() keep; a number with a fraction ("1.50") may not survive a float, so such text
    (or any text with a digit before a point) goes through json.loads and json.dumps.
    """
    if text is None:
        return "null"
    if _FRACTION.search(text) is None:
        return text
    return dumps(json.loads(text))


def _is_gold(pick_kind: str) -> bool:
    return pick_kind == "gold"


def _final(value: Any, source: str) -> dict:
    return {"value": value, "source": source}


def _final_json(value: str | None, source: str) -> str:
    return f'{{"value": {json_from_jsonb(value)}, "source": "{source}"}}'


def _csv_bool(flag: bool | None) -> str:
    return "" if flag is None else ("true" if flag else "false")


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment is not None else None


def _json_int(number: int | None) -> str:
    return "null" if number is None else str(number)


def _json_or_null(text: str | None) -> str:
    return "null" if text is None else encode_basestring(text)


def _proposal(value: Any, version: int | None) -> dict | None:
    if value is None and version is None:
        return None
    return {"value": value, "model_version_id": version}


def _proposal_json(value: str | None, version: int | None) -> str:
    # jsonb null decodes to None as SQL NULL does: no proposal either way.
    if (value is None or value == "null") and version is None:
        return "null"
    return f'{{"value": {json_from_jsonb(value)}, "model_version_id": {_json_int(version)}}}'


_HELPERS = {
    "_enc": encode_basestring,
    "_cell": csv_cell,
    "_value_cell": value_cell,
    "_json_from_jsonb": json_from_jsonb,
    "_JSON_FLAGS": _JSON_FLAGS,
    "_CSV_FLAGS": _CSV_FLAGS,
    "_csv_bool": _csv_bool,
    "_iso": _iso,
    "_json_int": _json_int,
    "_json_or_null": _json_or_null,
    "_proposal": _proposal,
    "_proposal_json": _proposal_json,
    "_final": _final,
    "_is_gold": _is_gold,
    "_final_json": _final_json,
}
