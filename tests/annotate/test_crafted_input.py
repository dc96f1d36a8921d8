"""Crafted numbers and cursors get a 400 naming the field or a 404, never a 500 or a truncated
value, on SQLite and PostgreSQL (issue 17, item 1): an active time beyond PostgreSQL's integer,
ids beyond a BigAutoField in a body or a URL, a cursor that does not decode or points past any id."""

import base64

import pytest

from annotate.converters import DB_ID_MAX, DB_INT_MAX
from annotate.models import Annotation

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("active_ms", [DB_INT_MAX + 1, 2**32 + 5, 2**64])
def test_an_active_time_beyond_what_the_database_stores_is_refused_not_truncated(lead_api, active_ms):
    project, client = lead_api
    item = client.post(f"/api/projects/{project.pk}/next/", {}, format="json").json()["item"]["id"]
    body = {"item": item, "value": {"choices": ["a"]}, "active_ms": active_ms}
    response = client.post(f"/api/projects/{project.pk}/annotations/", body, format="json")
    assert response.status_code == 400
    assert response.json() == {"active_ms": [f"Ensure this value is less than or equal to {DB_INT_MAX}."]}
    assert not Annotation.objects.exists()
    body["active_ms"] = DB_INT_MAX  # the largest it stores, stored as sent
    assert client.post(f"/api/projects/{project.pk}/annotations/", body, format="json").status_code == 201
    assert Annotation.objects.get().active_ms == DB_INT_MAX


def test_ids_beyond_a_big_integer_in_a_body_name_the_field(lead_api):
    project, client = lead_api
    base = f"/api/projects/{project.pk}"
    too_big = DB_ID_MAX + 1
    bodies = [
        (f"{base}/annotations/", {"item": too_big, "value": {"choices": ["a"]}}, "item"),
        (f"{base}/skip/", {"item": too_big}, "item"),
    ]
    for url, body, field in bodies:
        response = client.post(url, body, format="json")
        assert response.status_code == 400, (url, response.content)
        assert field in response.json(), response.json()
    assert not Annotation.objects.exists()
    # An id no row can have is harmless in the list of items not to serve (it is dropped).
    assert client.post(f"{base}/next/", {"exclude": [too_big]}, format="json").status_code == 200


def test_ids_beyond_a_big_integer_in_a_url_are_no_route(lead_api):
    project, client = lead_api
    for url in (f"/api/projects/{2**64}/", f"/api/projects/{project.pk}/items/{2**63}/"):
        response = client.get(url)
        assert response.status_code == 404 and response["Content-Type"] == "application/json", url
    assert client.get(f"/projects/{2**64}/").status_code == 404
    assert client.get(f"/projects/{project.pk}/items/{'9' * 30}/").status_code == 404
    assert client.get(f"/api/projects/{DB_ID_MAX}/").status_code == 404  # in range: no such project


def _cursor(raw: str) -> str:
    return base64.b64encode(raw.encode()).decode()


@pytest.mark.parametrize(
    "cursor", ["zzz", "A" * 50, "%00%ff", _cursor(f"p={2**64}"), _cursor("p=1 OR 1=1"), _cursor("o=x&p=1")]
)
def test_a_crafted_cursor_is_a_400_naming_it(lead_api, cursor):
    project, client = lead_api
    response = client.get(f"/api/projects/{project.pk}/items/?cursor={cursor}")
    assert response.status_code == 400, response.content
    assert list(response.json()) == ["cursor"]


def test_a_cursor_the_listing_gave_still_pages(lead_api):
    project, client = lead_api
    first = client.get(f"/api/projects/{project.pk}/items/?page_size=2").json()
    second = client.get(first["next"]).json()
    assert [i["id"] for i in first["results"]] + [i["id"] for i in second["results"]] == sorted(
        project.items.values_list("pk", flat=True)
    )


@pytest.mark.parametrize("item", [0, -1, -(2**63) - 1])
def test_an_item_id_below_any_row_id_names_the_field(lead_api, item):
    """Found by the API fuzz: below −2**63 SQLite overflowed (a 500) on skip and the annotations filter."""
    project, client = lead_api
    base = f"/api/projects/{project.pk}"
    for response in (
        client.post(f"{base}/skip/", {"item": item}, format="json"),
        client.post(f"{base}/annotations/", {"item": item, "value": {"choices": ["a"]}}, format="json"),
        client.get(f"{base}/annotations/", {"item": item}),
    ):
        assert response.status_code == 400, response.content
        assert "item" in response.json()
