"""Label values: one JSON shape per task type, validated on the way in.

- Classification (text or image): {"choices": ["label name", ...]}; exactly one choice in a
  single-label project, any number of distinct choices in a multi-label one.
- Bounding boxes (image_boxes): {"boxes": [{"x", "y", "w", "h", "label"}, ...]}, in fractions of
  the image (0 to 1, the top-left corner and the size), after its EXIF orientation; any number of
  boxes, none of zero size, none past the image's edge.
- Text spans (text_spans): {"spans": [{"start", "end", "label"}, ...]}, Unicode code-point offsets
  of the stored text (Python `str` indices), end exclusive, never inside a grapheme
  (annotate/tokens.py); sorted by (start, end, label). Overlapping spans only where the project
  allows them.

Errors name the field and, for boxes and spans, which one: `value.boxes[2].w`.
"""

import math
from collections.abc import Sequence
from typing import Any

from django.core.exceptions import ValidationError

from annotate.models import Project
from annotate.tokens import grapheme_boundaries

CLASSIFICATION_TYPES = frozenset(
    {Project.TaskType.TEXT_CLASSIFICATION, Project.TaskType.IMAGE_CLASSIFICATION}
)
# How far past an edge a box may reach and still be taken (as the edge): a browser's float
# arithmetic on pixels gives 1.0000000000000002.
_EDGE = 1e-6
BOX_KEYS = ("x", "y", "w", "h", "label")
SPAN_KEYS = ("start", "end", "label")


def annotation_value_validate(
    *,
    project: Project,
    label_names: Sequence[str],
    value: Any,
    field: str = "value",
    text: str | None = None,
) -> dict:
    """Return `value` normalised, or raise ValidationError naming the problem.

    For text spans, pass the item's `text` to check the offsets against it (past its end, inside a
    grapheme); without it only the shape, the labels and the overlaps are checked.
    """
    if project.task_type == Project.TaskType.IMAGE_BOXES:
        return _boxes_validate(value, label_names=label_names, field=field)
    if project.task_type == Project.TaskType.TEXT_SPANS:
        return _spans_validate(
            value, label_names=label_names, field=field, text=text, may_overlap=project.spans_may_overlap
        )
    if project.task_type not in CLASSIFICATION_TYPES:
        raise ValidationError({field: f"task type {project.task_type!r} has no value shape"})
    if not isinstance(value, dict) or set(value) != {"choices"}:
        raise ValidationError(
            {field: 'must be an object with exactly one key, "choices": {"choices": ["<label>"]}'}
        )
    choices = value["choices"]
    if not isinstance(choices, list) or not all(isinstance(c, str) for c in choices):
        raise ValidationError({field: '"choices" must be a list of label names (strings)'})
    known = {name: position for position, name in enumerate(label_names)}
    unknown = [c for c in choices if c not in known]
    if unknown:
        raise ValidationError({field: _unknown_label(unknown[0], label_names)})
    if len(set(choices)) != len(choices):
        raise ValidationError({field: '"choices" lists a label twice'})
    if not project.multi_label and len(choices) != 1:
        raise ValidationError(
            {field: f"this project is single-label: choose exactly one label, not {len(choices)}"}
        )
    return {"choices": sorted(choices, key=known.__getitem__)}


def value_text(value: dict | None) -> str:
    """A value in a few words, for pages and messages: "cat, dog", "3 boxes: PER ×2, ORG", "–"."""
    if not value:
        return "–"
    if "choices" in value:
        return ", ".join(value["choices"]) or "–"
    for key, one in (("boxes", "box"), ("spans", "span")):
        if key in value:
            entries = value[key]
            counts: dict[str, int] = {}
            for entry in entries:
                counts[entry["label"]] = counts.get(entry["label"], 0) + 1
            names = ", ".join(f"{label} ×{n}" if n > 1 else label for label, n in counts.items())
            noun = one if len(entries) == 1 else key.replace("boxs", "boxes")
            return f"{len(entries)} {noun}" + (f": {names}" if names else "")
    return "–"


def _unknown_label(name: object, label_names: Sequence[str]) -> str:
    return f"unknown label {name!r}; this project's labels are: " + ", ".join(label_names)


