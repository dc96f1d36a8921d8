"""CoNLL (BIO) and spaCy JSONL (text-span projects): spans as labels or predictions, all or nothing
(importing.attach writes them).

A document whose id is an item's external id goes to that item; any other becomes a new item
with the file's text. Offsets are checked against the text they will point into
(annotation_value_validate with `text`).

- CoNLL: `token TAG` per line (the first and last columns of a wider CoNLL-2003 line), tags O,
  B-<label>, I-<label> (an I- that follows no span of its label starts one, as conlleval reads
  it); "_" in a tag's label may stand for white space in the label's name. Documents start at
  `-DOCSTART-` lines (blank lines inside one separate sentences), or, in a file without them,
  are separated by blank lines. `# id = ...` names the document (else "<file>:<line>"),
  `# text = "..."` (a JSON string) gives its exact text; other `#` lines are comments. The
  tokens are found in order in the existing item's text, or in the `# text`; without either the
  text is the tokens joined by spaces (a line break between sentences).
- spaCy / Prodigy JSONL: `{"text", "spans": [{"start", "end", "label"}] | [[start, end, label]],
  "meta": {"id"}}` ("entities" is read where "spans" is absent); offsets in code points; lines
  whose "answer" is "reject" or "ignore" are skipped. An existing item's stored text must be the
  line's text. A CRLF in a new item's text is stored as LF, as every text import does, and the
  offsets after it move with it.
"""

import json
import re
from bisect import bisect_right
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import IO, Any

from annotate.importing.attach import (
    Target,
    import_as_check,
    items_by_external_id,
    targets_import,
    value_check,
)
from annotate.importing.rows import (
    ImportRejected,
    ImportResult,
    external_id_check,
    json_type,
    task_type_require,
)
from annotate.importing.text import _decode
from annotate.importing.writer import Progress
from annotate.models import Project
from annotate.projects import label_names as project_label_names

_TAG = re.compile(r"^(?:O|[BI]-(.+))$")


@dataclass
class _Document:
    line: int
    external_id: str | None = None
    text: str | None = None
    tokens: list[tuple[str, str, int]] = field(default_factory=list)  # (token, tag, line)
    breaks: set[int] = field(default_factory=set)  # token positions where a sentence starts


def import_conll(
    *,
    project: Project,
    file: IO,
    filename: str,
    import_as: str | None = None,
    label_source: str = "import",
    progress: Progress | None = None,
) -> ImportResult:
    """Import CoNLL BIO documents (see the module's docstring); all or nothing."""
    task_type_require(project, Project.TaskType.TEXT_SPANS, "conll")
    import_as = import_as_check(import_as)
    documents = _conll_documents(_decode(file, filename), filename)
    if not documents:
        raise ImportRejected(f"{filename}: no documents in the file")
    label_for = _tag_labels(project)
    ids = [d.external_id or f"{filename}:{d.line}" for d in documents]
    existing = items_by_external_id(project, ids, "text")
    label_names = project_label_names(project=project)
    targets, seen = [], {}
    for document, external_id in zip(documents, ids, strict=True):
        where = f"{filename}, line {document.line}"
        _id_check(external_id, where, seen)
        stored = existing.get(external_id)
        if stored is not None:
            text, source = stored[1], f"the stored text of item {external_id!r}"
        elif document.text is not None:
            text, source = document.text.replace("\r\n", "\n"), "the '# text' line"
        else:
            text, source = _joined(document), ""
        offsets = _token_offsets(document, text, source, filename)
        spans, lines = [], []
        previous = "O"
        for (_token, tag, line), (start, end) in zip(document.tokens, offsets, strict=True):
            label = _TAG.match(tag)[1]
            if label is not None:
                label = label_for(label, f"{filename}, line {line}, field 'tag'")
                if tag.startswith("I-") and previous != "O" and spans and spans[-1]["label"] == label:
                    spans[-1]["end"] = end
                else:
                    spans.append({"start": start, "end": end, "label": label})
                    lines.append(line)
            previous = tag

        def entry(n: int, key: str | None, lines=lines) -> str:
            return f"{filename}, line {lines[n]}, field 'tag'"

        value = value_check(
            project=project,
            label_names=label_names,
            value={"spans": spans},
            text=text,
            where=where,
            entry_where=entry,
        )
        if stored is not None:
            targets.append(Target(where=where, value=value, item_id=stored[0]))
        else:
            targets.append(Target(where=where, value=value, external_id=external_id, text=text))
    return targets_import(
        project=project, filename=filename, targets=targets, import_as=import_as, label_source=label_source
    )


