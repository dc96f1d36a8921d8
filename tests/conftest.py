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


@pytest.fixture
def no_warm_up(monkeypatch):
    """The pool ordered by the project's strategy from the first version on (training/scoring.py's
    warm-up samples at random until two versions agree): for tests of that order itself."""
    from training import scoring

    monkeypatch.setattr(scoring, "KAPPA_WARM_UP", 0)
