"""Import formats and options are validated once (importing.import_options_validate): the API, the
page, the command and the service refuse the same upload with the same message."""

import io

import pytest
from django.core.exceptions import ValidationError
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import CommandError, call_command
from django.urls import reverse
from rest_framework.test import APIClient

from annotate.importing import import_options_validate, item_import, item_import_start
from annotate.models import ImportJob, Membership
from tests.factories import make_project

pytestmark = pytest.mark.django_db

COLUMNS_FOR_ZIP = "format 'zip' takes no column options; only csv, json, jsonl do"


@pytest.mark.parametrize(
    ("format", "options", "names", "expected"),
    [
        ("", {"label_source": ""}, ["a.TSV"], ("csv", {})),
        (None, {"id_column": None}, ["x/y.jpeg", "z.png"], ("images", {})),
        (
            "csv",
            {"text_column": "body", "label_source": "vendor"},
            ["a.csv"],
            ("csv", {"text_column": "body", "label_source": "vendor"}),
        ),
        ("zip", {"label_source": "import"}, ["a.zip"], ("zip", {"label_source": "import"})),
    ],
)
def test_the_format_is_told_from_the_name_and_empty_options_are_dropped(format, options, names, expected):
    assert import_options_validate(format=format, options=options, filenames=names) == expected


@pytest.mark.parametrize(
    ("format", "options", "names", "field", "message"),
    [
        (
            "",
            {},
            ["data.bin"],
            "format",
            "cannot tell the format from the name 'data.bin'; give one of: csv,",
        ),
        ("xml", {}, ["a.xml"], "format", "unknown import format 'xml'; choose one of: csv,"),
        ("csv", {}, ["a.csv", "b.csv"], "file", 'only the format "images" takes several files'),
        (
            "csv",
            {"colour": "x"},
            ["a.csv"],
            "colour",
            "unknown import option 'colour'; known: gold_column, id_column,",
        ),
        ("zip", {"id_column": "id"}, ["a.zip"], "id_column", COLUMNS_FOR_ZIP),
        ("text", {"text_column": "body"}, ["a.txt"], "text_column", "format 'text' takes no column options"),
    ],
)
def test_a_bad_format_or_option_is_refused_naming_the_field(format, options, names, field, message):
    with pytest.raises(ValidationError) as refused:
        import_options_validate(format=format, options=options, filenames=names)
    assert list(refused.value.message_dict) == [field]
    assert refused.value.message_dict[field][0].startswith(message)


def _zip() -> SimpleUploadedFile:
    return SimpleUploadedFile("pets.zip", b"PK\x05\x06" + b"\x00" * 18, content_type="application/zip")


def test_the_api_the_page_the_command_and_the_services_give_one_message(client, tmp_path):
    project = make_project()
    manager = project.memberships.get(role=Membership.Role.MANAGER).user
    api = APIClient()
    api.force_authenticate(manager)
    client.force_login(manager)

    answered = api.post(
        reverse("api:import-list", kwargs={"project_id": project.pk}),
        {"file": _zip(), "id_column": "id"},
        format="multipart",
    )
    page = client.post(
        reverse("annotate:import", args=[project.pk]),
        {
            "format": "zip",
            "files": _zip(),
            "id_column": "id",
            "text_column": "text",
            "label_source": "import",
        },
        HTTP_ACCEPT="application/json",
    )
    (tmp_path / "pets.zip").write_bytes(_zip().read())
    with pytest.raises(CommandError) as command:
        call_command(
            "import_items",
            str(project.pk),
            str(tmp_path / "pets.zip"),
            "--id-column",
            "id",
            stderr=io.StringIO(),
        )
    with pytest.raises(ValidationError) as service:
        item_import(
            project=project, file=_zip(), filename="pets.zip", format="zip", options={"id_column": "id"}
        )
    with pytest.raises(ValidationError) as start:
        item_import_start(project=project, files=[("pets.zip", _zip())], options={"id_column": "id"})

    assert (answered.status_code, answered.json()) == (400, {"id_column": [COLUMNS_FOR_ZIP]})
    assert (page.status_code, page.json()) == (400, {"status": "failed", "error": COLUMNS_FOR_ZIP})
    assert str(command.value) == COLUMNS_FOR_ZIP
    assert service.value.message_dict == start.value.message_dict == {"id_column": [COLUMNS_FOR_ZIP]}
    assert not ImportJob.objects.exists() and not project.items.exists()


def test_the_pages_own_defaults_are_not_options_for_a_format_without_columns(client):
    project = make_project()
    manager = project.memberships.get(role=Membership.Role.MANAGER).user
    client.force_login(manager)

    page = client.post(
        reverse("annotate:import", args=[project.pk]),
        {
            "format": "text",
            "files": SimpleUploadedFile("lines.txt", b"one\ntwo\n"),
            "text_column": "text",
            "label_source": "import",
        },
        HTTP_ACCEPT="application/json",
    )

    assert page.status_code == 201, page.json()
    assert sorted(project.items.values_list("text", flat=True)) == ["one", "two"]
