"""COCO JSON and YOLO zips (bounding-box projects): boxes onto existing image items, as labels or
as predictions, all or nothing (importing.attach writes them).

- COCO: a COCO image's `file_name` is matched to an item's external id (the name as uploaded, or
  the path inside the zip), else to its stored image's name. Its bbox [x, y, w, h] is in pixels
  of the image's `width` and `height` as the file gives them (else the item's stored size).
  Categories are matched to labels by name. An image listed without annotations is an image
  with no boxes (a label of its own). An image that matches no item, an annotation whose
  image_id or category_id matches nothing, a name that is not a label: refused, naming the
  JSON path (`annotations[3].bbox`).
- YOLO: `classes.txt` (one label name per line; the line number less one is the class id) and
  one `<stem>.txt` per image, anywhere in the zip (`labels/` is dropped from the front): the
  stem (folders kept) is matched to an item's external id without its extension, or to the
  whole external id (`a.png.txt`). Lines `class cx cy w h` in fractions (a sixth column, a
  prediction's confidence, is allowed and not kept). An empty file is an image with no boxes.
"""

import json
import zipfile
from collections.abc import Callable
from pathlib import PurePosixPath
from typing import IO, Any

from annotate.importing.attach import (
    Target,
    import_as_check,
    items_by_external_id,
    targets_import,
    value_check,
)
from annotate.importing.rows import ImportRejected, ImportResult, json_type, task_type_require
from annotate.importing.text import _decode
from annotate.importing.writer import Progress
from annotate.models import Item, Project
from annotate.projects import label_names as project_label_names

CLASSES_FILE = "classes.txt"


def import_coco(
    *,
    project: Project,
    file: IO,
    filename: str,
    import_as: str | None = None,
    label_source: str = "import",
    progress: Progress | None = None,
) -> ImportResult:
    """Import the boxes of a COCO JSON file onto the project's images; all or nothing."""
    task_type_require(project, Project.TaskType.IMAGE_BOXES, "coco")
    import_as = import_as_check(import_as)
    text = _decode(file, filename)
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ImportRejected(
            f"{filename}, line {exc.lineno}, column {exc.colno}: malformed JSON: {exc.msg}"
        ) from None
    if not isinstance(data, dict):
        raise ImportRejected(f"{filename}: expected a COCO object with images, annotations and categories")
    images, annotations, categories = (
        _list(data, key, filename) for key in ("images", "annotations", "categories")
    )
    label_names = project_label_names(project=project)

    labels: dict[Any, str] = {}
    for i, category in enumerate(categories):
        path = f"{filename}, categories[{i}]"
        _keys(category, ("id", "name"), path)
        if category["name"] not in label_names:
            raise ImportRejected(
                f"{path}.name: unknown label {category['name']!r}; this project's labels are: "
                + ", ".join(label_names)
            )
        labels[category["id"]] = category["name"]

    by_id: dict[Any, int] = {}
    for i, image in enumerate(images):
        path = f"{filename}, images[{i}]"
        _keys(image, ("id", "file_name"), path)
        if not isinstance(image["file_name"], str) or not image["file_name"]:
            raise ImportRejected(
                f"{path}.file_name: expected a file name, not {json_type(image['file_name'])}"
            )
        if image["id"] in by_id:
            raise ImportRejected(f"{path}.id: {image['id']!r} repeats images[{by_id[image['id']]}]")
        by_id[image["id"]] = i
    items = _items_by_file_name(project, [image["file_name"] for image in images])

    boxes: list[list[tuple[int, dict]]] = [[] for _ in images]
    for k, annotation in enumerate(annotations):
        path = f"{filename}, annotations[{k}]"
        _keys(annotation, ("image_id", "category_id", "bbox"), path)
        if annotation["image_id"] not in by_id:
            raise ImportRejected(f"{path}.image_id: {annotation['image_id']!r} matches no image in 'images'")
        if annotation["category_id"] not in labels:
            raise ImportRejected(
                f"{path}.category_id: {annotation['category_id']!r} matches no category in 'categories'"
            )
        bbox = annotation["bbox"]
        if not isinstance(bbox, list) or len(bbox) != 4 or not all(_number(n) for n in bbox):
            raise ImportRejected(f"{path}.bbox: expected [x, y, width, height] in pixels, not {bbox!r}")
        boxes[by_id[annotation["image_id"]]].append((k, annotation))

    targets = []
    for i, image in enumerate(images):
        path = f"{filename}, images[{i}]"
        found = items.get(image["file_name"])
        if found is None:
            raise ImportRejected(
                f"{path}.file_name: {image['file_name']!r} matches no item of this project"
                " (by external id or image name)"
            )
        item_id, stored_width, stored_height = found
        width, height = (image.get(key) for key in ("width", "height"))
        if width is None and height is None:
            width, height = stored_width, stored_height
        for key, size in (("width", width), ("height", height)):
            if not _number(size) or size <= 0:
                raise ImportRejected(f"{path}.{key}: expected the image's size in pixels, not {size!r}")
        value = {
            "boxes": [
                {
                    "x": a["bbox"][0] / width,
                    "y": a["bbox"][1] / height,
                    "w": a["bbox"][2] / width,
                    "h": a["bbox"][3] / height,
                    "label": labels[a["category_id"]],
                }
                for _, a in boxes[i]
            ]
        }

        def where(n: int, key: str | None, i=i, width=width, height=height) -> str:
            k, annotation = boxes[i][n]
            field = "category_id" if key == "label" else "bbox"
            size = f"{width}x{height}"
            return f"{filename}, annotations[{k}].{field} (bbox {annotation['bbox']} in a {size} image)"

        value = value_check(
            project=project, label_names=label_names, value=value, where=path, entry_where=where
        )
        targets.append(Target(where=path, value=value, item_id=item_id))
    return targets_import(
        project=project, filename=filename, targets=targets, import_as=import_as, label_source=label_source
    )


