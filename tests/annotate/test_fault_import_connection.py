"""Fault: the import's database connection is terminated mid-import (issue 17, item 8).

At the fault point `import.batch_written` (annotate/importing/writer.py: a batch has been sent,
inside the import's transaction, before its commit), a second connection runs
`pg_terminate_backend` on the connection that wrote it (on PostgreSQL the batches go in over
COPY from a second thread, over the same connection). What protects the import: the whole import
is one transaction, so the server rolls it back when its connection dies; the writer turns the
lost connection into ImportRejected with a message that says so (not "refused", not a 500), and
the job is finished over a fresh connection with its upload deleted. A job stuck "running", a
500, a partial import or an upload left behind each fail these tests.
"""

import io

import psycopg
import pytest
from django.db import connection
from django.urls import reverse
from rest_framework.test import APIClient

from annotate import importing
from annotate.faults import fault_hooked
from annotate.importing import jobs as import_jobs
from annotate.models import ImportJob, Item, Membership
from tests.factories import make_project
from tests.workers import database_url

# PostgreSQL only (deselected on SQLite, which has no server connection to terminate).
pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.postgres_only]

LOST = "the database connection was lost during the import; nothing was imported"
CSV = "id,text\n" + "".join(f"r{i},review number {i}\n" for i in range(30))


@pytest.fixture
def postgres():
    assert connection.vendor == "postgresql", "pg_terminate_backend needs PostgreSQL"


def _terminate_the_writer(*, connection, rows):
    """Terminate the backend of the connection that wrote the batch, from a second connection."""
    pid = connection.connection.info.backend_pid
    with psycopg.connect(database_url(), autocommit=True) as other:
        # The timeout makes the call wait until the backend has exited (PostgreSQL 14+).
        (terminated,) = other.execute("SELECT pg_terminate_backend(%s, 10000)", [pid]).fetchone()
    assert terminated, f"backend {pid} was not terminated"
    terminated_pids.append(pid)


terminated_pids: list[int] = []


def _stored_uploads(settings) -> list:
    folder = settings.MEDIA_ROOT / "imports"
    return [p for p in folder.rglob("*") if p.is_file()] if folder.exists() else []


def _lead_client(project) -> APIClient:
    client = APIClient()
    client.force_authenticate(project.memberships.get(role=Membership.Role.MANAGER).user)
    return client


def _post(client, project):
    upload = io.BytesIO(CSV.encode())
    upload.name = "reviews.csv"
    return client.post(
        reverse("api:import-list", kwargs={"project_id": project.pk}),
        {"file": [upload], "text_column": "text", "id_column": "id"},
        format="multipart",
    )


def test_a_connection_terminated_mid_import_through_the_api_fails_it_whole_and_says_so(postgres, settings):
    project = make_project()
    client = _lead_client(project)
    terminated_pids.clear()
    with fault_hooked("import.batch_written", _terminate_the_writer):
        response = _post(client, project)
    assert len(terminated_pids) == 1
    assert response.status_code == 400, response.content
    body = response.json()
    assert body["status"] == "failed"
    assert LOST in body["error"], body["error"]
    job = ImportJob.objects.get(pk=body["id"])
    assert (job.status, job.upload.name, job.items_created) == ("failed", "", 0)
    assert not Item.objects.filter(project=project).exists()
    assert not _stored_uploads(settings)

    again = _post(client, project)
    assert again.status_code == 201, again.content
    assert again.json()["status"] == "succeeded"
    assert Item.objects.filter(project=project).count() == 30


def test_a_connection_terminated_mid_import_job_fails_the_job_whole_and_says_so(
    postgres, settings, monkeypatch
):
    """The background path: the job a worker runs (item_import_run_job), not dispatched here."""
    monkeypatch.setattr(import_jobs, "SYNC_ROW_LIMIT", 10)
    dispatched = []
    monkeypatch.setattr(import_jobs.tasks.item_import_run, "delay_on_commit", dispatched.append)
    project = make_project()
    start = dict(project=project, files=[("reviews.csv", io.BytesIO(CSV.encode()))], format="csv",
                 options={"text_column": "text", "id_column": "id"})  # fmt: skip
    queued = importing.item_import_start(**start)
    assert (queued.status, dispatched) == ("queued", [queued.pk])
    assert _stored_uploads(settings)
    terminated_pids.clear()
    with fault_hooked("import.batch_written", _terminate_the_writer):
        job = import_jobs.item_import_run_job(job_id=queued.pk)
    assert len(terminated_pids) == 1
    job.refresh_from_db()
    assert job.status == "failed"
    assert LOST in job.error, job.error
    assert (job.upload.name, job.items_created) == ("", 0)
    assert not Item.objects.filter(project=project).exists()
    assert not _stored_uploads(settings)

    retry = importing.item_import_start(**{**start, "files": [("reviews.csv", io.BytesIO(CSV.encode()))]})
    retry = import_jobs.item_import_run_job(job_id=retry.pk)
    assert (retry.status, retry.items_created) == ("succeeded", 30), retry.error
    assert Item.objects.filter(project=project).count() == 30
