"""COCO JSON and YOLO for bounding-box projects: exports read back by pycocotools and by a YOLO
reader written here, imports as labels and as predictions, round trips into a new project,
and every bad input refused with its place named and nothing stored."""

import io
import json
import zipfile
from collections import Counter

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse
from PIL import Image
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval
from rest_framework.test import APIClient

from annotate import exporting, importing
from annotate.models import Annotation, FinalSource, Item, Membership, Project, Review, Tally
from annotate.quality.rebuild import project_quality_rebuild
from annotate.queue import annotation_submit, assignment_next
from tests.factories import UserFactory, make_project

pytestmark = pytest.mark.django_db

LABELS = ("cat", "dog", "bird")
SIZES = {"a.png": (640, 480), "shots/b.png": (300, 200), "c.jpg": (1024, 768)}
BOXES = {
    "a.png": [
        {"x": 0.1, "y": 0.2, "w": 0.3, "h": 0.25, "label": "cat"},
        {"x": 0.5, "y": 0.5, "w": 0.5, "h": 0.5, "label": "dog"},
    ],
    "shots/b.png": [{"x": 0.0, "y": 0.0, "w": 1.0, "h": 1.0, "label": "bird"}],
    "c.jpg": [],  # an image looked at: nothing on it
}


def _image(name: str) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", SIZES[name], "white").save(buffer, format="JPEG" if name.endswith(".jpg") else "PNG")
    return buffer.getvalue()


def _images_zip() -> io.BytesIO:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name in SIZES:
            archive.writestr(name, _image(name))
    buffer.seek(0)
    return buffer


def _boxes_project(**fields) -> Project:
    project = make_project(labels=LABELS, task_type=Project.TaskType.IMAGE_BOXES, **fields)
    importing.import_image_zip(project=project, file=_images_zip(), filename="images.zip")
    return project


@pytest.fixture
def labeled():
    """A boxes project whose three images an annotator labeled with BOXES."""
    annotator = UserFactory()
    project = _boxes_project(members=[(annotator, Membership.Role.ANNOTATOR)])
    for _ in SIZES:
        item = assignment_next(project=project, annotator=annotator).item
        value = {"boxes": BOXES[item.external_id]}
        annotation_submit(project=project, item_id=item.pk, annotator=annotator, value=value)
    return project


def _export(project: Project, format: str) -> bytes:
    chunks = exporting.export_stream(project=project, format=format)
    return b"".join(c if isinstance(c, bytes) else c.encode() for c in chunks)


def _finals(project: Project) -> dict[str, dict]:
    return dict(Item.objects.filter(project=project).values_list("external_id", "final_value"))


def _stored(project: Project) -> tuple:
    """Everything an import may write, to compare before and after a refused one."""
    items = Item.objects.filter(project=project).order_by("id")
    return (
        Annotation.objects.filter(project=project).count(),
        list(items.values_list("id", "final_value", "proposal", "annotation_count")),
        sorted(Tally.objects.filter(project=project).values_list("kind", "key", "n")),
    )


def _assert_kept_right(project: Project) -> None:
    """The tallies and final labels the import kept equal a full recount."""
    kept = (sorted(Tally.objects.filter(project=project).exclude(n=0).values_list("kind", "key", "n")),)
    finals = _finals(project)
    models = {"Item": Item, "Annotation": Annotation, "Label": project.labels.model, "Tally": Tally}
    project_quality_rebuild(project=project, models={**models, "Review": Review})
    assert (
        sorted(Tally.objects.filter(project=project).exclude(n=0).values_list("kind", "key", "n")),
    ) == kept
    assert _finals(project) == finals


def _assert_boxes_close(got: dict, want: dict, name: str) -> None:
    """Boxes within half a pixel of the image `name`."""
    width, height = SIZES[name]
    assert len(got["boxes"]) == len(want["boxes"])
    for g, w in zip(got["boxes"], want["boxes"], strict=True):
        assert g["label"] == w["label"]
        for key, size in (("x", width), ("y", height), ("w", width), ("h", height)):
            assert abs(g[key] - w[key]) * size <= 0.5


# COCO ------------------------------------------------------------------------------------


