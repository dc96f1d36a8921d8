"""Background export jobs: started on commit, written to a file with progress and a heartbeat,
run once, and failed by the sweeper when their worker is lost."""

import json
import logging
from datetime import timedelta
from pathlib import Path
from unittest import mock

import pytest
from django.core.exceptions import ValidationError
from django.db import connections
from django.utils import timezone

from annotate import exporting, tasks
from annotate.exporting import item_export_run_job, item_export_start, jobs, pages
from annotate.jobs import ProgressConnection
from annotate.models import ExportJob, Membership
from tests.annotate import exported
from tests.annotate.exported import label
from tests.factories import UserFactory, make_project

pytestmark = pytest.mark.django_db

studio = exported.studio


def test_starting_an_export_dispatches_the_task_only_on_commit(django_capture_on_commit_callbacks):
    project = make_project(items=1)
    user = UserFactory()
    with (
        mock.patch.object(tasks.item_export_run, "delay") as delay,
        django_capture_on_commit_callbacks(execute=True) as callbacks,
    ):
        job = item_export_start(project=project, format="csv", labeled_only=True, created_by=user)
        delay.assert_not_called()
    assert len(callbacks) == 1
    delay.assert_called_once_with(job.id)
    job.refresh_from_db()
    assert (job.status, job.format, job.labeled_only, job.created_by) == ("queued", "csv", True, user)


def test_starting_an_export_in_an_unknown_format_is_rejected():
    with pytest.raises(ValidationError):
        item_export_start(project=make_project(), format="xml", labeled_only=False, created_by=None)
    assert not ExportJob.objects.exists()


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("fmt", ["json", "jsonl", "csv"])
def test_the_background_job_writes_the_streamed_export_to_a_file_with_progress(fmt, monkeypatch, settings):
    monkeypatch.setattr(pages, "PAGE_SIZE", 1)
    user = UserFactory()
    project = make_project(labels=["cat", "dog"], items=3, members=[(user, Membership.Role.ANNOTATOR)])
    label(project, user, ["cat"])
    job = ExportJob.objects.create(project=project, format=fmt)
    polled = []
    write = jobs._ExportProgress.__call__

    def write_then_poll(self, done, total):
        write(self, done, total)
        # A poller on its own connection sees progress while the export is still running.
        poller = connections.create_connection("default")
        try:
            with poller.cursor() as cursor:
                cursor.execute(
                    f"SELECT progress, items_written FROM {ExportJob._meta.db_table} WHERE id = %s", [job.id]
                )
                polled.append(tuple(cursor.fetchone()))
        finally:
            poller.close()

    monkeypatch.setattr(jobs._ExportProgress, "__call__", write_then_poll)

    item_export_run_job(job_id=job.id)

    job.refresh_from_db()
    assert (job.status, job.progress, job.items_written, job.error) == ("succeeded", 100, 3, "")
    assert job.finished_at is not None
    assert polled == [(33, 1), (66, 2), (99, 3)]
    assert job.file.name.startswith("exports/") and job.file.name.endswith(f".{fmt}")
    assert job.file.path.startswith(str(settings.MEDIA_ROOT))
    with job.file.open("rb") as stored:
        content = stored.read().decode("utf-8")
    assert content == "".join(exporting.export_stream(project=project, format=fmt))


def test_the_celery_task_runs_the_job_in_eager_mode(studio):
    job = ExportJob.objects.create(project=studio, format="jsonl", labeled_only=True)
    tasks.item_export_run.apply(args=[job.id])
    job.refresh_from_db()
    assert (job.status, job.progress, job.items_written) == ("succeeded", 100, 2)
    with job.file.open("rb") as stored:
        assert [json.loads(line)["external_id"] for line in stored] == ["t0", "t1"]


def test_the_celery_task_ignores_a_job_deleted_with_its_project(caplog, settings):
    job = ExportJob.objects.create(project=make_project(), format="csv")
    job.project.delete()

    with caplog.at_level(logging.WARNING, logger="annotate.tasks"):
        result = tasks.item_export_run.apply(args=[job.id])

    assert result.successful(), result.traceback
    assert [r.getMessage() for r in caplog.records if r.name == "annotate.tasks"] == [
        f"export job gone: job={job.id}"
    ]
    assert not ExportJob.objects.filter(pk=job.id).exists()
    assert not (Path(settings.MEDIA_ROOT) / "exports").exists()


def test_a_job_that_fails_is_marked_failed_with_the_error():
    job = ExportJob.objects.create(project=make_project(items=1), format="xml")
    item_export_run_job(job_id=job.id)
    job.refresh_from_db()
    assert job.status == "failed"
    assert "xml" in job.error
    assert job.finished_at is not None and not job.file


def test_a_finished_job_is_not_run_again(studio):
    job = ExportJob.objects.create(project=studio, format="csv", status=ExportJob.Status.SUCCEEDED)
    item_export_run_job(job_id=job.id)
    job.refresh_from_db()
    assert (job.status, job.progress, job.file.name) == ("succeeded", 0, "")


