"""Images in a bounding-box project: the upright size stored at import (EXIF orientation
applied), and bad boxes refused by the submit API naming the box and field, nothing stored."""

import io

import pytest
from django.core.files.storage import default_storage
from django.urls import reverse
from PIL import Image
from rest_framework.test import APIClient

from annotate.importing import import_image_zip, import_images
from annotate.importing.images import images_zip
from annotate.models import Annotation, Assignment, Item
from tests.factories import UserFactory, make_project

pytestmark = pytest.mark.django_db

ORIENTATION = 0x0112  # EXIF tag 274


def _rotated_jpeg(width=60, height=40, orientation=6) -> bytes:
    """A landscape JPEG as a camera held upright writes it: pixels sideways, EXIF says turn.

    A solid red block marks the stored top-left corner, so the test can see where it went."""
    image = Image.new("RGB", (width, height), (0, 0, 255))
    image.paste((255, 0, 0), (0, 0, 16, 16))
    exif = Image.Exif()
    exif[ORIENTATION] = orientation
    out = io.BytesIO()
    image.save(out, format="JPEG", quality=95, exif=exif)
    return out.getvalue()


def _boxes_project(**kwargs):
    return make_project(name="Boxes", task_type="image_boxes", labels=["car", "person"], **kwargs)


def test_a_jpeg_with_exif_orientation_6_is_stored_upright_with_its_size_swapped():
    project = _boxes_project()
    data = _rotated_jpeg(60, 40, orientation=6)
    with Image.open(io.BytesIO(data)) as raw:
        assert raw.size == (60, 40) and raw.getexif()[ORIENTATION] == 6

    import_images(project=project, files=[("camera.jpg", io.BytesIO(data))])

    item = Item.objects.get(project=project)
    assert (item.width, item.height) == (40, 60)
    with default_storage.open(item.image.name) as stored, Image.open(stored) as upright:
        assert upright.size == (40, 60)
        assert upright.getexif().get(ORIENTATION, 1) == 1  # nothing left for a browser to turn again
        # Orientation 6: turn 90° clockwise to view, so the stored top-left is now top-right.
        r, g, b = upright.convert("RGB").getpixel((40 - 8, 8))
        assert r > 200 and b < 60
        r, g, b = upright.convert("RGB").getpixel((8, 8))
        assert b > 200 and r < 60


def test_a_zip_of_rotated_and_upright_jpegs_stores_each_upright_size():
    project = _boxes_project()
    zipped = io.BytesIO()
    images_zip(
        [
            ("turned.jpg", io.BytesIO(_rotated_jpeg(30, 20, orientation=8))),
            ("flipped.jpg", io.BytesIO(_rotated_jpeg(30, 20, orientation=3))),  # 180°: size kept
            ("plain.jpg", io.BytesIO(_rotated_jpeg(30, 20, orientation=1))),
        ],
        into=zipped,
    )

    import_image_zip(project=project, file=zipped, filename="photos.zip")

    sizes = {i.external_id: (i.width, i.height) for i in Item.objects.filter(project=project)}
    assert sizes == {"turned.jpg": (20, 30), "flipped.jpg": (30, 20), "plain.jpg": (30, 20)}


# Bad boxes through the submit API --------------------------------------------------------


def _box(**kw):
    return {"x": 0.1, "y": 0.2, "w": 0.3, "h": 0.4, "label": "car", **kw}


@pytest.fixture
def leased():
    """An annotator holding the lease on the only item of a boxes project."""
    annotator = UserFactory()
    project = _boxes_project(members=[(annotator, "annotator")])
    import_images(project=project, files=[("a.jpg", io.BytesIO(_rotated_jpeg(64, 48, orientation=1)))])
    client = APIClient()
    client.force_authenticate(annotator)
    response = client.post(reverse("api:next", kwargs={"project_id": project.pk}), {}, format="json")
    assert response.status_code == 200
    body = response.json()["item"]
    assert (body["width"], body["height"]) == (64, 48)
    return project, client, body["id"]


def _submit(client, project, item_id, value):
    url = reverse("api:annotation-list", kwargs={"project_id": project.pk})
    return client.post(url, {"item": item_id, "value": value, "active_ms": 900}, format="json")


@pytest.mark.parametrize(
    ("boxes", "field", "words"),
    [
        ([_box(), _box(w=0)], "value.boxes[1].w", "size above zero"),
        ([_box(), _box(h=0.0)], "value.boxes[1].h", "size above zero"),
        ([_box(x=0.9, w=0.2)], "value.boxes[0].x", "past the image"),
        ([_box(), _box(), _box(y=-0.05)], "value.boxes[2].y", "past the image"),
        ([_box(), _box(label="truck")], "value.boxes[1].label", "unknown label 'truck'"),
    ],
)
def test_bad_boxes_are_refused_by_the_submit_api_naming_the_field_and_nothing_is_stored(
    leased, boxes, field, words
):
    project, client, item_id = leased

    response = _submit(client, project, item_id, {"boxes": boxes})

    assert response.status_code == 400
    body = response.json()
    assert field in body, body
    assert words in body[field][0]
    assert not Annotation.objects.exists()
    item = Item.objects.get(pk=item_id)
    assert (item.annotation_count, item.is_complete, item.final_value) == (0, False, None)
    assert Assignment.objects.get().status == Assignment.Status.OPEN


def test_good_boxes_are_stored_as_fractions_and_the_item_is_done(leased):
    project, client, item_id = leased
    value = {"boxes": [_box(), _box(x=0.5, y=0.5, w=0.5, h=0.5, label="person")]}

    response = _submit(client, project, item_id, value)

    assert response.status_code == 201
    assert Annotation.objects.get().value == value
    assert Item.objects.get(pk=item_id).annotation_count == 1
