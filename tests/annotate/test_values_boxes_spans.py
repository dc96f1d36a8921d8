"""Box and span values: their shape, normalisation and the errors that name the box or span and field;
through the submit API, a refused value stores nothing. The stated tokenizer and grapheme boundaries."""

import pytest
from django.core.exceptions import ValidationError
from rest_framework.test import APIClient

from annotate.models import Annotation, Project
from annotate.queue import assignment_next
from annotate.tokens import grapheme_boundaries, snap, tokens
from annotate.values import annotation_value_validate
from tests.factories import UserFactory, make_project

LABELS = ["PER", "ORG", "LOC"]
BOXES = Project(task_type=Project.TaskType.IMAGE_BOXES)
SPANS = Project(task_type=Project.TaskType.TEXT_SPANS)
SPANS_OVERLAP = Project(task_type=Project.TaskType.TEXT_SPANS, spans_may_overlap=True)


def _error(project, value, **kwargs) -> dict:
    with pytest.raises(ValidationError) as caught:
        annotation_value_validate(project=project, label_names=LABELS, value=value, **kwargs)
    return caught.value.message_dict


def _box(**fields):
    return {"x": 0.1, "y": 0.2, "w": 0.3, "h": 0.4, "label": "PER", **fields}


def test_boxes_are_kept_in_fractions_and_clamped_to_the_edge():
    value = annotation_value_validate(
        project=BOXES,
        label_names=LABELS,
        value={"boxes": [_box(), _box(x=0.5, w=0.5000000000000002, label="LOC")]},
    )
    assert value == {
        "boxes": [
            {"x": 0.1, "y": 0.2, "w": 0.3, "h": 0.4, "label": "PER"},
            {"x": 0.5, "y": 0.2, "w": 0.5, "h": 0.4, "label": "LOC"},
        ]
    }
    assert annotation_value_validate(project=BOXES, label_names=LABELS, value={"boxes": []}) == {"boxes": []}


@pytest.mark.parametrize(
    ("boxes", "field", "words"),
    [
        ([_box(), _box(w=0)], "value.boxes[1].w", "size above zero"),
        ([_box(h=-0.1)], "value.boxes[0].h", "size above zero"),
        ([_box(x=0.8, w=0.3)], "value.boxes[0].x", "past the image"),
        ([_box(y=-0.2)], "value.boxes[0].y", "past the image"),
        ([_box(label="DOG")], "value.boxes[0].label", "unknown label 'DOG'"),
        ([_box(x="0.1")], "value.boxes[0].x", "must be a number"),
        ([_box(x=float("nan"))], "value.boxes[0].x", "must be a number"),
        ([_box(x=True)], "value.boxes[0].x", "must be a number"),
        ([{"x": 0, "y": 0, "w": 1, "label": "PER"}], "value.boxes[0]", "keys x, y, w, h, label"),
        ("a box", "value.boxes", "must be a list"),
    ],
)
def test_bad_boxes_are_refused_naming_the_box_and_field(boxes, field, words):
    message = _error(BOXES, {"boxes": boxes})
    assert field in message and words in message[field][0]


def test_a_box_value_has_one_key():
    assert 'exactly one key, "boxes"' in _error(BOXES, {"choices": ["PER"]})["value"][0]


TEXT = "Ana met 👍🏽 Bob at cafe\u0301 Acme\r\nin 東京."


def _span(text, part, label="PER", nth=0):
    start = -1
    for _ in range(nth + 1):
        start = text.index(part, start + 1)
    return {"start": start, "end": start + len(part), "label": label}


def test_spans_are_sorted_and_checked_against_the_text():
    spans = [
        _span(TEXT, "Acme", "ORG"),
        _span(TEXT, "Ana"),
        _span(TEXT, "東京", "LOC"),
        _span(TEXT, "cafe\u0301"),
    ]
    value = annotation_value_validate(project=SPANS, label_names=LABELS, value={"spans": spans}, text=TEXT)
    assert [TEXT[s["start"] : s["end"]] for s in value["spans"]] == ["Ana", "cafe\u0301", "Acme", "東京"]


