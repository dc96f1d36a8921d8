"""The text formats (text classification projects): CSV, JSON, JSON Lines, plain text, and records
already parsed (the API's JSON body), each all or nothing.

- CSV (comma; tab for .tsv): a header row, then one item per record. Lines are physical lines,
  the header being line 1. In a multi-label project a label cell lists names separated by ";".
- JSON: an array of objects. JSONL: one object per line. Label fields are a label name or, in a
  multi-label project, a list of names.
- Plain text: one item per non-empty line.
- Records: `{"text", "external_id"?, "metadata"?}` objects, "row N" counting from 1.

All share one set-up (`_text_import`): the project's task type, the label source, the file
decoded as UTF-8, one RowBuilder for the row rules, and writer.rows_import to write.
"""

import codecs
import csv
import io
import json
import re
import uuid
from collections.abc import Callable, Iterable, Iterator
from typing import IO, Any

from annotate.importing.images import url_rows_import
from annotate.importing.options import COLUMN_FORMATS
from annotate.importing.rows import (
    ImportRejected,
    ImportResult,
    Row,
    RowBuilder,
    source_name_validate,
    task_type_require,
)
from annotate.importing.writer import Progress, rows_import
from annotate.models import Project

# The field naming each row's image in a CSV, JSON or JSONL file imported into an image project.
DEFAULT_IMAGE_FIELD = "image_url"
IMAGE_TASK_TYPES = (Project.TaskType.IMAGE_CLASSIFICATION, Project.TaskType.IMAGE_BOXES)
IMAGE_URLS_NOTE = (
    " (this is an image project: a csv, json or jsonl file names each row's image by http(s) URL;"
    " or import image files or a zip)"
)

# A parser: (the decoded text, the row builder) -> (the rows, as a generator factory, and their
# number for the progress).
_Parse = Callable[[str, RowBuilder], tuple[Callable[[], Iterator[Row]], int]]


def import_csv(
    *,
    project: Project,
    file: IO,
    filename: str,
    text_column: str | None = None,
    image_column: str | None = None,
    id_column: str | None = None,
    label_column: str | None = None,
    prediction_column: str | None = None,
    gold_column: str | None = None,
    label_source: str = "import",
    progress: Progress | None = None,
) -> ImportResult:
    """Import a CSV file with a header row (tab-separated when the name ends in .tsv); all or nothing."""
    delimiter = "\t" if filename.lower().endswith(".tsv") else ","

    def parse(text: str, builder: RowBuilder):
        # Parsed as the rows are written, so that PostgreSQL stores the first batches meanwhile.
        records = _csv_records(text, filename=filename, delimiter=delimiter)
        first = next(records, None)
        if first is None:
            raise ImportRejected(
                f"{filename}: the file is empty; expected a header row and then one row per item"
            )
        header_line, header = first
        header = [name.strip() for name in header]
        named = [name for name in header if name]
        if len(set(named)) != len(named):
            twice = next(name for name in named if named.count(name) > 1)
            raise ImportRejected(
                f"{filename}, line {header_line}: column {twice!r} appears twice in the header"
            )
        for column in (
            builder.text_field,
            builder.image_field,
            id_column,
            label_column,
            prediction_column,
            gold_column,
        ):
            if column is not None and column not in header:
                raise ImportRejected(
                    f"{filename}, line {header_line}: no column {column!r}"
                    + (IMAGE_URLS_NOTE if column == builder.image_field else "")
                    + "; the columns are: "
                    + ", ".join(header)
                )

        def rows() -> Iterator[Row]:
            for line, record in records:
                if len(record) > len(header):
                    raise ImportRejected(
                        f"{filename}, line {line}: {len(record)} fields but the header has {len(header)}"
                        " (quote cells that contain the delimiter)"
                    )
                cells = dict(zip(header, record + [""] * (len(header) - len(record)), strict=True))
                yield builder.build(locator=f"line {line}", fields=cells, generated_id=f"{filename}:{line}")

        # For the progress only: the lines after the header (a quoted cell may span lines).
        return rows, text.count("\n") + (not text.endswith("\n")) - header_line

    return _text_import(
        project=project,
        format="csv",
        file=file,
        filename=filename,
        parse=parse,
        builder=dict(
            text_field=text_column,
            image_field=image_column,
            id_field=id_column,
            label_field=label_column,
            prediction_field=prediction_column,
            gold_field=gold_column,
            cells_are_text=True,
        ),
        label_source=label_source,
        progress=progress,
    )


