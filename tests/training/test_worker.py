"""Training runs on a real Celery worker process: over the filesystem broker, over Redis, and a
worker killed with SIGKILL mid-run (the sweeper fails the run; the active version stays; the
next run succeeds)."""

import io
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connection

from annotate import importers
from annotate.demo import digit_png, digits_arrays
from annotate.queue import annotation_submit, assignment_next
from tests.factories import UserFactory, make_project
from tests.services import REDIS_URL, skip_or_fail, unreachable_reason
from tests.training.test_model_version_train import _reviews_project
from training.models import ModelVersion, TrainingRun
from training.services import model_version_train

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]


def _database_url() -> str:
    db = connection.settings_dict
    if connection.vendor == "postgresql":
        return f"postgres://{db['USER']}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"
    return f"sqlite:///{db['NAME']}"


class Worker:
    """A `celery worker` subprocess on the test database, the test's media and a given broker."""

    def __init__(self, tmp_path: Path, broker_url: str, **env) -> None:
        self.log = tmp_path / f"worker-{time.monotonic_ns()}.log"
        self.env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "config.settings",
            "DATABASE_URL": _database_url(),
            "CELERY_BROKER_URL": broker_url,
            "LABELLOOP_MEDIA_ROOT": str(settings.MEDIA_ROOT),
            "LABELLOOP_VAR_DIR": str(settings.VAR_DIR),
            **env,
        }
        self.process: subprocess.Popen | None = None

    def start(self) -> "Worker":
        command = [
            sys.executable, "-m", "celery", "-A", "config", "worker", "--pool", "prefork",
            "--concurrency", "1", "--queues", "training,default", "--loglevel", "INFO",
            "--without-mingle", "--without-gossip",
            "--hostname", f"test-{time.monotonic_ns()}@%h",
        ]  # fmt: skip
        self.process = subprocess.Popen(
            command,
            cwd=ROOT,
            env=self.env,
            stdout=self.log.open("w"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self._wait_for("ready.", 90)
        return self

    def _wait_for(self, text: str, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if text in self.log.read_text():
                return
            if self.process.poll() is not None:
                break
            time.sleep(0.2)
        raise AssertionError(f"worker did not log {text!r}:\n{self.log.read_text()[-3000:]}")

    def kill(self) -> None:
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=30)

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.kill()


@pytest.fixture
def workers(tmp_path):
    _running.clear()

    def start(broker_url: str = "filesystem://", **env) -> Worker:
        worker = Worker(tmp_path, broker_url, **env).start()
        _running.append(worker)
        return worker

    yield start
    for worker in _running:
        worker.stop()
    _running.clear()


_running: list[Worker] = []  # this test's workers, whose logs a failure shows


@pytest.fixture(autouse=True)
def _empty_filesystem_broker():
    # A message left by an earlier run would be taken by this test's worker.
    for folder in ("queue", "processed"):
        for leftover in (Path(settings.CELERY_BROKER_DIR) / folder).glob("*"):
            leftover.unlink(missing_ok=True)


def _send(run: TrainingRun, broker_url: str) -> None:
    """Dispatch the run's task over `broker_url` (the service dispatches over the configured one)."""
    from config.celery import app
    from training import tasks

    options = settings.CELERY_BROKER_TRANSPORT_OPTIONS if broker_url.startswith("filesystem") else {}
    with app.connection_for_write(broker_url, transport_options=options) as conn:
        tasks.training_run_execute.apply_async(args=[run.pk], connection=conn)


def _wait_until(run: TrainingRun, predicate, seconds: float = 180) -> TrainingRun:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        run.refresh_from_db()
        if predicate(run):
            return run
        time.sleep(0.25)
    logs = "".join(f"\n--- {w.log.name} ---\n{w.log.read_text()[-4000:]}" for w in _running)
    raise AssertionError(f"run {run.pk} stayed {run.status} / {run.phase} / {run.progress}%{logs}")


def _queued_run(project) -> TrainingRun:
    return TrainingRun.objects.create(project=project, trigger="test")


def test_a_run_succeeds_on_a_real_worker_over_the_filesystem_broker(workers):
    project = _reviews_project(n=120)
    workers("filesystem://")
    from training.services import training_run_request

    run, created = training_run_request(project=project, trigger="test")  # dispatched on commit (autocommit)
    assert created
    run = _wait_until(run, lambda r: not r.is_open)
    assert run.status == "succeeded", run.error
    assert ModelVersion.objects.get(project=project, is_active=True) == run.model_version


def test_a_run_succeeds_on_a_real_worker_over_redis(workers):
    reason = unreachable_reason(REDIS_URL)
    if reason:
        skip_or_fail(f"Redis: {reason}")
    project = _reviews_project(n=120)
    workers(REDIS_URL)
    run = _queued_run(project)
    _send(run, REDIS_URL)
    run = _wait_until(run, lambda r: not r.is_open)
    assert run.status == "succeeded", run.error


def _digits_project(n=400):
    user = UserFactory()
    project = make_project(
        task_type="image_classification", labels=[str(d) for d in range(10)], members=[(user, "annotator")]
    )
    pixels, targets = digits_arrays()
    importers.import_images(
        project=project, files=[(f"d{i}.png", io.BytesIO(digit_png(pixels[i]))) for i in range(n)]
    )
    while (lease := assignment_next(project=project, annotator=user)) is not None:
        digit = str(targets[int(lease.item.external_id[1:-4])])
        annotation_submit(project=project, item_id=lease.item.pk, annotator=user, value={"choices": [digit]})
    return project


def test_a_worker_killed_mid_run_leaves_the_run_failed_and_the_active_version_in_place(workers):
    project = _digits_project()
    import torch

    torch.set_num_threads(1)
    active = model_version_train(project=project, params={"epochs": 1})
    quick = {"LABELLOOP_RUN_HEARTBEAT_SECONDS": "1", "LABELLOOP_RUN_STALE_SECONDS": "3"}
    worker = workers("filesystem://", **quick)
    run = _queued_run(project)
    _send(run, "filesystem://")
    run = _wait_until(run, lambda r: r.phase == "fit" or not r.is_open)
    assert run.status == "running", f"the run ended ({run.status}) before it could be killed"
    worker.kill()
    time.sleep(4)  # the heartbeat is now older than LABELLOOP_RUN_STALE_SECONDS

    workers("filesystem://", **quick)  # the sweeper runs when the worker is ready
    run = _wait_until(run, lambda r: not r.is_open, seconds=60)
    assert (run.status, run.error) == ("failed", "worker lost")
    active.refresh_from_db()
    assert active.is_active
    assert ModelVersion.objects.filter(project=project, is_active=True).count() == 1

    retry = _queued_run(project)
    _send(retry, "filesystem://")
    retry = _wait_until(retry, lambda r: not r.is_open)
    assert retry.status == "succeeded", retry.error
    assert retry.model_version.is_active and retry.model_version != active
