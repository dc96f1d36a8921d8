"""Import jobs: small uploads at once, big ones by a worker, progress, heartbeat and the sweeper."""

import threading
import time
from datetime import timedelta

import pytest
from django.core.files.storage import default_storage
from django.db import connections
from django.utils import timezone

from annotate import importing, tasks
from annotate.importing import item_import_run_job, item_import_start, jobs, writer
from annotate.jobs import ProgressConnection
from annotate.models import Annotation, ImportJob, Item
from tests.annotate import uploads
from tests.annotate.uploads import file, image, media_files, stored_counts, zip_of
from tests.factories import UserFactory, make_project

pytestmark = pytest.mark.django_db

project = uploads.project
image_project = uploads.image_project


def _start(project, data: str | bytes, *, filename="r.csv", format="csv", options=None):
    return item_import_start(
        project=project,
        files=[(filename, file(data))],
        format=format,
        options=options or {},
        created_by=UserFactory(),
    )


def test_small_upload_is_imported_at_once_and_the_finished_job_returned(project, settings):
    job = _start(project, "text,label\na,positive\nb,\n", options={"label_column": "label"})

    assert job.status == ImportJob.Status.SUCCEEDED
    assert (job.items_created, job.progress, job.rows_done, job.rows_total) == (2, 100, 2, 2)
    assert job.finished_at is not None and job.error == ""
    assert Item.objects.filter(project=project).count() == 2
    assert Annotation.objects.count() == 1
    assert media_files(settings) == []  # the upload is deleted once the job ends


def test_small_upload_that_is_rejected_returns_a_failed_job(project, settings):
    job = _start(project, "text\nok\n\xff\n".encode("latin-1"))

    assert job.status == ImportJob.Status.FAILED
    assert job.error == "r.csv, line 3: not UTF-8 (byte 0xff at column 1); save the file as UTF-8"
    assert Item.objects.count() == 0
    assert media_files(settings) == []


@pytest.fixture
def celery_eager(settings):
    settings.CELERY_TASK_ALWAYS_EAGER = True  # the Celery app reads Django's settings on each lookup


def test_big_upload_is_queued_and_dispatched_on_commit(
    project, settings, monkeypatch, django_capture_on_commit_callbacks, celery_eager
):
    monkeypatch.setattr(jobs, "SYNC_ROW_LIMIT", 3)
    data = "id,text\n" + "".join(f"r{n},text {n}\n" for n in range(5))

    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        job = _start(project, data)
    assert job.status == ImportJob.Status.QUEUED
    assert len(callbacks) == 1 and Item.objects.count() == 0
    assert job.upload.name.startswith("imports/") and len(media_files(settings)) == 1

    callbacks[0]()  # the commit: Celery runs the task (eagerly here)

    job.refresh_from_db()
    assert job.status == ImportJob.Status.SUCCEEDED
    assert (job.progress, job.rows_done, job.rows_total, job.items_created) == (100, 5, 5, 5)
    assert Item.objects.filter(project=project).count() == 5
    assert media_files(settings) == []


def test_a_big_file_of_few_rows_goes_to_the_worker_too(
    project, monkeypatch, django_capture_on_commit_callbacks
):
    """Issue 17, item 1: a file over SYNC_BYTE_LIMIT is never decoded in the web process, even with
    one row (a single 300 MB line once grew a web worker to 2 GB)."""
    monkeypatch.setattr(jobs, "SYNC_BYTE_LIMIT", 1000)
    data = "id,text\n" + f"r1,{'long ' * 400}\n"
    assert len(data) > 1000
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        job = _start(project, data)
    assert job.status == ImportJob.Status.QUEUED and len(callbacks) == 1
    assert Item.objects.count() == 0
    monkeypatch.setattr(jobs, "SYNC_BYTE_LIMIT", 10_000)
    assert _start(project, data).status == ImportJob.Status.SUCCEEDED  # under it: at once


@pytest.mark.postgres_only
@pytest.mark.django_db(transaction=True)
def test_job_writes_its_progress_to_the_row_as_it_goes(monkeypatch):
    project = make_project(labels=["positive", "negative"])
    monkeypatch.setattr(jobs, "SYNC_ROW_LIMIT", 10)
    monkeypatch.setattr(tasks.item_import_run, "delay_on_commit", lambda job_id: None)
    job = _start(project, "text\n" + "".join(f"text {n}\n" for n in range(2100)))
    written = []
    update = ProgressConnection.update
    monkeypatch.setattr(
        ProgressConnection,
        "update",
        lambda self, model, pk, **fields: written.append(fields) or update(self, model, pk, **fields),
    )

    item_import_run_job(job_id=job.id)

    heartbeats = [fields.pop("heartbeat_at") for fields in written]
    assert written == [
        {"rows_done": 1000, "rows_total": 2100, "progress": 47},
        {"rows_done": 2000, "rows_total": 2100, "progress": 95},
        {"rows_done": 2100, "rows_total": 2100, "progress": 100},
    ]
    assert heartbeats == sorted(heartbeats) and heartbeats[0] >= job.created_at
    job.refresh_from_db()
    assert (job.status, job.progress, job.rows_done, job.rows_total) == ("succeeded", 100, 2100, 2100)


