import csv
import io
import json
import zipfile

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse
from PIL import Image
from rest_framework.test import APIClient

from annotate import exporting, importing
from annotate.importing import jobs as import_jobs
from annotate.models import Annotation, ExportJob, ImportJob, Item, Membership, Project
from annotate.queue import annotation_submit, assignment_next
from tests.factories import UserFactory, make_project

pytestmark = pytest.mark.django_db

HEADER = ["id", "text", "label"]


def _client(user) -> APIClient:
    client = APIClient()
    client.force_authenticate(user)
    return client


def _url(name: str, project: Project, **kwargs) -> str:
    return reverse(f"api:{name}", kwargs={"project_id": project.pk, **kwargs})


def _csv(rows, name="reviews.csv") -> SimpleUploadedFile:
    buffer = io.StringIO()
    csv.writer(buffer).writerows([HEADER, *rows])
    return SimpleUploadedFile(name, buffer.getvalue().encode(), content_type="text/csv")


def _png(width: int, height: int, colour: str) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), colour).save(buffer, format="PNG")
    return buffer.getvalue()


def _import(client, project, **fields):
    return client.post(_url("import-list", project), fields, format="multipart")


def _body(response) -> str:
    return b"".join(response.streaming_content).decode()


@pytest.fixture
def annotator():
    return UserFactory()


@pytest.fixture
def project(annotator):
    """Three text items, one of them labeled by the annotator."""
    project = make_project(items=3, members=[(annotator, Membership.Role.ANNOTATOR)])
    lease = assignment_next(project=project, annotator=annotator)
    annotation_submit(
        project=project, item_id=lease.item.pk, annotator=annotator, value={"choices": ["positive"]}
    )
    return project


@pytest.fixture
def manager(project):
    return project.memberships.get(role=Membership.Role.MANAGER).user


# Import ----------------------------------------------------------------------------------


def test_manager_imports_a_csv_with_a_label_column_as_items_and_annotations(manager, project):
    upload = _csv([["a", "Great film", "positive"], ["b", "Dull, and long", ""]])
    response = _import(_client(manager), project, file=upload, id_column="id", label_column="label")
    assert response.status_code == 201
    job = response.json()
    assert (job["status"], job["items_created"], job["rows_total"], job["error"]) == ("succeeded", 2, 2, "")
    assert job["url"] == _url("import-detail", project, job_id=job["id"])
    items = dict(
        Item.objects.filter(project=project, external_id__in=["a", "b"]).values_list("external_id", "text")
    )
    assert items == {"a": "Great film", "b": "Dull, and long"}
    imported = Annotation.objects.get(project=project, source="import")
    assert (imported.item.external_id, imported.value, imported.annotator.username) == (
        "a",
        {"choices": ["positive"]},
        "source:import",
    )


def test_an_import_takes_the_format_and_label_source_given(manager, project):
    upload = SimpleUploadedFile("data.txt", b'[{"text": "Fine", "label": "negative"}]')
    response = _import(_client(manager), project, file=upload, format="json", label_source="vendor")
    assert response.status_code == 201
    assert Annotation.objects.get(project=project, source="vendor").value == {"choices": ["negative"]}


def test_an_import_whose_format_cannot_be_told_from_the_name_is_refused_naming_format(manager, project):
    response = _import(_client(manager), project, file=SimpleUploadedFile("data.bin", b"text\nhello\n"))
    assert response.status_code == 400
    assert "data.bin" in response.json()["format"][0]
    assert not ImportJob.objects.exists()


def test_several_files_are_refused_unless_the_format_is_images(manager, project):
    files = [_csv([["a", "One", ""]]), _csv([["b", "Two", ""]], name="more.csv")]
    response = _import(_client(manager), project, file=files)
    assert response.status_code == 400
    assert "file" in response.json()
    assert project.items.count() == 3


def test_manager_imports_a_zip_of_two_png_images_as_image_items_with_their_size():
    project = make_project(task_type=Project.TaskType.IMAGE_CLASSIFICATION, labels=["cat", "dog"])
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as zipped:
        zipped.writestr("pets/cat.png", _png(40, 30, "red"))
        zipped.writestr("pets/dog.png", _png(20, 50, "blue"))
    upload = SimpleUploadedFile("pets.zip", archive.getvalue(), content_type="application/zip")
    manager = project.memberships.get(role=Membership.Role.MANAGER).user
    response = _import(_client(manager), project, file=upload)
    assert response.status_code == 201
    assert response.json()["items_created"] == 2
    items = {item.external_id: item for item in Item.objects.filter(project=project)}
    assert {name: (i.width, i.height) for name, i in items.items()} == {
        "pets/cat.png": (40, 30),
        "pets/dog.png": (20, 50),
    }
    with items["pets/dog.png"].image.open("rb") as stored:
        assert Image.open(stored).size == (20, 50)


