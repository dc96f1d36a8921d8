"""Real Celery worker processes for the tests: started on the test database, media and a broker.

The `workers` fixture (tests/conftest.py) starts them and stops them after the test; a failing
wait shows the tail of every worker's log.
"""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from django.conf import settings
from django.db import connection

from training.models import TrainingRun

ROOT = Path(__file__).resolve().parents[1]

running: list["Worker"] = []  # this test's workers, whose logs a failure shows


def database_url() -> str:
    """The test database as a DATABASE_URL a subprocess can open."""
    db = connection.settings_dict
    if connection.vendor == "postgresql":
        return f"postgres://{db['USER']}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"
    return f"sqlite:///{db['NAME']}"


def subprocess_env(**env) -> dict:
    """The environment a studio process needs to share this test's database, media and var folder."""
    return {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "DATABASE_URL": database_url(),
        "LABELLOOP_MEDIA_ROOT": str(settings.MEDIA_ROOT),
        "LABELLOOP_CACHE_DIR": str(settings.LABELLOOP_CACHE_DIR),
        "LABELLOOP_VAR_DIR": str(settings.VAR_DIR),
        **env,
    }


class Worker:
    """A `celery worker` subprocess on the test database, the test's media and a given broker."""

    def __init__(self, tmp_path: Path, broker_url: str, *, queues: str = "training,default", **env) -> None:
        self.log = tmp_path / f"worker-{time.monotonic_ns()}.log"
        self.hostname = f"test-{time.monotonic_ns()}@%h"
        self.queues = queues
        self.env = subprocess_env(CELERY_BROKER_URL=broker_url, **env)
        self.process: subprocess.Popen | None = None

    def start(self) -> "Worker":
        command = [
            sys.executable, "-m", "celery", "-A", "config", "worker", "--pool", "prefork",
            "--concurrency", "1", "--queues", self.queues, "--loglevel", "INFO",
            "--without-mingle", "--without-gossip", "--hostname", self.hostname,
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


def worker_logs() -> str:
    """The tail of each running worker's log, for an assertion message."""
    return "".join(f"\n--- {w.log.name} ---\n{w.log.read_text()[-4000:]}" for w in running)


def empty_filesystem_broker() -> None:
    """Remove messages an earlier run left: this test's worker would take them."""
    for folder in ("queue", "processed"):
        for leftover in (Path(settings.CELERY_BROKER_DIR) / folder).glob("*"):
            leftover.unlink(missing_ok=True)


def broker_connection(broker_url: str):
    """A connection to `broker_url`: the configured embedded broker, or another (Redis) by URL.

    Not `app.connection_for_write(url)`: that keeps the settings' transport class
    (config.broker:Transport) whatever the URL says.
    """
    from kombu import Connection

    from config.celery import app

    if broker_url.startswith("filesystem"):
        return app.connection_for_write()
    return Connection(broker_url)


def send(run: TrainingRun, broker_url: str) -> None:
    """Dispatch the run's task over `broker_url` (the service dispatches over the configured one)."""
    from training import tasks

    with broker_connection(broker_url) as conn:
        tasks.training_run_execute.apply_async(args=[run.pk], connection=conn)


def wait_until(run: TrainingRun, predicate, seconds: float = 180) -> TrainingRun:
    """Poll `run` until `predicate(run)`; fail with the workers' logs after `seconds`."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        run.refresh_from_db()
        if predicate(run):
            return run
        time.sleep(0.25)
    raise AssertionError(f"run {run.pk} stayed {run.status} / {run.phase} / {run.progress}%{worker_logs()}")