def test_coco_export_loads_in_pycocotools_with_pixel_boxes_and_one_based_categories(labeled, tmp_path):
    path = tmp_path / "coco.json"
    path.write_bytes(_export(labeled, "coco"))
    coco = COCO(str(path))
    assert [c["name"] for c in coco.loadCats(coco.getCatIds())] == list(LABELS)
    assert coco.getCatIds() == [1, 2, 3]
    images = {image["file_name"]: image for image in coco.loadImgs(coco.getImgIds())}
    assert {name: (i["width"], i["height"]) for name, i in images.items()} == SIZES
    for name, boxes in BOXES.items():
        annotations = coco.loadAnns(coco.getAnnIds(imgIds=[images[name]["id"]]))
        width, height = SIZES[name]
        assert len(annotations) == len(boxes)
        for annotation, box in zip(annotations, boxes, strict=True):
            want = [box["x"] * width, box["y"] * height, box["w"] * width, box["h"] * height]
            assert all(abs(a - b) <= 0.5 for a, b in zip(annotation["bbox"], want, strict=True))
            assert coco.loadCats(annotation["category_id"])[0]["name"] == box["label"]
            assert annotation["iscrowd"] == 0
            assert annotation["area"] == pytest.approx(want[2] * want[3], rel=1e-3)


def test_coco_eval_of_the_export_against_itself_gives_ap_one(labeled, tmp_path):
    path = tmp_path / "coco.json"
    path.write_bytes(_export(labeled, "coco"))
    truth = COCO(str(path))
    detections = truth.loadRes(
        [
            {"image_id": a["image_id"], "category_id": a["category_id"], "bbox": a["bbox"], "score": 1.0}
            for a in truth.loadAnns(truth.getAnnIds())
        ]
    )
    evaluation = COCOeval(truth, detections, iouType="bbox")
    evaluation.evaluate()
    evaluation.accumulate()
    evaluation.summarize()
    assert evaluation.stats[0] == pytest.approx(1.0)


def test_coco_round_trip_into_a_new_project_gives_the_boxes_back_within_half_a_pixel(labeled):
    data = _export(labeled, "coco")
    copy = _boxes_project()
    result = importing.import_coco(project=copy, file=io.BytesIO(data), filename="coco.json")
    assert (result.items_updated, result.annotations_created) == (3, 3)
    finals = _finals(copy)
    for name in SIZES:
        _assert_boxes_close(finals[name], {"boxes": BOXES[name]}, name)
    annotation = Annotation.objects.filter(project=copy).select_related("annotator").first()
    assert annotation.annotator.username == "source:import" and annotation.counted
    assert set(Item.objects.filter(project=copy).values_list("final_source", flat=True)) == {
        FinalSource.SINGLE
    }
    assert all(Item.objects.filter(project=copy).values_list("is_complete", flat=True))
    _assert_kept_right(copy)


def test_coco_imported_as_predictions_becomes_each_items_proposal_and_no_annotation(labeled):
    copy = _boxes_project()
    data = _export(labeled, "coco")
    importing.item_import(
        project=copy,
        file=io.BytesIO(data),
        filename="c.json",
        format="coco",
        options={"import_as": "predictions"},
    )
    assert Annotation.objects.filter(project=copy).count() == 0
    for external_id, proposal in Item.objects.filter(project=copy).values_list("external_id", "proposal"):
        assert proposal["score"] is None
        _assert_boxes_close(proposal["value"], {"boxes": BOXES[external_id]}, external_id)


def test_a_coco_file_name_may_name_the_stored_image(labeled):
    copy = _boxes_project()
    item = Item.objects.get(project=copy, external_id="a.png")
    coco = json.loads(_export(labeled, "coco"))
    for image in coco["images"]:
        if image["file_name"] == "a.png":
            image["file_name"] = item.image.name.rsplit("/", 1)[-1]
    coco["images"] = [i for i in coco["images"] if i["file_name"] != "c.jpg"]
    coco["annotations"] = [
        a for a in coco["annotations"] if a["image_id"] in {i["id"] for i in coco["images"]}
    ]
    importing.import_coco(project=copy, file=io.BytesIO(json.dumps(coco).encode()), filename="coco.json")
    item.refresh_from_db()
    _assert_boxes_close(item.final_value, {"boxes": BOXES["a.png"]}, "a.png")