def test_manager_imports_several_image_files_as_one_upload():
    project = make_project(task_type=Project.TaskType.IMAGE_CLASSIFICATION, labels=["cat", "dog"])
    files = [
        SimpleUploadedFile("one.png", _png(8, 6, "green"), content_type="image/png"),
        SimpleUploadedFile("two.png", _png(6, 8, "white"), content_type="image/png"),
    ]
    manager = project.memberships.get(role=Membership.Role.MANAGER).user
    response = _import(_client(manager), project, file=files, format="images")
    assert response.status_code == 201
    sizes = dict(
        Item.objects.filter(project=project).values_list("external_id", "width").order_by("external_id")
    )
    assert sizes == {"one.png": 8, "two.png": 6}


def test_a_bad_csv_is_refused_with_400_naming_the_line_and_field_and_stores_nothing(
    manager, project, settings
):
    upload = _csv([["a", "Fine", "positive"], ["b", "Meh", "meh"]])
    response = _import(_client(manager), project, file=upload, id_column="id", label_column="label")
    assert response.status_code == 400
    job = response.json()
    assert job["status"] == "failed" and job["items_created"] == 0
    assert "reviews.csv, line 3, field 'label': unknown label 'meh'" in job["error"]
    assert project.items.count() == 3
    assert not Annotation.objects.filter(source="import").exists()
    # The upload is not kept once the job has ended.
    assert not list((settings.MEDIA_ROOT / "imports").glob("*"))


def test_a_big_import_is_queued_and_its_job_reports_the_result(
    manager, project, monkeypatch, django_capture_on_commit_callbacks
):
    monkeypatch.setattr(import_jobs, "SYNC_ROW_LIMIT", 2)
    client = _client(manager)
    with django_capture_on_commit_callbacks() as callbacks:
        response = _import(client, project, file=_csv([[f"r{i}", f"text {i}", ""] for i in range(5)]))
    assert response.status_code == 201
    assert response.json()["status"] == "queued"
    assert len(callbacks) == 1
    importing.item_import_run_job(job_id=response.json()["id"])
    job = client.get(response.json()["url"]).json()
    assert (job["status"], job["progress"], job["items_created"]) == ("succeeded", 100, 5)


def test_an_import_job_of_another_project_is_not_found(manager, project):
    other = make_project()
    job = ImportJob.objects.create(project=other, format="csv", filename="x.csv")
    response = _client(manager).get(_url("import-detail", project, job_id=job.pk))
    assert response.status_code == 404


# Export ----------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["json", "jsonl", "csv"])
def test_export_streams_every_item_in_each_format(manager, project, fmt):
    response = _client(manager).get(_url("export", project), {"format": fmt})
    assert response.status_code == 200 and response.streaming
    assert response["Content-Type"] == f"{exporting.CONTENT_TYPES[fmt]}; charset=utf-8"
    assert response["Content-Disposition"].startswith("attachment;")
    assert response["Content-Disposition"].endswith(f'.{fmt}"')
    body = _body(response)
    if fmt == "json":
        ids = [record["external_id"] for record in json.loads(body)]
    elif fmt == "jsonl":
        ids = [json.loads(line)["external_id"] for line in body.splitlines()]
    else:
        ids = [row["external_id"] for row in csv.DictReader(io.StringIO(body))]
    assert ids == ["t0", "t1", "t2"]


def test_export_of_labeled_items_only_leaves_the_others_out(manager, project):
    response = _client(manager).get(_url("export", project), {"format": "jsonl", "labeled_only": "1"})
    records = [json.loads(line) for line in _body(response).splitlines()]
    assert [r["annotations"][0]["value"] for r in records] == [{"choices": ["positive"]}]


def test_export_streams_even_when_the_client_accepts_only_the_files_type(manager, project):
    response = _client(manager).get(_url("export", project), {"format": "csv"}, HTTP_ACCEPT="text/csv")
    assert response.status_code == 200
    assert len(list(csv.DictReader(io.StringIO(_body(response))))) == 3