def import_yolo(
    *,
    project: Project,
    file: IO,
    filename: str,
    import_as: str | None = None,
    label_source: str = "import",
    progress: Progress | None = None,
) -> ImportResult:
    """Import the boxes of a YOLO zip (classes.txt and a txt per image) onto the project's images."""
    task_type_require(project, Project.TaskType.IMAGE_BOXES, "yolo")
    import_as = import_as_check(import_as)
    try:
        archive = zipfile.ZipFile(file)
    except (zipfile.BadZipFile, OSError, ValueError):
        raise ImportRejected(f"{filename}: not a zip file") from None
    with archive:
        texts = {}
        for info in archive.infolist():
            name = info.filename.replace("\\", "/")
            parts = [p for p in name.split("/") if p]
            if info.is_dir() or not name.lower().endswith(".txt") or not parts:
                continue
            if parts[0] == "__MACOSX" or any(p.startswith(".") for p in parts):
                continue
            if info.file_size > 64 * 2**20:
                raise ImportRejected(f"{filename}, entry {name!r}: larger than 64 MB")
            texts[name] = _decode(archive.read(info), f"{filename}, entry {name!r}")
    classes_names = [name for name in texts if PurePosixPath(name).name.lower() == CLASSES_FILE]
    if len(classes_names) != 1:
        found = ", ".join(classes_names) or "none"
        raise ImportRejected(f"{filename}: expected one {CLASSES_FILE} (the class names), found {found}")
    label_names = project_label_names(project=project)
    classes = []
    for number, line in enumerate(texts.pop(classes_names[0]).split("\n"), start=1):
        if not line.strip():
            continue
        if line.strip() not in label_names:
            raise ImportRejected(
                f"{filename}, {classes_names[0]}, line {number}: unknown label {line.strip()!r};"
                " this project's labels are: " + ", ".join(label_names)
            )
        classes.append(line.strip())
    if not texts:
        raise ImportRejected(f"{filename}: no label files (<image stem>.txt) in the zip")
    match = _stem_matcher(project)
    targets = []
    for name, content in sorted(texts.items()):
        where = f"{filename}, {name}"
        item_id = match(name, where)
        boxes, lines = [], []
        for number, line in enumerate(content.split("\n"), start=1):
            fields = line.split()
            if not fields:
                continue
            if len(fields) not in (5, 6):
                raise ImportRejected(
                    f"{where}, line {number}: expected 'class cx cy w h', not {len(fields)} fields"
                )
            try:
                klass = int(fields[0])
            except ValueError:
                raise ImportRejected(
                    f"{where}, line {number}, field 'class': not a class id: {fields[0]!r}"
                ) from None
            if not 0 <= klass < len(classes):
                raise ImportRejected(
                    f"{where}, line {number}, field 'class': {klass} is past {CLASSES_FILE}"
                    f" ({len(classes)} classes, ids 0 to {len(classes) - 1})"
                )
            numbers = []
            for key, text in zip(("cx", "cy", "w", "h"), fields[1:5], strict=True):
                try:
                    numbers.append(float(text))
                except ValueError:
                    raise ImportRejected(
                        f"{where}, line {number}, field {key!r}: not a number: {text!r}"
                    ) from None
            cx, cy, w, h = numbers
            boxes.append({"x": cx - w / 2, "y": cy - h / 2, "w": w, "h": h, "label": classes[klass]})
            lines.append(number)

        def entry(n: int, key: str | None, where=where, lines=lines) -> str:
            field = {"x": "cx", "y": "cy", "label": "class"}.get(key, key)
            return f"{where}, line {lines[n]}" + (f", field {field!r}" if field else "")

        value = value_check(
            project=project, label_names=label_names, value={"boxes": boxes}, where=where, entry_where=entry
        )
        targets.append(Target(where=where, value=value, item_id=item_id))
    return targets_import(
        project=project, filename=filename, targets=targets, import_as=import_as, label_source=label_source
    )


