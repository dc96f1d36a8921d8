"""Fixtures shared by every test package."""

import pytest

from tests.workers import Worker, empty_filesystem_broker, running


@pytest.fixture
def workers(tmp_path):
    """`workers(broker_url, queues=..., **env)` starts a real Celery worker; all stop after the test."""
    running.clear()
    empty_filesystem_broker()

    def start(broker_url: str = "filesystem://", **env) -> Worker:
        worker = Worker(tmp_path, broker_url, **env).start()
        running.append(worker)
        return worker

    yield start
    for worker in running:
        worker.stop()
    running.clear()
