"""COCO JSON and YOLO for bounding-box projects: the items' final labels, in the files
detection tools read.

COCO (one JSON object): `images` (id = the studio's item id, `file_name` = the item's external
id, which for imported images is the name as uploaded or the path inside the zip; `width` and
`height` the stored pixel size, after EXIF orientation), `annotations` (bbox [x, y, w, h] in
pixels of that size, area, iscrowd 0, ids from 1), `categories` (the project's labels in order,
ids from 1).

YOLO (a zip): `classes.txt`, one label name per line in the project's order (class ids from 0),
and `labels/<stem>.txt` per image, where <stem> is the external id without its extension
(folders kept), one line `class cx cy w h` per box in fractions of the image. Two images whose
names differ only by extension would share a stem: the later one's file is then named after its
whole external id (`labels/a.png.txt`). An image without boxes gets an empty file.

Only items with a final label are written (pages.final_label_pages). Both formats need every
row before the file is complete: COCO's annotations are kept (as text) until the images are
written; YOLO's zip streams one small file at a time.
"""

import io
import json
import zipfile
from collections.abc import Iterator
from pathlib import PurePosixPath

from django.core.files.storage import default_storage

from annotate.exporting import pages
from annotate.models import Project

CLASSES_FILE = "classes.txt"
LABELS_FOLDER = "labels/"


def export_coco(
    *,
    project: Project,
    scope: pages.ExportScope = pages.ALL_ITEMS,
    progress: pages.Progress | None = None,
    base_url: str = "",
) -> Iterator[str]:
    """The project's boxes as one COCO JSON object (see the module's docstring)."""
    names = _label_names(project)
    category = {name: position + 1 for position, name in enumerate(names)}
    annotations: list[str] = []
    with pages.read_snapshot():
        yield json.dumps(
            {
                "info": {"description": f"LabelLoop project {project.name}", "version": "1.0"},
                "licenses": [],
                "categories": [{"id": category[name], "name": name, "supercategory": ""} for name in names],
            },
            ensure_ascii=False,
        )[:-1]
        yield ', "images": ['
        separator = "\n"
        fields = ("external_id", "image", "width", "height")
        for page in pages.final_label_pages(project=project, scope=scope, progress=progress, fields=fields):
            images = []
            for item_id, external_id, image, width, height, value in page:
                width, height = _size(width, height, image)
                images.append(
                    json.dumps(
                        {"id": item_id, "file_name": external_id, "width": width, "height": height},
                        ensure_ascii=False,
                    )
                )
                for box in value.get("boxes", []):
                    bbox = [
                        round(box["x"] * width, 3),
                        round(box["y"] * height, 3),
                        round(box["w"] * width, 3),
                        round(box["h"] * height, 3),
                    ]
                    annotations.append(
                        json.dumps(
                            {
                                "id": len(annotations) + 1,
                                "image_id": item_id,
                                "category_id": category[box["label"]],
                                "bbox": bbox,
                                "area": round(bbox[2] * bbox[3], 3),
                                "iscrowd": 0,
                            }
                        )
                    )
            if images:
                yield separator + ",\n".join(images)
                separator = ",\n"
        yield '], "annotations": [\n' + ",\n".join(annotations) + "]}\n"


def export_yolo(
    *,
    project: Project,
    scope: pages.ExportScope = pages.ALL_ITEMS,
    progress: pages.Progress | None = None,
    base_url: str = "",
) -> Iterator[bytes]:
    """The project's boxes as a YOLO zip (see the module's docstring), streamed a file at a time."""
    names = _label_names(project)
    klass = {name: position for position, name in enumerate(names)}
    out = _Drain()
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(CLASSES_FILE, "".join(f"{name}\n" for name in names))
        yield out.take()
        taken: set[str] = set()
        with pages.read_snapshot():
            for page in pages.final_label_pages(
                project=project, scope=scope, progress=progress, fields=("external_id",)
            ):
                for _, external_id, value in page:
                    name = yolo_label_name(external_id)
                    if name in taken:
                        name = f"{LABELS_FOLDER}{external_id}.txt"
                    taken.add(name)
                    lines = [
                        f"{klass[box['label']]} {box['x'] + box['w'] / 2:.6f} {box['y'] + box['h'] / 2:.6f}"
                        f" {box['w']:.6f} {box['h']:.6f}\n"
                        for box in value.get("boxes", [])
                    ]
                    archive.writestr(name, "".join(lines))
                yield out.take()
    yield out.take()


def yolo_label_name(external_id: str) -> str:
    """The label file of an image: `labels/<external id without its extension>.txt`."""
    path = PurePosixPath(external_id.replace("\\", "/").lstrip("/"))
    stem = str(path.with_suffix("")) if path.suffix else str(path)
    return f"{LABELS_FOLDER}{stem}.txt"


def _label_names(project: Project) -> list[str]:
    return list(project.labels.order_by("order", "id").values_list("name", flat=True))


def _size(width: int | None, height: int | None, image: str) -> tuple[int, int]:
    """The stored pixel size; for an item imported before sizes were stored, read from the image
    (stored upright already: the import applied its EXIF orientation)."""
    if width and height:
        return width, height
    from PIL import Image

    with default_storage.open(image, "rb") as file, Image.open(file) as picture:
        return picture.size


class _Drain(io.RawIOBase):
    """A write-only, unseekable stream whose bytes are taken as they come (zipfile then writes
    data descriptors instead of seeking back)."""

    def __init__(self) -> None:
        self.chunks: list[bytes] = []

    def writable(self) -> bool:
        return True

    def write(self, data) -> int:
        self.chunks.append(bytes(data))
        return len(data)

    def take(self) -> bytes:
        data, self.chunks = b"".join(self.chunks), []
        return data