def import_json(
    *,
    project: Project,
    file: IO,
    filename: str,
    text_column: str | None = None,
    image_column: str | None = None,
    id_column: str | None = "id",
    label_column: str | None = "label",
    prediction_column: str | None = "prediction",
    gold_column: str | None = "gold",
    label_source: str = "import",
    progress: Progress | None = None,
) -> ImportResult:
    """Import a JSON array of objects; each field is optional except the text; all or nothing."""

    def parse(text: str, builder: RowBuilder):
        elements = _json_array(text, filename=filename)

        def rows() -> Iterator[Row]:
            for number, (line, element) in enumerate(elements, start=1):
                yield builder.build(
                    locator=f"item {number} (line {line})",
                    fields=element,
                    generated_id=f"{filename}:{number}",
                )

        return rows, len(elements)

    return _text_import(
        project=project,
        format="json",
        file=file,
        filename=filename,
        parse=parse,
        builder=_json_fields(
            text_column, image_column, id_column, label_column, prediction_column, gold_column
        ),
        label_source=label_source,
        progress=progress,
    )


def import_jsonl(
    *,
    project: Project,
    file: IO,
    filename: str,
    text_column: str | None = None,
    image_column: str | None = None,
    id_column: str | None = "id",
    label_column: str | None = "label",
    prediction_column: str | None = "prediction",
    gold_column: str | None = "gold",
    label_source: str = "import",
    progress: Progress | None = None,
) -> ImportResult:
    """Import JSON Lines, one object per non-empty line; all or nothing."""

    def parse(text: str, builder: RowBuilder):
        lines = _lines(text)

        def rows() -> Iterator[Row]:
            for number, line in lines:
                try:
                    element = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise ImportRejected(
                        f"{filename}, line {number}: malformed JSON at column {exc.colno}: {exc.msg}"
                    ) from None
                yield builder.build(
                    locator=f"line {number}", fields=element, generated_id=f"{filename}:{number}"
                )

        return rows, len(lines)

    return _text_import(
        project=project,
        format="jsonl",
        file=file,
        filename=filename,
        parse=parse,
        builder=_json_fields(
            text_column, image_column, id_column, label_column, prediction_column, gold_column
        ),
        label_source=label_source,
        progress=progress,
    )


def import_text(
    *, project: Project, file: IO, filename: str, progress: Progress | None = None
) -> ImportResult:
    """Import plain text, one item per non-empty line, with external id "<filename>:<line>"."""

    def parse(text: str, builder: RowBuilder):
        lines = _lines(text)

        def rows() -> Iterator[Row]:
            for number, line in lines:
                yield builder.build(
                    locator=f"line {number}", fields={"text": line}, generated_id=f"{filename}:{number}"
                )

        return rows, len(lines)

    return _text_import(
        project=project,
        format="text",
        file=file,
        filename=filename,
        parse=parse,
        builder=dict(text_field="text", id_field=None, cells_are_text=True),
        label_source="",
        progress=progress,
    )


def import_records(
    *, project: Project, records: Iterable[Any], source: str = "items", shuffle: bool = True
) -> ImportResult:
    """Import records already parsed, `{"text", "external_id"?, "metadata"?}` each, as "row 1",
    "row 2"… of `source`; an absent external id gets a random one. All or nothing. `shuffle`:
    random priorities (writer.rows_write); off, the queue serves them in the records' order."""
    records = records if isinstance(records, list) else list(records)

    def parse(_text: str, builder: RowBuilder):
        def rows() -> Iterator[Row]:
            for number, record in enumerate(records, start=1):
                # A random id only where none is given: uuid4 cost a tenth of the rows' validation.
                given = isinstance(record, dict) and "external_id" in record
                yield builder.build(
                    locator=f"row {number}", fields=record, generated_id="" if given else uuid.uuid4().hex
                )

        return rows, len(records)

    return _text_import(
        project=project,
        format="text items",
        file=None,
        filename=source,
        parse=parse,
        builder=dict(
            text_field="text", id_field="external_id", cells_are_text=False, metadata_field="metadata"
        ),
        label_source="",
        progress=None,
        shuffle=shuffle,
    )


def _text_import(
    *,
    project: Project,
    format: str,
    file: IO | None,
    filename: str,
    parse: _Parse,
    builder: dict,
    label_source: str,
    progress: Progress | None,
    shuffle: bool = True,
) -> ImportResult:
    """The set-up every text format shares: check the project's task type and the label source,
    decode the file, build rows with one RowBuilder (`builder` holds its field names) and write them.

    Into an image project a CSV, JSON or JSONL file names each row's image by URL (the
    `image_field`, "image_url" by default) instead of a text; images.url_rows_import fetches them.
    """
    by_url = format in COLUMN_FORMATS and project.task_type in IMAGE_TASK_TYPES
    builder = _fields_for(project, format, builder, by_url=by_url)
    source = source_name_validate(label_source, builder.get("label_field"))
    text = "" if file is None else _decode(file, filename)
    rows, total = parse(text, RowBuilder(project=project, filename=filename, **builder))
    if by_url:
        return url_rows_import(
            project=project,
            filename=filename,
            rows=rows,
            image_field=builder["image_field"],
            id_field=builder["id_field"],
            source=source,
            progress=progress,
        )
    return rows_import(
        project=project,
        filename=filename,
        rows=rows,
        total=total,
        id_field=builder["id_field"],
        source=source,
        progress=progress,
        shuffle=shuffle,
    )


