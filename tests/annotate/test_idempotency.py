"""Idempotent submits (issue 17, item 5): a client-supplied idempotency key on submit; the same
key twice stores one annotation and answers the first response again. The labeling page sends
one per item shown (tests/browser/test_labeling.py, a submit whose response is lost)."""

import pytest
from rest_framework.test import APIClient

from annotate.models import Annotation, Item
from annotate.queue import IdempotencyKeyReused, annotation_submit, assignment_next
from tests.factories import UserFactory, make_project

pytestmark = pytest.mark.django_db


@pytest.fixture
def annotator_api():
    annotator = UserFactory()
    project = make_project(labels=["a", "b"], items=3, members=[(annotator, "annotator")], overlap=2)
    client = APIClient(raise_request_exception=False)
    client.force_login(annotator)
    return project, annotator, client


def _next(client, project, exclude=()):
    return client.post(f"/api/projects/{project.pk}/next/", {"exclude": list(exclude)}, format="json").json()


@pytest.mark.parametrize("path", ["submit-and-next", "annotations"])
def test_the_same_key_twice_stores_one_annotation_and_answers_the_first_response(annotator_api, path):
    project, _, client = annotator_api
    item = _next(client, project)["item"]["id"]
    body = {"item": item, "value": {"choices": ["a"]}, "active_ms": 900, "idempotency_key": "k-1"}
    url = f"/api/projects/{project.pk}/{path}/"
    first = client.post(url, body, format="json")
    # A resend, even with another answer in it, is the same submit: nothing new is stored.
    again = client.post(url, {**body, "value": {"choices": ["b"]}, "active_ms": 5}, format="json")
    assert first.status_code == again.status_code == 201, again.content
    assert again.json() == first.json()
    annotation = Annotation.objects.get()
    assert (annotation.value, annotation.active_ms, annotation.idempotency_key) == (
        {"choices": ["a"]},
        900,
        "k-1",
    )
    assert Item.objects.get(pk=item).annotation_count == 1
    # Without a key a second submit of the item is a changed answer, stored as a new row.
    del body["idempotency_key"]
    assert client.post(url, body, format="json").status_code == 201
    assert Annotation.objects.count() == 2


def test_a_key_used_for_another_item_is_a_conflict_and_stores_nothing(annotator_api):
    project, _, client = annotator_api
    first = _next(client, project)["item"]["id"]
    second = _next(client, project, exclude=[first])["item"]["id"]
    url = f"/api/projects/{project.pk}/annotations/"
    body = {"item": first, "value": {"choices": ["a"]}, "idempotency_key": "same"}
    assert client.post(url, body, format="json").status_code == 201
    response = client.post(url, {**body, "item": second}, format="json")
    assert response.status_code == 409
    assert "idempotency_key 'same' was used for item" in response.json()["detail"]
    assert list(Annotation.objects.values_list("item_id", flat=True)) == [first]
    assert Item.objects.get(pk=second).annotation_count == 0


def test_keys_are_per_annotator():
    annotator, other = UserFactory(), UserFactory()
    project = make_project(
        labels=["a", "b"], items=3, members=[(annotator, "annotator"), (other, "annotator")], overlap=2
    )
    for user in (annotator, other):
        lease = assignment_next(project=project, annotator=user)
        annotation_submit(
            project=project,
            item_id=lease.item.pk,
            annotator=user,
            value={"choices": ["a"]},
            idempotency_key="x",
        )
    assert Annotation.objects.filter(idempotency_key="x").count() == 2
    lease = assignment_next(project=project, annotator=annotator)
    with pytest.raises(IdempotencyKeyReused):
        annotation_submit(
            project=project,
            item_id=lease.item.pk,
            annotator=annotator,
            value={"choices": ["a"]},
            idempotency_key="x",
        )


@pytest.mark.parametrize("key", ["", "a" * 65, "with space", "nul\x00byte", "é"])
def test_a_malformed_key_is_refused_naming_the_field(annotator_api, key):
    project, _, client = annotator_api
    item = _next(client, project)["item"]["id"]
    body = {"item": item, "value": {"choices": ["a"]}, "idempotency_key": key}
    response = client.post(f"/api/projects/{project.pk}/annotations/", body, format="json")
    assert response.status_code == 400, response.content
    # The field's own message, or for a NUL the body's (annotate/api/parsers.py), names it.
    assert "idempotency_key" in response.json() or "idempotency_key" in response.json()["detail"]
    assert not Annotation.objects.exists()
