import csv
import io
import json
import zipfile

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from annotate import importing
from annotate.models import Annotation, ExportJob, ImportJob, Item, Membership
from annotate.queue import annotation_submit, assignment_next
from tests.factories import UserFactory, make_project

pytestmark = pytest.mark.django_db


@pytest.fixture
def annotator():
    return UserFactory()


@pytest.fixture
def project(annotator):
    return make_project(items=3, members=[(annotator, "annotator")], instructions="Read **carefully**.")


@pytest.fixture
def manager(project):
    return project.memberships.get(role="manager").user


def _csv(rows):
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["id", "text", "label"])
    writer.writerows(rows)
    return SimpleUploadedFile("reviews.csv", buffer.getvalue().encode(), content_type="text/csv")


def test_login_page_renders_and_home_requires_login(client):
    response = client.get(reverse("annotate:home"))
    assert response.status_code == 302 and "/accounts/login/" in response["Location"]
    assert client.get("/accounts/login/").status_code == 200


def test_home_lists_my_projects_with_progress_and_not_others(client, annotator, project):
    other = make_project(name="Secret project")
    client.force_login(annotator)
    response = client.get(reverse("annotate:home"))
    assert response.status_code == 200
    assert "annotate/home.html" in [t.name for t in response.templates]
    assert project.name in response.text and other.name not in response.text
    assert "0 of 3 items done" in response.text


def test_home_counts_progress_in_the_same_queries_for_one_project_or_five(client):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    user = UserFactory()
    client.force_login(user)
    first = make_project(items=4, members=[(user, Membership.Role.ANNOTATOR)])
    lease = assignment_next(project=first, annotator=user)
    annotation_submit(project=first, item_id=lease.item.pk, annotator=user, value={"choices": ["positive"]})
    with CaptureQueriesContext(connection) as one:
        assert "you labeled 1" in client.get(reverse("annotate:home")).text
    for n in range(4):
        make_project(items=n + 1, members=[(user, Membership.Role.ANNOTATOR)])
    with CaptureQueriesContext(connection) as five:
        page = client.get(reverse("annotate:home")).text
    assert page.count("project-card") == 5 and "0 of 4 items done" in page and "0 of 3 items done" in page
    assert len(five.captured_queries) == len(one.captured_queries)


def test_project_page_shows_progress_and_members_to_the_manager(client, manager, annotator, project):
    lease = assignment_next(project=project, annotator=annotator)
    annotation_submit(
        project=project, item_id=lease.item.pk, annotator=annotator, value={"choices": ["positive"]}
    )
    client.force_login(manager)
    response = client.get(reverse("annotate:project", args=[project.pk]))
    assert response.status_code == 200
    assert annotator.username in response.text
    assert reverse("annotate:import", args=[project.pk]) in response.text
    assert response.context["progress"]["complete"] == 1


def test_annotator_sees_no_member_list_nor_import_link(client, annotator, project):
    client.force_login(annotator)
    response = client.get(reverse("annotate:project", args=[project.pk]))
    assert response.status_code == 200
    assert response.context["members"] is None
    assert reverse("annotate:import", args=[project.pk]) not in response.text


def test_label_page_renders_sanitised_instructions_and_the_labels(client, annotator):
    project = make_project(
        members=[(annotator, "annotator")],
        instructions="Be **kind**. <script>alert(1)</script><img src=x onerror=alert(2)>",
    )
    client.force_login(annotator)
    response = client.get(reverse("annotate:label", args=[project.pk]))
    assert response.status_code == 200
    assert "<strong>kind</strong>" in response.text
    assert "<script>alert(1)" not in response.text and "onerror" not in response.text
    config = response.context["config"]
    assert [label["hotkey"] for label in config["labels"]] == ["1", "2"]


@pytest.mark.parametrize("name", ["annotate:project", "annotate:label", "annotate:import", "annotate:export"])
def test_every_project_page_is_404_to_a_non_member(client, project, name):
    client.force_login(UserFactory())
    response = client.get(reverse(name, args=[project.pk]))
    assert response.status_code == 404
    assert project.name not in response.text


@pytest.mark.parametrize("name", ["annotate:import", "annotate:export"])
def test_import_and_export_are_403_to_an_annotator_and_404_to_a_stranger(client, annotator, project, name):
    client.force_login(annotator)
    assert client.get(reverse(name, args=[project.pk])).status_code == 403
    other = make_project(items=1)
    assert client.get(reverse(name, args=[other.pk])).status_code == 404


def test_job_pages_of_another_project_are_404(client, manager, project):
    other = make_project(items=1)
    job = ExportJob.objects.create(project=other, format="json")
    client.force_login(manager)
    assert client.get(reverse("annotate:export-job", args=[project.pk, job.pk])).status_code == 404
    assert client.get(reverse("annotate:export-job", args=[other.pk, job.pk])).status_code == 404


