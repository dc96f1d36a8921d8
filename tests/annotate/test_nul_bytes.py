"""NUL bytes refused with a message, never a 500 (issue 17, item 1): PostgreSQL cannot store
U+0000 in text, so every way text gets in — the login page, the token endpoint, the admin's
login, a project's fields, a label, an import's rows, an item's text — refuses it by name."""

import io

import pytest
from django.test import Client
from rest_framework.test import APIClient

from annotate.models import Item, Label, Project
from tests.factories import PASSWORD, UserFactory

pytestmark = pytest.mark.django_db

NUL = "na\x00me"


def test_logins_with_a_nul_byte_in_the_username_are_refused_not_500():
    UserFactory(username="name")
    client = Client(raise_request_exception=False)
    for url in ("/accounts/login/", "/admin/login/"):
        response = client.post(url, {"username": NUL, "password": PASSWORD})
        assert response.status_code in (200, 400), (url, response.status_code)
        assert "_auth_user_id" not in client.session
    api = APIClient(raise_request_exception=False)
    response = api.post("/api/auth/token/", {"username": NUL, "password": PASSWORD}, format="json")
    assert response.status_code == 400, response.content
    assert "username" in response.json(), response.json()


def test_project_and_label_fields_with_a_nul_byte_name_the_field(lead_api_empty):
    project, client = lead_api_empty
    response = client.post(
        "/api/projects/", {"name": NUL, "task_type": "text_classification", "labels": ["a"]}, format="json"
    )
    assert response.json() == {
        "detail": "JSON body, name: contains a NUL character (\\u0000), which is not accepted"
    }
    response = client.patch(f"/api/projects/{project.pk}/", {"instructions": "x\x00"}, format="json")
    assert response.status_code == 400 and "JSON body, instructions: " in response.json()["detail"]
    response = client.post(f"/api/projects/{project.pk}/labels/", {"name": NUL}, format="json")
    assert response.status_code == 400 and "JSON body, name: " in response.json()["detail"]
    assert Label.objects.filter(project=project).count() == 2 and Project.objects.count() == 1


@pytest.mark.parametrize(
    ("filename", "body", "where"),
    [
        ("rows.jsonl", b'{"text": "fine"}\n{"text": "bad \\u0000 text"}\n', "line 2"),
        ("rows.csv", b"text\nfine\nbad \x00 text\n", "line 3"),
        ("rows.json", b'[{"text": "fine"}, {"text": "ok", "meta": {"k\\u0000": 1}}]', "item 2"),
    ],
)
def test_an_import_with_a_nul_byte_fails_whole_naming_the_row(lead_api_empty, filename, body, where):
    project, client = lead_api_empty
    upload = io.BytesIO(body)
    upload.name = filename
    response = client.post(f"/api/projects/{project.pk}/imports/", {"file": upload}, format="multipart")
    assert response.status_code in (200, 201, 202, 400), response.content
    text = response.content.decode()
    if response.status_code != 400:  # a job: it failed, and says where
        job = client.get(f"/api/projects/{project.pk}/imports/{response.json()['id']}/").json()
        assert job["status"] == "failed", job
        text = str(job)
    assert "NUL character" in text or "Null characters are not allowed" in text, text
    assert f"{filename}, {where}" in text, text
    assert not Item.objects.filter(project=project).exists()


def test_a_json_body_with_a_nul_byte_anywhere_is_a_400_saying_where(lead_api_empty):
    project, client = lead_api_empty
    response = client.post(
        f"/api/projects/{project.pk}/items/",
        {"items": [{"text": "fine", "metadata": {"source": ["ok", "bad\x00"]}}]},
        format="json",
    )
    assert response.status_code == 400, response.content
    assert "items[0].metadata.source[1]: contains a NUL character" in response.json()["detail"], (
        response.json()
    )
    assert not Item.objects.exists()