def _coco_changed(change) -> bytes:
    coco = {
        "images": [{"id": 7, "file_name": "a.png", "width": 640, "height": 480}],
        "annotations": [
            {"id": 1, "image_id": 7, "category_id": 1, "bbox": [10, 20, 100, 50]},
            {"id": 2, "image_id": 7, "category_id": 2, "bbox": [300, 200, 64, 48]},
        ],
        "categories": [{"id": 1, "name": "cat"}, {"id": 2, "name": "dog"}],
    }
    change(coco)
    return json.dumps(coco).encode()


BAD_COCO = {
    "box_past_the_edge": (
        lambda c: c["annotations"][1].update(bbox=[600, 200, 64, 48]),
        "bad.json, annotations[1].bbox (bbox [600, 200, 64, 48] in a 640x480 image): the box reaches past",
    ),
    "box_of_zero_size": (
        lambda c: c["annotations"][0].update(bbox=[10, 20, 0, 50]),
        "bad.json, annotations[0].bbox (bbox [10, 20, 0, 50] in a 640x480 image):"
        " a box has a size above zero",
    ),
    "label_not_in_project": (
        lambda c: c["categories"][1].update(name="horse"),
        "bad.json, categories[1].name: unknown label 'horse'; this project's labels are: cat, dog, bird",
    ),
    "image_id_matching_nothing": (
        lambda c: c["annotations"][1].update(image_id=99),
        "bad.json, annotations[1].image_id: 99 matches no image in 'images'",
    ),
    "category_id_matching_nothing": (
        lambda c: c["annotations"][0].update(category_id=5),
        "bad.json, annotations[0].category_id: 5 matches no category in 'categories'",
    ),
    "file_name_matching_no_item": (
        lambda c: c["images"][0].update(file_name="z.png"),
        "bad.json, images[0].file_name: 'z.png' matches no item of this project",
    ),
    "bbox_not_four_numbers": (
        lambda c: c["annotations"][0].update(bbox=[1, 2, 3]),
        "bad.json, annotations[0].bbox: expected [x, y, width, height] in pixels",
    ),
}


@pytest.mark.parametrize("case", BAD_COCO)
def test_a_bad_coco_file_is_refused_naming_the_place_and_stores_nothing(case):
    project = _boxes_project()
    change, message = BAD_COCO[case]
    before = _stored(project)
    with pytest.raises(importing.ImportRejected) as refused:
        importing.import_coco(project=project, file=io.BytesIO(_coco_changed(change)), filename="bad.json")
    assert str(refused.value).startswith(message)
    assert _stored(project) == before


def test_a_good_coco_file_of_the_same_shape_is_taken():
    project = _boxes_project()
    importing.import_coco(project=project, file=io.BytesIO(_coco_changed(lambda c: None)), filename="ok.json")
    value = Item.objects.get(project=project, external_id="a.png").final_value
    assert value["boxes"][0] == {"x": 10 / 640, "y": 20 / 480, "w": 100 / 640, "h": 50 / 480, "label": "cat"}


def test_coco_into_a_text_project_is_refused_by_task_type():
    project = make_project()
    with pytest.raises(importing.ImportRejected, match="coco holds bounding boxes"):
        importing.import_coco(project=project, file=io.BytesIO(b"{}"), filename="x.json")


# YOLO ------------------------------------------------------------------------------------


def _read_yolo(data: bytes) -> tuple[list[str], dict[str, list[tuple]]]:
    """An independent reader: classes.txt's names, and per label file its (class, cx, cy, w, h)."""
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        classes = archive.read("classes.txt").decode().splitlines()
        files = {}
        for name in archive.namelist():
            if name.startswith("labels/"):
                rows = []
                for line in archive.read(name).decode().splitlines():
                    klass, *numbers = line.split()
                    rows.append((int(klass), *map(float, numbers)))
                files[name] = rows
    return classes, files