def test_import_page_imports_a_csv_with_labels(client, manager, project):
    client.force_login(manager)
    upload = _csv([["a", "Great film", "positive"], ["b", "Dull", ""]])
    response = client.post(
        reverse("annotate:import", args=[project.pk]),
        {"format": "csv", "files": upload, "text_column": "text", "id_column": "id",
         "label_column": "label", "label_source": "import"},
    )  # fmt: skip
    assert response.status_code == 302
    assert set(
        Item.objects.filter(project=project, external_id__in=["a", "b"]).values_list("text", flat=True)
    ) == {
        "Great film",
        "Dull",
    }
    assert Annotation.objects.get(project=project, source="import").value == {"choices": ["positive"]}


def test_import_page_answers_the_script_with_json(client, manager, project):
    client.force_login(manager)
    response = client.post(
        reverse("annotate:import", args=[project.pk]),
        {"format": "csv", "files": _csv([["a", "Fine", ""]]), "text_column": "text", "id_column": "id",
         "label_source": "import"},
        HTTP_ACCEPT="application/json",
    )  # fmt: skip
    assert response.status_code == 201
    assert response.json()["status"] == "succeeded" and response.json()["items_created"] == 1


def test_a_rejected_import_shows_the_error_and_stores_nothing(client, manager, project):
    client.force_login(manager)
    before = Item.objects.count()
    response = client.post(
        reverse("annotate:import", args=[project.pk]),
        {"format": "csv", "files": _csv([["a", "Fine", "meh"]]), "text_column": "text", "id_column": "id",
         "label_column": "label", "label_source": "import"},
    )  # fmt: skip
    assert response.status_code == 200
    assert "reviews.csv, line 2, field &#x27;label&#x27;: unknown label &#x27;meh&#x27;" in response.text
    assert Item.objects.count() == before


def test_a_big_import_runs_as_a_job_whose_page_shows_progress(
    client, manager, project, monkeypatch, django_capture_on_commit_callbacks
):
    monkeypatch.setattr(importing.jobs, "SYNC_ROW_LIMIT", 2)
    client.force_login(manager)
    rows = [[f"r{i}", f"text {i}", ""] for i in range(5)]
    with django_capture_on_commit_callbacks() as callbacks:
        response = client.post(
            reverse("annotate:import", args=[project.pk]),
            {"format": "csv", "files": _csv(rows), "text_column": "text", "id_column": "id",
             "label_source": "import"},
            HTTP_ACCEPT="application/json",
        )  # fmt: skip
    job = ImportJob.objects.get(project=project)
    assert response.status_code == 201 and response.json()["status"] == "queued"
    assert len(callbacks) == 1
    importing.item_import_run_job(job_id=job.pk)
    status = client.get(response.json()["url"], HTTP_ACCEPT="application/json").json()
    assert (status["status"], status["progress"], status["items_created"]) == ("succeeded", 100, 5)
    page = client.get(response.json()["url"], HTTP_HX_REQUEST="true")
    assert "Imported 5 items" in page.text


@pytest.mark.parametrize("fmt", ["json", "jsonl", "csv"])
def test_export_page_streams_every_item_in_each_format(client, manager, project, fmt):
    client.force_login(manager)
    response = client.get(reverse("annotate:export", args=[project.pk]), {"format": fmt})
    assert response.status_code == 200 and response.streaming
    body = b"".join(response.streaming_content).decode()
    assert f".{fmt}" in response["Content-Disposition"]
    if fmt == "json":
        assert len(json.loads(body)) == 3
    elif fmt == "jsonl":
        assert len(body.strip().splitlines()) == 3
    else:
        assert len(list(csv.DictReader(io.StringIO(body)))) == 3


def test_a_background_export_writes_a_file_the_manager_downloads(
    client, manager, project, settings, django_capture_on_commit_callbacks
):
    from annotate import exporting

    settings.LABELLOOP_EXPORT_STREAM_MAX_ITEMS = 1
    client.force_login(manager)
    with django_capture_on_commit_callbacks() as callbacks:
        response = client.get(reverse("annotate:export", args=[project.pk]), {"format": "jsonl"})
    job = ExportJob.objects.get(project=project)
    assert response.status_code == 302 and response["Location"].endswith(f"/exports/{job.pk}/")
    assert len(callbacks) == 1
    exporting.item_export_run_job(job_id=job.pk)
    page = client.get(response["Location"])
    assert "Download (3 items)" in page.text
    download = client.get(reverse("annotate:export-download", args=[project.pk, job.pk]))
    assert download.status_code == 200
    assert len(b"".join(download.streaming_content).decode().strip().splitlines()) == 3