def import_spacy(
    *,
    project: Project,
    file: IO,
    filename: str,
    import_as: str | None = None,
    label_source: str = "import",
    progress: Progress | None = None,
) -> ImportResult:
    """Import spaCy / Prodigy JSONL (see the module's docstring); all or nothing."""
    task_type_require(project, Project.TaskType.TEXT_SPANS, "spacy")
    import_as = import_as_check(import_as)
    records = []
    for number, line in enumerate(_decode(file, filename).split("\n"), start=1):
        if not line.strip():
            continue
        where = f"{filename}, line {number}"
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ImportRejected(f"{where}: malformed JSON at column {exc.colno}: {exc.msg}") from None
        if not isinstance(record, dict):
            raise ImportRejected(f"{where}: expected an object, not {json_type(record)}")
        if record.get("answer") in ("reject", "ignore"):
            continue
        text = record.get("text")
        if not isinstance(text, str) or not text.strip():
            raise ImportRejected(f"{where}, field 'text': expected the text, not {json_type(text)}")
        if "\x00" in text:
            raise ImportRejected(f"{where}, field 'text': contains a NUL character")
        meta = record.get("meta") or {}
        external_id = meta.get("id") if isinstance(meta, dict) else None
        if isinstance(external_id, int) and not isinstance(external_id, bool):
            external_id = str(external_id)
        if external_id is not None and not isinstance(external_id, str):
            raise ImportRejected(f"{where}, field 'meta.id': expected a string, not {json_type(external_id)}")
        key = "spans" if "spans" in record else "entities"
        records.append(
            (number, where, record, text, (external_id or "").strip() or f"{filename}:{number}", key)
        )
    if not records:
        raise ImportRejected(f"{filename}: no items in the file")
    existing = items_by_external_id(project, [r[4] for r in records], "text")
    label_names = project_label_names(project=project)
    targets, seen = [], {}
    for _number, where, record, text, external_id, key in records:
        _id_check(external_id, where, seen)
        spans = _spans_of(record.get(key, []), f"{where}, field {key!r}")
        stored = existing.get(external_id)
        if stored is not None:
            if text.replace("\r\n", "\n") != stored[1] and text != stored[1]:
                raise ImportRejected(
                    f"{where}, field 'text': differs from the stored text of item {external_id!r};"
                    " the offsets would point elsewhere"
                )
            if text != stored[1]:
                spans, text = _lf_offsets(spans, text, f"{where}, field {key!r}"), stored[1]
        elif "\r\n" in text:
            spans, text = _lf_offsets(spans, text, f"{where}, field {key!r}"), text.replace("\r\n", "\n")

        def entry(n: int, name: str | None, where=where, key=key) -> str:
            return f"{where}, field '{key}[{n}]" + (f".{name}'" if name else "'")

        value = value_check(
            project=project,
            label_names=label_names,
            value={"spans": spans},
            text=text,
            where=f"{where}, field {key!r}",
            entry_where=entry,
        )
        if stored is not None:
            targets.append(Target(where=where, value=value, item_id=stored[0]))
        else:
            targets.append(Target(where=where, value=value, external_id=external_id, text=text))
    return targets_import(
        project=project, filename=filename, targets=targets, import_as=import_as, label_source=label_source
    )


def _id_check(external_id: str, where: str, seen: dict[str, str]) -> None:
    external_id_check(external_id, where=where, field="id")
    if external_id in seen:
        raise ImportRejected(f"{where}, field 'id': {external_id!r} repeats {seen[external_id]}")
    seen[external_id] = where.split(", ", 1)[-1]


def _tag_labels(project: Project) -> Callable[[str, str], str]:
    """A tag's label -> the project's label: the name itself, else the name with "_" for white space."""
    # Here: annotate.exporting imports annotate.items, which imports this package.
    from annotate.exporting import conll_tag_label

    names = project_label_names(project=project)
    written = {}
    for name in names:
        written.setdefault(conll_tag_label(name), name)

    def label_for(label: str, where: str) -> str:
        if label in names:
            return label
        if label in written:
            return written[label]
        raise ImportRejected(
            f"{where}: unknown label {label!r}; this project's labels are: " + ", ".join(names)
        )

    return label_for