def test_export_refuses_an_unknown_format(manager, project):
    response = _client(manager).get(_url("export", project), {"format": "xml"})
    assert response.status_code == 400
    assert "format" in response.json()


def test_background_export_writes_a_file_that_holds_every_item(
    manager, project, django_capture_on_commit_callbacks
):
    client = _client(manager)
    with django_capture_on_commit_callbacks() as callbacks:
        response = client.post(_url("export-list", project), {"format": "csv"}, format="json")
    assert response.status_code == 202
    job = response.json()
    assert (job["status"], job["download_url"]) == ("queued", None)
    assert response["Location"] == job["url"] == _url("export-detail", project, job_id=job["id"])
    assert len(callbacks) == 1
    download_url = _url("export-download", project, job_id=job["id"])
    assert client.get(download_url).status_code == 404

    exporting.item_export_run_job(job_id=job["id"])

    job = client.get(job["url"]).json()
    assert (job["status"], job["progress"], job["items_written"]) == ("succeeded", 100, 3)
    assert job["download_url"] == download_url
    download = client.get(download_url)
    assert download.status_code == 200
    assert download["Content-Disposition"].startswith("attachment;")
    rows = list(csv.DictReader(io.StringIO(_body(download))))
    assert [row["external_id"] for row in rows] == ["t0", "t1", "t2"]


def test_export_of_a_project_above_the_stream_limit_answers_with_a_job(
    manager, project, settings, django_capture_on_commit_callbacks
):
    settings.LABELLOOP_EXPORT_STREAM_MAX_ITEMS = 1
    with django_capture_on_commit_callbacks() as callbacks:
        response = _client(manager).get(_url("export", project), {"format": "jsonl", "labeled_only": "true"})
    assert response.status_code == 303 and not response.streaming
    job = ExportJob.objects.get(project=project)
    assert (job.format, job.labeled_only, job.created_by) == ("jsonl", True, manager)
    assert response["Location"] == response.json()["url"] == _url("export-detail", project, job_id=job.pk)
    assert len(callbacks) == 1


@pytest.fixture
def image_project_with_a_member():
    """An image project holding one PNG (imported through the API), and an annotator of it."""
    member = UserFactory()
    project = make_project(
        task_type=Project.TaskType.IMAGE_CLASSIFICATION,
        labels=["cat", "dog"],
        members=[(member, Membership.Role.ANNOTATOR)],
    )
    manager = project.memberships.get(role=Membership.Role.MANAGER).user
    upload = SimpleUploadedFile("cat.png", _png(6, 4, "red"), content_type="image/png")
    assert _import(_client(manager), project, file=upload).status_code == 201
    return project, manager, member


def _fetch_as(user, url: str, client) -> tuple[int, bytes]:
    client.force_login(user)
    response = client.get(url)
    return response.status_code, b"".join(
        response.streaming_content
    ) if response.streaming else response.content


@pytest.mark.parametrize("fmt", ["jsonl", "csv"])
def test_an_exported_image_url_answers_a_logged_in_member_with_the_image(
    image_project_with_a_member, fmt, client
):
    project, manager, member = image_project_with_a_member
    body = _body(_client(manager).get(_url("export", project), {"format": fmt}))
    record = json.loads(body) if fmt == "jsonl" else next(csv.DictReader(io.StringIO(body)))
    item = Item.objects.get(project=project)
    assert record["image_url"] == "http://testserver" + reverse(
        "annotate:item-image", args=[project.pk, item.pk]
    )

    status, content = _fetch_as(member, record["image_url"], client)

    assert status == 200
    with item.image.open("rb") as stored:
        assert content == stored.read()
    assert Image.open(io.BytesIO(content)).size == (6, 4)


def test_an_exported_image_url_is_not_served_to_someone_outside_the_project(
    image_project_with_a_member, client
):
    project, manager, _ = image_project_with_a_member
    (record,) = json.loads(_body(_client(manager).get(_url("export", project), {"format": "json"})))
    assert _fetch_as(UserFactory(), record["image_url"], client)[0] == 404
    client.logout()
    assert client.get(record["image_url"]).status_code == 302  # to the login page


def test_a_background_export_carries_the_same_absolute_image_urls(
    image_project_with_a_member, client, django_capture_on_commit_callbacks
):
    project, manager, member = image_project_with_a_member
    streamed = _body(_client(manager).get(_url("export", project), {"format": "jsonl"}))
    with django_capture_on_commit_callbacks():
        job = _client(manager).post(_url("export-list", project), {"format": "jsonl"}, format="json").json()
    exporting.item_export_run_job(job_id=job["id"])

    stored = _body(_client(manager).get(_url("export-download", project, job_id=job["id"])))

    assert json.loads(stored)["image_url"] == json.loads(streamed)["image_url"]
    assert _fetch_as(member, json.loads(stored)["image_url"], client)[0] == 200