def _image_project(annotator):
    from annotate.demo import digit_png, digits_arrays

    project = make_project(
        task_type="image_classification",
        labels=[str(n) for n in range(10)],
        members=[(annotator, "annotator")],
    )
    pixels, _ = digits_arrays()
    importing.import_images(project=project, files=[("digit-0.png", io.BytesIO(digit_png(pixels[0])))])
    return project


def test_item_image_is_served_to_members_only(client, annotator):
    project = _image_project(annotator)
    item = project.items.get()
    url = reverse("annotate:item-image", args=[project.pk, item.pk])
    client.force_login(annotator)
    response = client.get(url)
    assert response.status_code == 200
    assert b"".join(response.streaming_content).startswith(b"\x89PNG")
    client.force_login(UserFactory())
    assert client.get(url).status_code == 404
    other = make_project(items=1)
    assert client.get(reverse("annotate:item-image", args=[other.pk, item.pk])).status_code == 404


def test_import_page_imports_a_zip_of_images_with_the_forms_default_options(client, annotator):
    from PIL import Image

    project = _image_project(annotator)
    manager = project.memberships.get(role="manager").user
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for n in range(2):
            png = io.BytesIO()
            Image.new("L", (12, 10), 255).save(png, "PNG")
            archive.writestr(f"extra/img-{n}.png", png.getvalue())
    client.force_login(manager)
    response = client.post(
        reverse("annotate:import", args=[project.pk]),
        {"format": "zip", "files": SimpleUploadedFile("more.zip", buffer.getvalue()), "text_column": "text",
         "label_source": "import"},
    )  # fmt: skip
    assert response.status_code == 302
    assert sorted(project.items.filter(external_id__startswith="extra/").values_list("width", "height")) == [
        (12, 10),
        (12, 10),
    ]


def _supervisor_state(path, *, training_state, supervisor_alive=True):
    """A state file as config/supervisor.py writes it, its training worker in `training_state`; its
    supervisor this test process, or one that has exited."""
    import os
    import subprocess

    supervisor_pid = os.getpid()
    if not supervisor_alive:
        gone = subprocess.Popen(["true"])
        gone.wait()
        supervisor_pid = gone.pid
    worker = {"pid": None, "state": training_state, "restarts": 4, "fast_failures": 5}
    worker |= {"last_exit": "exit code 1", "log": "var/log/worker-training.log"}
    path.write_text(json.dumps({"supervisor_pid": supervisor_pid, "processes": {"training-worker": worker}}))


def test_project_page_says_training_is_unavailable_when_the_supervisor_gave_up_the_worker(
    client, manager, project, settings, tmp_path
):
    settings.LABELLOOP_SUPERVISOR_STATE = tmp_path / "supervisor.json"
    _supervisor_state(settings.LABELLOOP_SUPERVISOR_STATE, training_state="given up")
    client.force_login(manager)
    response = client.get(reverse("annotate:project", args=[project.pk]))
    assert response.status_code == 200
    assert (
        "Training is unavailable: the training worker stopped after 5 failed starts (last: exit code 1). "
        "See var/log/worker-training.log." in response.text
    )


@pytest.mark.parametrize("training_state", ["running", "restarting"])
def test_project_page_says_nothing_while_the_training_worker_runs_or_restarts(
    client, manager, project, settings, tmp_path, training_state
):
    settings.LABELLOOP_SUPERVISOR_STATE = tmp_path / "supervisor.json"
    _supervisor_state(settings.LABELLOOP_SUPERVISOR_STATE, training_state=training_state)
    client.force_login(manager)
    response = client.get(reverse("annotate:project", args=[project.pk]))
    assert response.status_code == 200 and "Training is unavailable" not in response.text


def test_project_page_ignores_the_state_of_a_supervisor_that_is_gone(
    client, manager, project, settings, tmp_path
):
    settings.LABELLOOP_SUPERVISOR_STATE = tmp_path / "supervisor.json"
    _supervisor_state(settings.LABELLOOP_SUPERVISOR_STATE, training_state="given up", supervisor_alive=False)
    client.force_login(manager)
    response = client.get(reverse("annotate:project", args=[project.pk]))
    assert response.status_code == 200 and "Training is unavailable" not in response.text


@pytest.mark.parametrize("content", [None, "{not json", '{"supervisor_pid": 1}'])
def test_project_page_says_nothing_without_a_readable_supervisor_state(
    client, manager, project, settings, tmp_path, content
):
    settings.LABELLOOP_SUPERVISOR_STATE = tmp_path / "supervisor.json"
    if content is not None:
        settings.LABELLOOP_SUPERVISOR_STATE.write_text(content)
    client.force_login(manager)
    response = client.get(reverse("annotate:project", args=[project.pk]))
    assert response.status_code == 200 and "Training is unavailable" not in response.text