def _list(data: dict, key: str, filename: str) -> list:
    value = data.get(key, [] if key == "annotations" else None)
    if not isinstance(value, list):
        raise ImportRejected(f"{filename}, {key}: expected a list, not {json_type(value)}")
    return value


def _keys(entry: Any, keys: tuple[str, ...], path: str) -> None:
    if not isinstance(entry, dict):
        raise ImportRejected(f"{path}: expected an object, not {json_type(entry)}")
    for key in keys:
        if key not in entry:
            raise ImportRejected(f"{path}: no field {key!r}")


def _number(n: Any) -> bool:
    return isinstance(n, (int, float)) and not isinstance(n, bool) and n == n and abs(n) != float("inf")


def _items_by_file_name(project: Project, names: list[str]) -> dict[str, tuple]:
    """file name -> (item id, width, height): by external id, else by the stored image's name."""
    found = items_by_external_id(project, names, "width", "height")
    missing = {name for name in names if name not in found}
    if missing:
        for item_id, image, width, height in (
            Item.objects.filter(project=project)
            .exclude(image="")
            .values_list("id", "image", "width", "height")
        ):
            for key in (image, PurePosixPath(image).name):
                if key in missing:
                    found[key] = (item_id, width, height)
    return found


def _stem_matcher(project: Project) -> Callable[[str, str], int]:
    """(label file's name, where) -> the id of the item it belongs to, or ImportRejected."""
    exact: dict[str, int] = {}
    stems: dict[str, list[tuple[str, int]]] = {}
    for item_id, external_id in Item.objects.filter(project=project).values_list("id", "external_id"):
        path = external_id.replace("\\", "/").lstrip("/")
        exact[path] = item_id
        stem = str(PurePosixPath(path).with_suffix("")) if PurePosixPath(path).suffix else path
        stems.setdefault(stem, []).append((external_id, item_id))

    def match(name: str, where: str) -> int:
        key = name[: -len(".txt")]
        for candidate in (key, key[len("labels/") :] if key.startswith("labels/") else None):
            if candidate is None:
                continue
            if candidate in exact:
                return exact[candidate]
            if candidate in stems:
                if len(stems[candidate]) > 1:
                    both = ", ".join(repr(e) for e, _ in stems[candidate])
                    raise ImportRejected(
                        f"{where}: the stem matches several images ({both}); name the file after one"
                    )
                return stems[candidate][0][1]
        raise ImportRejected(f"{where}: matches no image of this project (by its name without the extension)")

    return match