@pytest.mark.parametrize(
    ("spans", "field", "words"),
    [
        (
            [{"start": 0, "end": len(TEXT) + 1, "label": "PER"}],
            "value.spans[0].end",
            "past the end of the text",
        ),
        ([{"start": 3, "end": 3, "label": "PER"}], "value.spans[0].end", "ends after it starts"),
        ([{"start": -1, "end": 3, "label": "PER"}], "value.spans[0].start", "integer ≥ 0"),
        ([{"start": 0.5, "end": 3, "label": "PER"}], "value.spans[0].start", "integer ≥ 0"),
        # Between 👍 and its skin tone, and between e and its combining accent.
        (
            [{"start": TEXT.index("👍") + 1, "end": TEXT.index("Bob"), "label": "PER"}],
            "value.spans[0].start",
            "inside",
        ),
        ([{"start": 0, "end": TEXT.index("\u0301"), "label": "PER"}], "value.spans[0].end", "inside"),
        # Between \r and \n: CRLF is one grapheme.
        ([{"start": 0, "end": TEXT.index("\n"), "label": "PER"}], "value.spans[0].end", "inside"),
        ([{"start": 0, "end": 3, "label": "DOG"}], "value.spans[0].label", "unknown label 'DOG'"),
        ([{"start": 0, "end": 3}], "value.spans[0]", "keys start, end, label"),
    ],
)
def test_bad_spans_are_refused_naming_the_span_and_field(spans, field, words):
    message = _error(SPANS, {"spans": spans}, text=TEXT)
    assert field in message and words in message[field][0], message


def test_overlapping_spans_are_refused_unless_the_project_allows_them():
    spans = [_span(TEXT, "Ana met"), _span(TEXT, "met", "ORG")]
    message = _error(SPANS, {"spans": spans}, text=TEXT)["value.spans"][0]
    assert "0–7 (PER) and 4–7 (ORG) overlap" in message
    allowed = annotation_value_validate(
        project=SPANS_OVERLAP, label_names=LABELS, value={"spans": spans}, text=TEXT
    )
    assert len(allowed["spans"]) == 2
    # Touching spans do not overlap; the same span twice is refused either way.
    touching = [{"start": 0, "end": 3, "label": "PER"}, {"start": 3, "end": 7, "label": "ORG"}]
    assert (
        len(annotation_value_validate(project=SPANS, label_names=LABELS, value={"spans": touching})["spans"])
        == 2
    )
    twice = [_span(TEXT, "Ana"), _span(TEXT, "Ana")]
    assert "listed twice" in _error(SPANS_OVERLAP, {"spans": twice})["value.spans"][0]


def test_the_tokenizer_keeps_graphemes_whole_and_splits_cjk_by_character():
    text = "Hello, José! 👍🏽 cafe\u0301\r\n東京に R2-D2 🇫🇷"
    assert [text[a:b] for a, b in tokens(text)] == [
        "Hello",
        ",",
        "José",
        "!",
        "👍🏽",
        "cafe\u0301",
        "東",
        "京",
        "に",
        "R2",
        "-",
        "D2",
        "🇫🇷",
    ]
    bounds = grapheme_boundaries(text)
    for start, end in tokens(text):
        assert start in bounds and end in bounds
    assert text.index("\n") not in bounds  # inside CRLF


def test_snap_widens_a_selection_to_whole_tokens():
    text = "Hello big world"
    spans = tokens(text)
    assert snap(spans, 2, 7) == (0, 9)
    assert snap(spans, 5, 6) is None  # only white space
    assert snap(spans, 6, 7) == (6, 9)


@pytest.mark.django_db
def test_a_refused_span_through_the_api_names_the_field_and_stores_nothing():
    user = UserFactory()
    project = make_project(
        labels=LABELS, task_type=Project.TaskType.TEXT_SPANS, members=[(user, "annotator")]
    )
    project.items.create(external_id="d1", text="short")
    lease = assignment_next(project=project, annotator=user)
    client = APIClient()
    client.force_authenticate(user)
    response = client.post(
        f"/api/projects/{project.pk}/annotations/",
        {"item": lease.item.id, "value": {"spans": [{"start": 0, "end": 9, "label": "PER"}]}},
        format="json",
    )
    assert response.status_code == 400
    assert "value.spans[0].end" in response.json()
    assert "past the end of the text" in str(response.json())
    assert not Annotation.objects.filter(item_id=lease.item.id).exists()
    ok = client.post(
        f"/api/projects/{project.pk}/annotations/",
        {"item": lease.item.id, "value": {"spans": [{"start": 0, "end": 5, "label": "LOC"}]}},
        format="json",
    )
    assert ok.status_code == 201, ok.json()
    assert Annotation.objects.get(item_id=lease.item.id).value == {
        "spans": [{"start": 0, "end": 5, "label": "LOC"}]
    }


@pytest.mark.django_db
def test_multi_label_and_dawid_skene_are_refused_for_boxes_and_spans():
    with pytest.raises(ValidationError) as caught:
        make_project(labels=LABELS, task_type=Project.TaskType.IMAGE_BOXES, multi_label=True)
    assert "multi_label" in caught.value.message_dict
    with pytest.raises(ValidationError) as caught:
        make_project(labels=LABELS, task_type=Project.TaskType.TEXT_SPANS, consensus_method="dawid_skene")
    assert "consensus_method" in caught.value.message_dict
