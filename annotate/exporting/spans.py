"""CoNLL and spaCy-style JSONL for text-span projects: the items' final labels.

CoNLL (BIO): one token per line, `token TAG` separated by a space, tokens from annotate/tokens.py
(the stated tokenizer), a blank line after each document. A document starts with a header:

    -DOCSTART- -X- O
    # id = <external id>
    # text = "<the text, as a JSON string>"
    # widened: 3-9 PER to 0-9        (one line per span that had to change, see below)

A label's white space is written as "_" (columns are split on white space); the importer maps
it back. What CoNLL cannot hold is reported, never silently lost: a span whose ends fall inside
a token is widened to whole tokens (`# widened:`); of spans that overlap after that, the later
one is left out (`# dropped:`); each noted under its document, and counted in a `# summary:`
line at the end of the file (also written when nothing had to change). The first line of the
file says so.

spaCy JSONL (Prodigy's `ner.manual` shape): one line per item,
`{"text": ..., "spans": [{"start", "end", "label"}], "meta": {"id": <external id>}}`, offsets
in Unicode code points (Python `str` indices), end exclusive: the stored values as they are.

Only items with a final label are written (pages.final_label_pages).
"""

import json
import re
from collections.abc import Iterator
from typing import NamedTuple

from annotate.exporting import pages
from annotate.models import Project
from annotate.tokens import snap, tokens

DOCSTART = "-DOCSTART- -X- O"
_WHITE = re.compile(r"\s+")


class Conll(NamedTuple):
    """One document's lines, and the spans it had to widen or leave out."""

    lines: list[str]
    widened: list[tuple[dict, tuple[int, int]]]
    dropped: list[dict]


def conll_tag_label(label: str) -> str:
    return _WHITE.sub("_", label)


def conll_document(*, external_id: str, text: str, spans: list[dict]) -> Conll:
    """The CoNLL lines of one document, with BIO tags from `spans` (see the module's docstring)."""
    token_spans = tokens(text)
    tags = ["O"] * len(token_spans)
    starts = {start: i for i, (start, _) in enumerate(token_spans)}
    widened, dropped = [], []
    for span in spans:
        bounds = snap(token_spans, span["start"], span["end"])
        if bounds is None:  # white space only: no token to tag
            dropped.append(span)
            continue
        if bounds != (span["start"], span["end"]):
            widened.append((span, bounds))
        first = starts[bounds[0]]
        last = first
        while last + 1 < len(token_spans) and token_spans[last + 1][1] <= bounds[1]:
            last += 1
        if any(tag != "O" for tag in tags[first : last + 1]):
            dropped.append(span)
            if widened and widened[-1][0] is span:
                widened.pop()
            continue
        label = conll_tag_label(span["label"])
        tags[first] = f"B-{label}"
        for i in range(first + 1, last + 1):
            tags[i] = f"I-{label}"
    lines = [
        DOCSTART,
        f"# id = {_header_value(external_id)}",
        f"# text = {json.dumps(text, ensure_ascii=False)}",
    ]
    lines += [
        f"# widened: {s['start']}-{s['end']} {s['label']} to {start}-{end}" for s, (start, end) in widened
    ]
    lines += [f"# dropped: {s['start']}-{s['end']} {s['label']} (overlaps another span)" for s in dropped]
    lines += [f"{text[start:end]} {tag}" for (start, end), tag in zip(token_spans, tags, strict=True)]
    return Conll(lines, widened, dropped)


def export_conll(
    *,
    project: Project,
    scope: pages.ExportScope = pages.ALL_ITEMS,
    progress: pages.Progress | None = None,
    base_url: str = "",
) -> Iterator[str]:
    """The project's spans as CoNLL BIO (see the module's docstring), a page of documents at a time."""
    documents = widened = dropped = 0
    yield (
        f"# LabelLoop CoNLL export of {json.dumps(project.name, ensure_ascii=False)}: one token per line"
        " (annotate/tokens.py), BIO tags; spans widened to whole tokens or left out because they"
        " overlap are noted under their document and counted in the summary at the end\n\n"
    )
    with pages.read_snapshot():
        fields = ("external_id", "text")
        for page in pages.final_label_pages(project=project, scope=scope, progress=progress, fields=fields):
            chunk = []
            for _, external_id, text, value in page:
                document = conll_document(external_id=external_id, text=text, spans=value.get("spans", []))
                documents += 1
                widened += len(document.widened)
                dropped += len(document.dropped)
                chunk.append("\n".join(document.lines) + "\n\n")
            yield "".join(chunk)
    yield (
        f"# summary: {documents} documents, {widened} spans widened to token boundaries,"
        f" {dropped} overlapping spans left out\n"
    )


def export_spacy(
    *,
    project: Project,
    scope: pages.ExportScope = pages.ALL_ITEMS,
    progress: pages.Progress | None = None,
    base_url: str = "",
) -> Iterator[str]:
    """The project's spans as spaCy / Prodigy JSONL, one item per line (see the module's docstring)."""
    with pages.read_snapshot():
        fields = ("external_id", "text")
        for page in pages.final_label_pages(project=project, scope=scope, progress=progress, fields=fields):
            yield "".join(
                json.dumps(
                    {"text": text, "spans": value.get("spans", []), "meta": {"id": external_id}},
                    ensure_ascii=False,
                )
                + "\n"
                for _, external_id, text, value in page
            )


def _header_value(text: str) -> str:
    """A header's value as it is, or as a JSON string when it holds a line break or starts with a quote."""
    if "\n" in text or "\r" in text or text.startswith('"'):
        return json.dumps(text, ensure_ascii=False)
    return text