def test_yolo_export_is_a_zip_of_classes_and_one_normalised_txt_per_image(labeled):
    classes, files = _read_yolo(_export(labeled, "yolo"))
    assert classes == list(LABELS)
    assert set(files) == {"labels/a.txt", "labels/shots/b.txt", "labels/c.txt"}
    stems = {"a.png": "labels/a.txt", "shots/b.png": "labels/shots/b.txt", "c.jpg": "labels/c.txt"}
    for name, boxes in BOXES.items():
        rows = files[stems[name]]
        assert len(rows) == len(boxes)
        for (klass, cx, cy, w, h), box in zip(rows, boxes, strict=True):
            assert classes[klass] == box["label"]
            want = (box["x"] + box["w"] / 2, box["y"] + box["h"] / 2, box["w"], box["h"])
            assert (cx, cy, w, h) == pytest.approx(want, abs=1e-6)


def test_yolo_round_trip_into_a_new_project_gives_the_boxes_back_within_half_a_pixel(labeled):
    copy = _boxes_project()
    importing.item_import(
        project=copy, file=io.BytesIO(_export(labeled, "yolo")), filename="y.zip", format="yolo"
    )
    finals = _finals(copy)
    for name in SIZES:
        _assert_boxes_close(finals[name], {"boxes": BOXES[name]}, name)
    _assert_kept_right(copy)


def _yolo_zip(files: dict[str, str]) -> io.BytesIO:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, text in files.items():
            archive.writestr(name, text)
    buffer.seek(0)
    return buffer


BAD_YOLO = {
    "class_past_classes_txt": (
        {"classes.txt": "cat\ndog\n", "labels/a.txt": "0 0.5 0.5 0.2 0.2\n2 0.5 0.5 0.1 0.1\n"},
        "y.zip, labels/a.txt, line 2, field 'class': 2 is past classes.txt (2 classes, ids 0 to 1)",
    ),
    "label_not_in_project": (
        {"classes.txt": "cat\nhorse\n", "labels/a.txt": "0 0.5 0.5 0.2 0.2\n"},
        "y.zip, classes.txt, line 2: unknown label 'horse'",
    ),
    "box_past_the_edge": (
        {"classes.txt": "cat\n", "labels/a.txt": "0 0.5 0.5 0.2 0.2\n0 0.95 0.5 0.2 0.2\n"},
        "y.zip, labels/a.txt, line 2, field 'cx': the box reaches past the image",
    ),
    "box_of_zero_size": (
        {"classes.txt": "cat\n", "labels/a.txt": "0 0.5 0.5 0 0.2\n"},
        "y.zip, labels/a.txt, line 1, field 'w': a box has a size above zero",
    ),
    "txt_matching_no_image": (
        {"classes.txt": "cat\n", "labels/zebra.txt": "0 0.5 0.5 0.2 0.2\n"},
        "y.zip, labels/zebra.txt: matches no image of this project",
    ),
    "no_classes_txt": ({"labels/a.txt": "0 0.5 0.5 0.2 0.2\n"}, "y.zip: expected one classes.txt"),
    "line_of_three_fields": (
        {"classes.txt": "cat\n", "labels/a.txt": "0 0.5 0.5\n"},
        "y.zip, labels/a.txt, line 1: expected 'class cx cy w h', not 3 fields",
    ),
}


@pytest.mark.parametrize("case", BAD_YOLO)
def test_a_bad_yolo_zip_is_refused_naming_the_file_line_and_field_and_stores_nothing(case):
    project = _boxes_project()
    files, message = BAD_YOLO[case]
    before = _stored(project)
    with pytest.raises(importing.ImportRejected) as refused:
        importing.import_yolo(project=project, file=_yolo_zip(files), filename="y.zip")
    assert str(refused.value).startswith(message)
    assert _stored(project) == before


