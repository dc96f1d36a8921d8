"""Items created from a JSON body (POST /api/projects/{id}/items/): the import's row rules and writer."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from rest_framework.test import APIClient

from annotate.importing import ImportRejected, import_jsonl
from annotate.items import item_create_bulk
from annotate.models import Item, Membership, Project
from tests.annotate.uploads import file
from tests.factories import make_project

pytestmark = pytest.mark.django_db


def _post(project, rows):
    client = APIClient()
    client.force_authenticate(project.memberships.get(role=Membership.Role.MANAGER).user)
    return client.post(
        reverse("api:item-list", kwargs={"project_id": project.pk}), {"items": rows}, format="json"
    )


def test_text_items_are_refused_by_an_image_project_as_an_import_of_text_would_be():
    project = make_project(name="Digits", labels=["3"], task_type=Project.TaskType.IMAGE_CLASSIFICATION)

    response = _post(project, [{"text": "not an image", "external_id": "a"}])

    assert response.status_code == 400
    assert response.json()["detail"] == (
        "project 'Digits' is an image classification project: import images (image files or a zip)"
        " into it, not text items"
    )
    assert not project.items.exists()


def test_a_text_with_a_nul_character_is_refused_naming_its_row_and_field():
    project = make_project()

    response = _post(project, [{"text": "fine"}, {"text": "nul \x00 inside"}])

    assert response.status_code == 400
    # The API's JSON parser refuses it first (annotate/api/parsers.py); an import file's row rule
    # says the same of a file (tests/annotate/test_nul_bytes.py).
    assert response.json()["detail"] == (
        "JSON body, items[1].text: contains a NUL character (\\u0000), which is not accepted"
    )
    assert not project.items.exists()


def test_an_external_id_with_a_nul_character_is_refused_naming_its_row_and_field():
    project = make_project()

    response = _post(project, [{"text": "fine", "external_id": "a\x00b"}])

    assert response.status_code == 400
    assert response.json()["detail"] == (
        "JSON body, items[0].external_id: contains a NUL character (\\u0000), which is not accepted"
    )
    assert not project.items.exists()


@pytest.mark.parametrize(
    ("row", "message"),
    [
        ("text", "items, row 1: expected an object, not a string"),
        ({"txt": "x"}, "items, row 1: no field 'text'; its fields are: txt"),
        ({"text": 5}, "items, row 1, field 'text': expected a string, not a number"),
        ({"text": "x", "label": "positive"}, "items, row 1, field 'label': unknown field"),
        ({"text": "x", "metadata": [1]}, "items, row 1, field 'metadata': expected an object, not a list"),
        ({"text": "x", "external_id": "  "}, "items, row 1, field 'external_id': the id is empty"),
        (
            {"text": "x", "external_id": "x" * 256},
            "items, row 1, field 'external_id': the id is longer than 255",
        ),
    ],
)
def test_a_bad_row_is_refused_with_the_message_the_import_gives(row, message):
    project = make_project()

    with pytest.raises(ImportRejected) as refused:
        item_create_bulk(project=project, rows=[row])

    assert str(refused.value).startswith(message)
    assert not project.items.exists()


def test_an_id_already_in_the_project_is_refused_naming_its_row():
    project = make_project(items=1)

    with pytest.raises(
        ImportRejected, match=r"^items, row 2, field 'external_id': an item with id 't0' already"
    ):
        item_create_bulk(
            project=project, rows=[{"text": "new", "external_id": "t9"}, {"text": "b", "external_id": "t0"}]
        )

    assert list(project.items.values_list("external_id", flat=True)) == ["t0"]


def test_rows_from_a_json_body_are_stored_as_the_same_rows_imported_from_a_file():
    body, imported = make_project(), make_project()
    rows = [
        {"text": "first\r\nline", "external_id": 7, "metadata": {"lang": "en", "n": [1, 2]}},
        {"text": "second", "external_id": " b "},
    ]
    jsonl = (
        '{"id": 7, "text": "first\\r\\nline", "lang": "en", "n": [1, 2]}\n{"id": " b ", "text": "second"}\n'
    )

    created = item_create_bulk(project=body, rows=rows)
    import_jsonl(project=imported, file=file(jsonl), filename="same.jsonl")

    fields = ("external_id", "text", "metadata", "proposal", "annotation_count", "is_complete")
    assert created.items_created == 2
    assert list(body.items.order_by("id").values_list(*fields)) == list(
        imported.items.order_by("id").values_list(*fields)
    )
    # A body keeps its order in the queue; a file's rows get random priorities (the cold start).
    assert set(body.items.values_list("priority", flat=True)) == {0.0}
    assert all(0 <= p < 1 for p in imported.items.values_list("priority", flat=True))


def test_a_row_without_an_external_id_gets_a_random_one():
    project = make_project()

    item_create_bulk(project=project, rows=[{"text": "a"}, {"text": "b"}])

    ids = list(project.items.values_list("external_id", flat=True))
    assert len(set(ids)) == 2 and all(len(external_id) == 32 for external_id in ids)


@pytest.mark.postgres_only
def test_on_postgresql_a_json_body_is_written_with_copy_as_a_file_import_is():
    project = make_project()

    with CaptureQueriesContext(connection) as queries:
        response = _post(project, [{"text": f"row {n}", "external_id": f"r{n}"} for n in range(2100)])

    assert response.status_code == 201 and response.json() == {"created": 2100}
    assert not [
        q for q in queries.captured_queries if q["sql"].startswith(f'INSERT INTO "{Item._meta.db_table}"')
    ]
    assert project.items.count() == 2100