def _conll_documents(text: str, filename: str) -> list[_Document]:
    lines = text.split("\n")
    with_docstart = any(line.startswith("-DOCSTART-") for line in lines)
    documents: list[_Document] = []
    current: _Document | None = None
    for number, line in enumerate(lines, start=1):
        fields = line.split()
        if line.startswith("-DOCSTART-"):
            current = _Document(line=number)
            documents.append(current)
            continue
        if not fields:
            if current is not None and current.tokens:
                if with_docstart:
                    current.breaks.add(len(current.tokens))
                else:
                    current = None
            continue
        if line.startswith("#") and (len(fields) != 2 or not _TAG.match(fields[-1])):
            name, equals, value = line[1:].strip().partition(" = ")
            if equals and name in ("id", "text"):
                if current is None or current.tokens:
                    current = _Document(line=number)
                    documents.append(current)
                if name == "id":
                    current.external_id = _header_value(value, f"{filename}, line {number}, field 'id'")
                else:
                    current.text = _header_value(value, f"{filename}, line {number}, field 'text'")
            continue
        if len(fields) < 2:
            raise ImportRejected(f"{filename}, line {number}: expected 'token TAG', not {line.strip()!r}")
        if not _TAG.match(fields[-1]):
            raise ImportRejected(
                f"{filename}, line {number}, field 'tag':"
                f" expected O, B-<label> or I-<label>, not {fields[-1]!r}"
            )
        if current is None:
            current = _Document(line=number)
            documents.append(current)
        current.tokens.append((fields[0], fields[-1], number))
    return [d for d in documents if d.tokens or d.text is not None or d.external_id is not None]


def _header_value(value: str, where: str) -> str:
    value = value.strip() if not value.startswith('"') else value.rstrip()
    if not value.startswith('"'):
        return value
    try:
        decoded = json.loads(value)
    except json.JSONDecodeError as exc:
        raise ImportRejected(f"{where}: malformed JSON string: {exc.msg}") from None
    if not isinstance(decoded, str):
        raise ImportRejected(f"{where}: expected a JSON string")
    return decoded


def _joined(document: _Document) -> str:
    parts = []
    for i, (token, _, _) in enumerate(document.tokens):
        if i:
            parts.append("\n" if i in document.breaks else " ")
        parts.append(token)
    return "".join(parts)


def _token_offsets(document: _Document, text: str, source: str, filename: str) -> list[tuple[int, int]]:
    """Each token's (start, end) in `text`: found in order, with only white space between."""
    offsets, position = [], 0
    for token, _, line in document.tokens:
        while position < len(text) and text[position].isspace():
            position += 1
        if not text.startswith(token, position):
            found = text[position : position + len(token) + 10]
            raise ImportRejected(
                f"{filename}, line {line}: the token {token!r} is not next in {source}"
                f" (at offset {position} it reads {found!r})"
            )
        offsets.append((position, position + len(token)))
        position += len(token)
    if text[position:].strip() and source:
        raise ImportRejected(
            f"{filename}, line {document.line}: {source} goes on after the last token:"
            f" {text[position : position + 20]!r}"
        )
    return offsets


def _spans_of(raw: Any, where: str) -> list:
    """The entries as {"start", "end", "label"} (from Prodigy's dicts or spaCy's triples)."""
    if not isinstance(raw, list):
        raise ImportRejected(f"{where}: expected a list of spans, not {json_type(raw)}")
    spans = []
    for i, entry in enumerate(raw):
        if isinstance(entry, list) and len(entry) == 3:
            spans.append({"start": entry[0], "end": entry[1], "label": entry[2]})
        elif isinstance(entry, dict) and {"start", "end", "label"} <= set(entry):
            spans.append({key: entry[key] for key in ("start", "end", "label")})
        else:
            raise ImportRejected(f'{where}[{i}]: expected {{"start", "end", "label"}} or [start, end, label]')
    return spans


def _lf_offsets(spans: list, text: str, where: str) -> list:
    """The spans' offsets once each CRLF of `text` is one LF."""
    ends = [m.end() for m in re.finditer("\r\n", text)]
    moved = []
    for i, span in enumerate(spans):
        entry = dict(span)
        for key in ("start", "end"):
            offset = entry[key]
            if isinstance(offset, int) and not isinstance(offset, bool):
                if offset in {e - 1 for e in ends}:
                    raise ImportRejected(
                        f"{where}[{i}].{key}: offset {offset} falls inside a CRLF line break"
                    )
                entry[key] = offset - bisect_right(ends, offset)
        moved.append(entry)
    return moved