def _fields_for(project: Project, format: str, builder: dict, *, by_url: bool) -> dict:
    """`builder` with its text or image field settled: an image project's rows name an image
    URL (never a text), a text project's a text (never an image URL)."""
    text_field, image_field = builder.get("text_field"), builder.get("image_field")
    if by_url:
        if text_field is not None:
            raise ImportRejected(
                f"project {project.name!r} is an image project: its rows name an image by URL"
                " (image_column), not a text column"
            )
        return {**builder, "text_field": None, "image_field": image_field or DEFAULT_IMAGE_FIELD}
    task_type_require(project, Project.TaskType.TEXT_CLASSIFICATION, format)
    if image_field is not None:
        raise ImportRejected(
            f"project {project.name!r} is a text project: image_column applies to image projects only"
        )
    return {**builder, "text_field": text_field or "text", "image_field": None}


def _json_fields(
    text: str | None,
    image: str | None,
    id: str | None,
    label: str | None,
    prediction: str | None,
    gold: str | None,
) -> dict:
    return dict(
        text_field=text,
        image_field=image,
        id_field=id,
        label_field=label,
        prediction_field=prediction,
        gold_field=gold,
        cells_are_text=False,
    )


def _lines(text: str) -> list[tuple[int, str]]:
    """(line number, line) for each line that is not blank."""
    return [(number, line) for number, line in enumerate(text.split("\n"), start=1) if line.strip()]


# Parsing ---------------------------------------------------------------------------------


def _decode(file: IO | bytes, filename: str) -> str:
    """The file as text: UTF-8 (a BOM is dropped), CRLF made LF; a bad byte names its line."""
    data = file if isinstance(file, (bytes, str)) else file.read()
    if isinstance(data, str):
        return data.lstrip("\ufeff").replace("\r\n", "\n")
    if data.startswith(codecs.BOM_UTF8):
        data = data[len(codecs.BOM_UTF8) :]
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        column = exc.start - (data.rfind(b"\n", 0, exc.start) + 1) + 1
        raise ImportRejected(
            f"{filename}, line {line}: not UTF-8 (byte 0x{data[exc.start]:02x} at column {column});"
            " save the file as UTF-8"
        ) from None
    if "\x00" in text:
        line = text.count("\n", 0, text.index("\x00")) + 1
        raise ImportRejected(f"{filename}, line {line}: contains a NUL character; is this a text file?")
    return text.replace("\r\n", "\n")


def _csv_records(text: str, *, filename: str, delimiter: str) -> Iterator[tuple[int, list[str]]]:
    """(line where the record starts, cells) for each record that is not blank."""
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, strict=True)
    end = 0
    while True:
        start = end + 1
        try:
            record = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            raise ImportRejected(f"{filename}, line {reader.line_num}: malformed CSV: {exc}") from None
        end = reader.line_num
        if any(cell.strip() for cell in record):
            yield start, record


def _json_array(text: str, *, filename: str) -> list[tuple[int, Any]]:
    """The elements of a top-level JSON array, each with the line it starts on."""
    decoder = json.JSONDecoder()
    whitespace = re.compile(r"[ \t\n\r]*")

    def skip(position: int) -> int:
        return whitespace.match(text, position).end()

    def malformed(position: int, message: str) -> ImportRejected:
        line = text.count("\n", 0, position) + 1
        column = position - (text.rfind("\n", 0, position) + 1) + 1
        return ImportRejected(f"{filename}, line {line}, column {column}: malformed JSON: {message}")

    position = skip(0)
    if position == len(text):
        raise ImportRejected(f"{filename}: the file is empty; expected a JSON array of objects")
    if text[position] != "[":
        try:
            decoder.raw_decode(text, position)
        except json.JSONDecodeError as exc:
            raise malformed(exc.pos, exc.msg) from None
        raise ImportRejected(f"{filename}: expected a JSON array of objects ([{{...}}, ...])")
    elements: list[tuple[int, Any]] = []
    line, counted_to = 1, 0
    position = skip(position + 1)
    if text.startswith("]", position):
        position += 1
    else:
        while True:
            line += text.count("\n", counted_to, position)
            counted_to = position
            try:
                element, position = decoder.raw_decode(text, position)
            except json.JSONDecodeError as exc:
                raise malformed(exc.pos, exc.msg) from None
            elements.append((line, element))
            position = skip(position)
            if text.startswith(",", position):
                position = skip(position + 1)
            elif text.startswith("]", position):
                position += 1
                break
            else:
                raise malformed(position, "expected ',' or ']' after an array element")
    if skip(position) != len(text):
        raise malformed(skip(position), "extra data after the array")
    return elements