def test_yolo_labels_onto_an_item_already_labeled_by_the_same_source_replace_its_vote(labeled):
    files = {"classes.txt": "cat\ndog\n", "a.txt": "1 0.5 0.5 0.2 0.2\n"}
    copy = _boxes_project()
    for _ in range(2):
        importing.import_yolo(project=copy, file=_yolo_zip(files), filename="y.zip")
    files["a.txt"] = "0 0.5 0.5 0.4 0.4\n"
    importing.import_yolo(project=copy, file=_yolo_zip(files), filename="y.zip")
    item = Item.objects.get(project=copy, external_id="a.png")
    assert item.annotation_count == 1
    assert item.final_value == {"boxes": [{"x": 0.3, "y": 0.3, "w": 0.4, "h": 0.4, "label": "cat"}]}
    assert Counter(Annotation.objects.filter(item=item).values_list("counted", flat=True)) == {
        True: 1,
        False: 2,
    }
    _assert_kept_right(copy)


# Through the API and the pages -------------------------------------------------------------


def _manager(project: Project):
    return project.memberships.get(role=Membership.Role.MANAGER).user


def test_the_api_exports_coco_and_a_yolo_zip_and_imports_coco(labeled):
    client = APIClient()
    client.force_authenticate(_manager(labeled))
    url = reverse("api:export", kwargs={"project_id": labeled.pk})
    coco = client.get(url, {"format": "coco"})
    assert coco.status_code == 200 and coco["Content-Type"].startswith("application/json")
    body = b"".join(coco.streaming_content)
    assert len(json.loads(body)["annotations"]) == 3
    yolo = client.get(url, {"format": "yolo"})
    assert yolo["Content-Type"] == "application/zip"
    assert ".zip" in yolo["Content-Disposition"]
    assert _read_yolo(b"".join(yolo.streaming_content))[0] == list(LABELS)

    copy = _boxes_project()
    client.force_authenticate(_manager(copy))
    upload = SimpleUploadedFile("coco.json", body, content_type="application/json")
    response = client.post(
        reverse("api:import-list", kwargs={"project_id": copy.pk}),
        {"file": upload, "format": "coco", "label_source": "detector"},
        format="multipart",
    )
    assert response.status_code == 201, response.json()
    assert response.json()["rows_done"] == 3
    assert Annotation.objects.filter(project=copy, annotator__username="source:detector").count() == 3


def test_the_api_refuses_a_bad_coco_with_400_naming_the_place_and_stores_nothing():
    project = _boxes_project()
    client = APIClient()
    client.force_authenticate(_manager(project))
    data = _coco_changed(lambda c: c["annotations"][1].update(image_id=99))
    before = _stored(project)
    response = client.post(
        reverse("api:import-list", kwargs={"project_id": project.pk}),
        {"file": SimpleUploadedFile("bad.json", data), "format": "coco"},
        format="multipart",
    )
    assert response.status_code == 400
    assert "annotations[1].image_id: 99 matches no image" in response.json()["error"]
    assert _stored(project) == before


def test_the_api_refuses_a_span_format_for_a_boxes_project(labeled):
    client = APIClient()
    client.force_authenticate(_manager(labeled))
    response = client.get(reverse("api:export", kwargs={"project_id": labeled.pk}), {"format": "conll"})
    assert response.status_code == 400
    assert "conll holds text spans" in json.dumps(response.json())


def test_the_export_page_offers_coco_and_yolo_and_downloads_coco(labeled, client):
    client.force_login(_manager(labeled))
    url = reverse("annotate:export", args=[labeled.pk])
    page = client.get(url)
    assert b'value="coco"' in page.content and b'value="yolo"' in page.content
    assert b'value="conll"' not in page.content
    response = client.get(url, {"format": "coco"})
    assert response.status_code == 200
    assert len(json.loads(b"".join(response.streaming_content))["images"]) == 3


def test_the_import_page_imports_yolo_as_predictions(labeled, client):
    copy = _boxes_project()
    client.force_login(_manager(copy))
    upload = SimpleUploadedFile("y.zip", _export(labeled, "yolo"))
    response = client.post(
        reverse("annotate:import", args=[copy.pk]),
        {"format": "yolo", "files": upload, "label_source": "import", "import_as": "predictions"},
    )
    assert response.status_code == 302
    proposal = Item.objects.get(project=copy, external_id="shots/b.png").proposal
    _assert_boxes_close(proposal["value"], {"boxes": BOXES["shots/b.png"]}, "shots/b.png")