def test_an_export_job_of_another_project_is_not_found(manager, project):
    other = make_project(items=1)
    job = exporting.item_export_start(project=other, format="json")
    exporting.item_export_run_job(job_id=job.pk)
    client = _client(manager)
    assert client.get(_url("export-detail", project, job_id=job.pk)).status_code == 404
    assert client.get(_url("export-download", project, job_id=job.pk)).status_code == 404


# Who may -----------------------------------------------------------------------------------


def _endpoints(project: Project) -> dict:
    """(method, url, data, format) for every import and export endpoint; jobs are finished ones."""
    import_job = ImportJob.objects.create(project=project, format="csv", filename="x.csv", status="succeeded")
    export_job = exporting.item_export_run_job(
        job_id=exporting.item_export_start(project=project, format="json").pk
    )
    upload = _csv([["z", "Intruder", ""]])
    return {
        "import": ("post", _url("import-list", project), {"file": upload}, "multipart"),
        "import job": ("get", _url("import-detail", project, job_id=import_job.pk), None, None),
        "export": ("get", _url("export", project), {"format": "csv"}, None),
        "export start": ("post", _url("export-list", project), {"format": "csv"}, "json"),
        "export job": ("get", _url("export-detail", project, job_id=export_job.pk), None, None),
        "export download": ("get", _url("export-download", project, job_id=export_job.pk), None, None),
    }


ENDPOINT_NAMES = ["import", "import job", "export", "export start", "export job", "export download"]


def _request(user, endpoint):
    method, url, data, fmt = endpoint
    return getattr(_client(user), method)(url, data, format=fmt)


def _unchanged(project) -> bool:
    return project.items.count() == 3 and ImportJob.objects.count() == 1 and ExportJob.objects.count() == 1


@pytest.mark.parametrize("name", ENDPOINT_NAMES)
def test_a_non_member_gets_404_on_every_import_and_export_endpoint(project, name):
    endpoint = _endpoints(project)[name]
    response = _request(UserFactory(), endpoint)
    assert response.status_code == 404
    assert b"text number" not in response.content
    assert _unchanged(project)


@pytest.mark.parametrize("name", ENDPOINT_NAMES)
@pytest.mark.parametrize("role", [Membership.Role.ANNOTATOR, Membership.Role.REVIEWER])
def test_a_member_who_is_not_a_manager_gets_403_on_every_import_and_export_endpoint(
    project, annotator, name, role
):
    project.memberships.filter(user=annotator).update(role=role)
    response = _request(annotator, _endpoints(project)[name])
    assert response.status_code == 403
    assert _unchanged(project)


@pytest.mark.parametrize("name", ["export", "export download"])
def test_an_annotator_cannot_reach_a_file_with_head_either(project, annotator, name):
    _, url, data, _ = _endpoints(project)[name]
    assert _client(annotator).head(url, data).status_code == 403


@pytest.mark.django_db
def test_the_export_api_limits_to_reviewed_items():
    from annotate.queue import annotation_submit, assignment_next
    from annotate.review import review_decide
    from tests.factories import UserFactory, make_project

    annotator, reviewer, manager = UserFactory(), UserFactory(), UserFactory()
    project = make_project(
        items=2, overlap=1, members=[(annotator, "annotator"), (reviewer, "reviewer"), (manager, "manager")]
    )
    for _ in range(2):
        lease = assignment_next(project=project, annotator=annotator)
        annotation_submit(
            project=project, item_id=lease.item.pk, annotator=annotator, value={"choices": ["positive"]}
        )
    first = project.items.order_by("id").first()
    review_decide(
        project=project, item_id=first.pk, reviewer=reviewer, decision="correct", supersedes=None,
        value={"choices": ["negative"]},
    )  # fmt: skip
    response = _client(manager).get(_url("export", project), {"format": "jsonl", "reviewed_only": "true"})
    assert response.status_code == 200
    records = [json.loads(line) for line in b"".join(response.streaming_content).decode().splitlines()]
    assert [(r["id"], r["final_label"]) for r in records] == [
        (first.pk, {"value": {"choices": ["negative"]}, "source": "review"})
    ]