def _entries(value: Any, *, key: str, keys: Sequence[str], field: str) -> list[dict]:
    """The list under `key`, each entry an object with exactly `keys`."""
    example = "{" + ", ".join(f'"{k}": …' for k in keys) + "}"
    if not isinstance(value, dict) or set(value) != {key}:
        raise ValidationError(
            {field: f'must be an object with exactly one key, "{key}": {{"{key}": [{example}]}}'}
        )
    entries = value[key]
    if not isinstance(entries, list):
        raise ValidationError({f"{field}.{key}": f"must be a list of {example}"})
    for i, entry in enumerate(entries):
        if not isinstance(entry, dict) or set(entry) != set(keys):
            got = sorted(entry) if isinstance(entry, dict) else type(entry).__name__
            raise ValidationError(
                {f"{field}.{key}[{i}]": f"must be an object with the keys {', '.join(keys)}; got {got}"}
            )
    return entries


def _label_check(entry: dict, *, where: str, known: dict) -> None:
    if not isinstance(entry["label"], str) or entry["label"] not in known:
        raise ValidationError({f"{where}.label": _unknown_label(entry["label"], list(known))})


def _boxes_validate(value: Any, *, label_names: Sequence[str], field: str) -> dict:
    known = {name: position for position, name in enumerate(label_names)}
    boxes = []
    for i, box in enumerate(_entries(value, key="boxes", keys=BOX_KEYS, field=field)):
        where = f"{field}.boxes[{i}]"
        numbers = {}
        for k in ("x", "y", "w", "h"):
            n = box[k]
            if isinstance(n, bool) or not isinstance(n, (int, float)) or not math.isfinite(n):
                raise ValidationError(
                    {f"{where}.{k}": f"must be a number (a fraction of the image), not {n!r}"}
                )
            numbers[k] = float(n)
        x, y, w, h = numbers["x"], numbers["y"], numbers["w"], numbers["h"]
        if w <= 0 or h <= 0:
            raise ValidationError(
                {f"{where}.{'w' if w <= 0 else 'h'}": f"a box has a size above zero; got w={w}, h={h}"}
            )
        for k, start, size in (("x", x, w), ("y", y, h)):
            if start < -_EDGE or start + size > 1 + _EDGE:
                raise ValidationError(
                    {
                        f"{where}.{k}": f"the box reaches past the image ({k}={start}, size {size}):"
                        " fractions lie in 0 to 1"
                    }
                )
        _label_check(box, where=where, known=known)
        x, y = max(0.0, x), max(0.0, y)
        boxes.append({"x": x, "y": y, "w": min(w, 1.0 - x), "h": min(h, 1.0 - y), "label": box["label"]})
    return {"boxes": boxes}


def _spans_validate(
    value: Any, *, label_names: Sequence[str], field: str, text: str | None, may_overlap: bool
) -> dict:
    known = {name: position for position, name in enumerate(label_names)}
    bounds = grapheme_boundaries(text) if text is not None else None
    spans = []
    entries = _entries(value, key="spans", keys=SPAN_KEYS, field=field)
    for i, span in enumerate(entries):
        where = f"{field}.spans[{i}]"
        for k in ("start", "end"):
            if isinstance(span[k], bool) or not isinstance(span[k], int) or span[k] < 0:
                raise ValidationError(
                    {f"{where}.{k}": f"must be a code-point offset (an integer ≥ 0), not {span[k]!r}"}
                )
        start, end = span["start"], span["end"]
        if end <= start:
            raise ValidationError(
                {f"{where}.end": f"a span ends after it starts; got start={start}, end={end}"}
            )
        if text is not None:
            if end > len(text):
                raise ValidationError(
                    {
                        f"{where}.end": f"past the end of the text: end={end},"
                        f" the text has {len(text)} characters"
                    }
                )
            for k in ("start", "end"):
                if span[k] not in bounds:
                    raise ValidationError(
                        {
                            f"{where}.{k}": f"offset {span[k]} falls inside a character"
                            " (a grapheme such as 👍🏽 or é)"
                        }
                    )
        _label_check(span, where=where, known=known)
        spans.append({"start": start, "end": end, "label": span["label"]})
    spans.sort(key=lambda s: (s["start"], s["end"], known[s["label"]]))
    for i in range(1, len(spans)):
        before, span = spans[i - 1], spans[i]
        if (before["start"], before["end"], before["label"]) == (span["start"], span["end"], span["label"]):
            raise ValidationError(
                {
                    f"{field}.spans": f"the span {span['start']}–{span['end']}"
                    f" ({span['label']}) is listed twice"
                }
            )
    if not may_overlap:
        reach = None
        for span in spans:
            if reach is not None and span["start"] < reach["end"]:
                raise ValidationError(
                    {
                        f"{field}.spans": f"spans {reach['start']}–{reach['end']} ({reach['label']}) and"
                        f" {span['start']}–{span['end']} ({span['label']}) overlap;"
                        " this project does not allow overlapping spans"
                    }
                )
            if reach is None or span["end"] > reach["end"]:
                reach = span
    return {"spans": spans}