@pytest.mark.postgres_only
@pytest.mark.django_db(transaction=True)
def test_job_progress_is_seen_by_others_while_its_import_is_still_open(monkeypatch):
    project = make_project(labels=["positive", "negative"])
    monkeypatch.setattr(jobs, "SYNC_ROW_LIMIT", 10)
    monkeypatch.setattr(writer, "BATCH_SIZE", 500)
    monkeypatch.setattr(tasks.item_import_run, "delay_on_commit", lambda job_id: None)
    job = _start(project, "text\n" + "".join(f"text {n}\n" for n in range(2100)))
    batches, seen = [], []

    def look_from_outside() -> tuple[int, int]:
        # Another thread: another connection, outside the import's transaction.
        found = []

        def look():
            try:
                found.append(
                    (ImportJob.objects.get(pk=job.id).rows_done, Item.objects.filter(project=project).count())
                )
            finally:
                connections.close_all()

        thread = threading.Thread(target=look)
        thread.start()
        thread.join()
        return found[0]

    copy = writer._batch_copy

    def copy_then_look(using, project_, rows, *args):
        copy(using, project_, rows, *args)
        batches.append(len(rows))
        if len(batches) == 3:  # row 1,000 (progress is reported every 1,000) was validated by now
            deadline = time.monotonic() + 10
            while look_from_outside()[0] == 0 and time.monotonic() < deadline:
                time.sleep(0.01)
            seen.append(look_from_outside())

    monkeypatch.setattr(writer, "_batch_copy", copy_then_look)

    item_import_run_job(job_id=job.id)

    # The progress (validation may be a batch ahead), while no item is committed yet.
    assert seen in ([(1000, 0)], [(2000, 0)])
    job.refresh_from_db()
    assert (job.status, job.rows_done, job.items_created) == ("succeeded", 2100, 2100)


def test_sweeper_fails_an_import_job_whose_worker_was_lost(project, settings, monkeypatch):
    monkeypatch.setattr(jobs, "SYNC_ROW_LIMIT", 1)
    now = timezone.now()
    # Past the threshold of either database: LABELLOOP_JOB_STALE_SECONDS on PostgreSQL, the
    # import task's time limit on SQLite (no heartbeat while the import holds the one writer).
    silent = timedelta(seconds=max(settings.LABELLOOP_JOB_STALE_SECONDS, tasks.IMPORT_TIME_LIMIT + 60))
    lost, alive, queued = (_start(project, "text\na\nb\n") for _ in range(3))
    ImportJob.objects.filter(pk=lost.pk).update(
        status="running", heartbeat_at=now - silent - timedelta(seconds=5)
    )
    ImportJob.objects.filter(pk=alive.pk).update(status="running", heartbeat_at=now - timedelta(seconds=5))
    upload = lost.upload.name
    assert default_storage.exists(upload)

    assert importing.import_jobs_sweep(now=now) == [lost.pk]

    lost.refresh_from_db()
    assert (lost.status, lost.upload.name) == ("failed", "")
    assert lost.error.startswith("the import stopped when its worker was lost; nothing was stored")
    assert not default_storage.exists(upload)
    assert [j.status for j in ImportJob.objects.filter(pk__in=[alive.pk, queued.pk]).order_by("pk")] == [
        "running",
        "queued",
    ]
    assert importing.import_jobs_sweep(now=now) == []  # a failed job stays failed, once


def test_a_claimed_import_job_has_a_heartbeat(project, monkeypatch, django_capture_on_commit_callbacks):
    monkeypatch.setattr(jobs, "SYNC_ROW_LIMIT", 1)
    with django_capture_on_commit_callbacks(execute=False):
        job = _start(project, "text\na\nb\n")
    assert job.heartbeat_at is None

    item_import_run_job(job_id=job.id)

    job.refresh_from_db()
    assert job.status == "succeeded" and job.heartbeat_at >= job.created_at


def test_failed_background_job_stores_nothing_and_records_the_error(
    project, settings, monkeypatch, django_capture_on_commit_callbacks
):
    monkeypatch.setattr(jobs, "SYNC_ROW_LIMIT", 1)
    with django_capture_on_commit_callbacks(execute=False):
        job = _start(project, "text,label\na,positive\nb,meh\n", options={"label_column": "label"})
    before = stored_counts()

    tasks.item_import_run(job.id)

    job.refresh_from_db()
    assert job.status == ImportJob.Status.FAILED
    assert job.error.startswith("r.csv, line 3, field 'label': unknown label 'meh'")
    assert job.finished_at is not None and job.items_created == 0
    assert stored_counts() == before
    assert media_files(settings) == []


def test_a_job_runs_once_even_when_its_task_is_delivered_twice(
    project, monkeypatch, django_capture_on_commit_callbacks
):
    monkeypatch.setattr(jobs, "SYNC_ROW_LIMIT", 1)
    with django_capture_on_commit_callbacks(execute=False):
        job = _start(project, "text\na\nb\n")

    tasks.item_import_run.apply(args=[job.id])  # the Celery wrapper, eagerly
    tasks.item_import_run.apply(args=[job.id])

    job.refresh_from_db()
    assert job.status == ImportJob.Status.SUCCEEDED
    assert Item.objects.count() == 2


def test_a_list_of_images_is_stored_as_one_zip_and_imported(image_project, settings):
    job = item_import_start(
        project=image_project,
        files=[("a.png", file(image())), ("sub/b.png", file(image()))],
        format="images",
        options={},
        created_by=None,
    )

    assert job.status == ImportJob.Status.SUCCEEDED, job.error
    assert (job.format, job.filename) == ("zip", "a.zip")
    assert set(Item.objects.values_list("external_id", flat=True)) == {"a.png", "sub/b.png"}
    assert len(media_files(settings)) == 2  # the images, not the upload


def test_import_job_with_images_over_the_sync_limit_is_queued(
    image_project, monkeypatch, django_capture_on_commit_callbacks
):
    monkeypatch.setattr(jobs, "SYNC_IMAGE_LIMIT", 1)
    archive = zip_of({"a.png": image(), "b.png": image()})

    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        job = item_import_start(
            project=image_project, files=[("x.zip", archive)], format="zip", options={}, created_by=None
        )

    assert job.status == ImportJob.Status.QUEUED
    assert len(callbacks) == 1