# The lifecycle: claim, heartbeat, sweeper ------------------------------------------------------


def test_a_claimed_export_job_has_a_heartbeat_and_a_running_one_is_not_run_again(studio):
    running = ExportJob.objects.create(project=studio, format="csv", status=ExportJob.Status.RUNNING)
    queued = ExportJob.objects.create(project=studio, format="csv")
    assert queued.heartbeat_at is None

    item_export_run_job(job_id=running.id)  # a redelivered task: the job runs elsewhere
    item_export_run_job(job_id=queued.id)

    running.refresh_from_db()
    queued.refresh_from_db()
    assert (running.status, running.file.name, running.heartbeat_at) == ("running", "", None)
    assert queued.status == "succeeded" and queued.heartbeat_at >= queued.created_at


@pytest.mark.django_db(transaction=True)
def test_a_long_export_writes_its_heartbeat_while_its_progress_stands_still(monkeypatch):
    monkeypatch.setattr(pages, "PAGE_SIZE", 1)
    monkeypatch.setattr("annotate.jobs.HEARTBEAT_SECONDS", 0)
    project = make_project(items=300)
    job = ExportJob.objects.create(project=project, format="jsonl")
    written = []
    update = ProgressConnection.update
    monkeypatch.setattr(
        ProgressConnection,
        "update",
        lambda self, model, pk, **fields: written.append(fields) or update(self, model, pk, **fields),
    )

    item_export_run_job(job_id=job.id)

    # 300 pages, 100 distinct percentages: every page beats, not only those that move the bar.
    heartbeats = [fields["heartbeat_at"] for fields in written]
    assert len(heartbeats) == 301  # each page, then once before the file is stored
    assert sum("progress" in fields for fields in written) == 100
    assert heartbeats == sorted(heartbeats) and heartbeats[0] >= job.created_at


def test_the_sweeper_fails_a_running_export_whose_worker_was_lost(studio, settings):
    now = timezone.now()
    silent = timedelta(seconds=settings.LABELLOOP_JOB_STALE_SECONDS + 5)
    lost = ExportJob.objects.create(project=studio, format="csv", status="running", heartbeat_at=now - silent)
    legacy = ExportJob.objects.create(
        project=studio, format="csv", status="running"
    )  # from before heartbeats
    alive = ExportJob.objects.create(
        project=studio, format="csv", status="running", heartbeat_at=now - timedelta(seconds=5)
    )
    done = ExportJob.objects.create(
        project=studio, format="csv", status="succeeded", heartbeat_at=now - silent
    )

    assert sorted(exporting.export_jobs_sweep(now=now)) == sorted([lost.pk, legacy.pk])
    for job in (lost, legacy, alive, done):
        job.refresh_from_db()
    assert (lost.status, legacy.status, alive.status, done.status) == (
        "failed",
        "failed",
        "running",
        "succeeded",
    )
    assert lost.error.startswith("the export stopped when its worker was lost; nothing was stored")
    assert lost.finished_at == now
    assert exporting.export_jobs_sweep(now=now) == []  # a failed job stays failed, once


def test_the_export_sweeper_runs_in_beat_every_minute(settings):
    assert settings.CELERY_BEAT_SCHEDULE["export-jobs-sweep"] == {
        "task": "annotate.tasks.export_jobs_sweep",
        "schedule": 60.0,
    }
    tasks.export_jobs_sweep.apply().get()  # the Celery wrapper, eagerly


# Stream or job: one decision for the page and the API -----------------------------------------


def test_an_export_request_streams_a_small_project_and_queues_a_big_one_or_when_asked(
    settings, django_capture_on_commit_callbacks
):
    project = make_project(items=3)
    user = project.memberships.get(role=Membership.Role.MANAGER).user
    settings.LABELLOOP_EXPORT_STREAM_MAX_ITEMS = 3

    streamed = exporting.export_request(project=project, format="csv", requested_by=user)
    asked = exporting.export_request(project=project, format="csv", requested_by=user, background=True)
    settings.LABELLOOP_EXPORT_STREAM_MAX_ITEMS = 2
    with django_capture_on_commit_callbacks():
        big = exporting.export_request(
            project=project,
            format="jsonl",
            labeled_only=True,
            requested_by=user,
            base_url="https://x.example",
        )

    assert streamed.job is None and streamed.content_type == "text/csv"
    assert streamed.filename.endswith(".csv") and "".join(streamed.chunks).count("\n") == 4
    assert (asked.job.status, asked.job.format, asked.job.created_by) == ("queued", "csv", user)
    assert (big.job.format, big.job.labeled_only, big.job.base_url, big.chunks) == (
        "jsonl",
        True,
        "https://x.example",
        None,
    )


def test_an_export_request_in_an_unknown_format_is_refused_before_anything_starts():
    with pytest.raises(ValidationError, match="xml"):
        exporting.export_request(project=make_project(), format="xml", background=True)
    assert not ExportJob.objects.exists()
