"""Training runs on a real Celery worker process: over the filesystem broker, over Redis, and a
worker killed with SIGKILL mid-run (the sweeper fails the run; the active version stays; the
next run succeeds)."""

import socket
import time
from datetime import timedelta

import pytest
from django.utils import timezone

from tests.services import REDIS_URL, skip_or_fail, unreachable_reason
from tests.training.projects import digits_project, reviews_project
from tests.workers import send, wait_until, worker_logs
from training.models import ModelVersion, TrainingRun
from training.runs import training_run_request
from training.versions import model_version_train

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]


def _queued_run(project) -> TrainingRun:
    return TrainingRun.objects.create(project=project, trigger="test")


def test_a_run_succeeds_on_a_real_worker_over_the_filesystem_broker(workers):
    project = reviews_project(n=120)
    workers("filesystem://")
    run, created = training_run_request(project=project, trigger="test")  # dispatched on commit (autocommit)
    assert created
    run = wait_until(run, lambda r: not r.is_open)
    assert run.status == "succeeded", run.error
    assert ModelVersion.objects.get(project=project, is_active=True) == run.model_version


def test_a_run_succeeds_on_a_real_worker_over_redis(workers):
    reason = unreachable_reason(REDIS_URL)
    if reason:
        skip_or_fail(f"Redis: {reason}")
    project = reviews_project(n=120)
    workers(REDIS_URL)
    run = _queued_run(project)
    send(run, REDIS_URL)
    run = wait_until(run, lambda r: not r.is_open)
    assert run.status == "succeeded", run.error


def test_a_worker_killed_mid_run_leaves_the_run_failed_and_the_active_version_in_place(workers):
    project = digits_project(n=400)
    import torch

    torch.set_num_threads(1)
    active = model_version_train(project=project, params={"epochs": 1})
    quick = {"LABELLOOP_RUN_HEARTBEAT_SECONDS": "1", "LABELLOOP_RUN_STALE_SECONDS": "3"}
    worker = workers("filesystem://", **quick)
    run = _queued_run(project)
    send(run, "filesystem://")
    run = wait_until(run, lambda r: r.phase == "fit" or not r.is_open)
    assert run.status == "running", f"the run ended ({run.status}) before it could be killed"
    worker.kill()
    # The killed worker writes no more heartbeats: its last one is aged past
    # LABELLOOP_RUN_STALE_SECONDS here instead of waiting for the clock (no sleeps in fault tests).
    TrainingRun.objects.filter(pk=run.pk).update(heartbeat_at=timezone.now() - timedelta(seconds=60))

    workers("filesystem://", **quick)  # the sweeper runs when the worker is ready
    run = wait_until(run, lambda r: not r.is_open, seconds=60)
    assert (run.status, run.error) == ("failed", "worker lost")
    active.refresh_from_db()
    assert active.is_active
    assert ModelVersion.objects.filter(project=project, is_active=True).count() == 1

    retry = _queued_run(project)
    send(retry, "filesystem://")
    retry = wait_until(retry, lambda r: not r.is_open)
    assert retry.status == "succeeded", retry.error
    assert retry.model_version.is_active and retry.model_version != active


@pytest.mark.postgres_only
def test_two_workers_train_two_projects_at_once_and_never_one_project_twice(workers, capsys):
    """Two training workers on Redis and PostgreSQL: the two projects' runs overlap in time; the
    project whose task is delivered twice still trains once (the conditional claim)."""
    reason = unreachable_reason(REDIS_URL)
    if reason:
        skip_or_fail(f"Redis: {reason}")
    from celery import Celery

    first, second = digits_project(n=400), digits_project(n=400)
    pool = [workers(REDIS_URL, queues="training") for _ in range(2)]
    names = {w.hostname.replace("%h", socket.gethostname()) for w in pool}
    # An app of its own: the test process's app broadcasts over its configured (embedded) broker.
    pinger = Celery("ping", broker=REDIS_URL, set_as_current=False)
    deadline, answered = time.monotonic() + 60, set()
    while not names <= answered and time.monotonic() < deadline:
        answered = {name for reply in pinger.control.ping(timeout=1) for name in reply}
    pinger.close()
    assert names <= answered, f"workers {names - answered} did not answer a ping{worker_logs()}"
    run_a, run_b = _queued_run(first), _queued_run(second)
    for run in (run_a, run_a, run_b):  # run_a's task delivered twice
        send(run, REDIS_URL)
    again, created = training_run_request(project=first, trigger="test")
    assert (again, created) == (run_a, False)
    run_a, run_b = (wait_until(run, lambda r: not r.is_open) for run in (run_a, run_b))
    assert (run_a.status, run_b.status) == ("succeeded", "succeeded"), (run_a.error, run_b.error)
    for run in (run_a, run_b):
        seconds = (run.finished_at - run.started_at).total_seconds()
        assert seconds >= 3, f"run {run.pk} took {seconds:.1f} s: too short to show an overlap"
    assert run_a.started_at < run_b.finished_at and run_b.started_at < run_a.finished_at
    assert ModelVersion.objects.filter(project=first).count() == 1
    assert TrainingRun.objects.filter(project=first).count() == 1
    logs = "".join(w.log.read_text() for w in pool)
    assert f"training run {run_a.pk} is " in logs and "nothing to do" in logs, logs[-3000:]
    with capsys.disabled():
        for run in (run_a, run_b):
            print(
                f"\n  run {run.pk} (project {run.project_id}): {run.started_at:%H:%M:%S.%f} -> "
                f"{run.finished_at:%H:%M:%S.%f} ({(run.finished_at - run.started_at).total_seconds():.1f} s)"
            )
