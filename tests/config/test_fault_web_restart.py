"""Fault: the web server is killed (SIGKILL) and started again while annotators label (issue 17,
item 8).

Two annotators label over the API of a real gunicorn on the test database; one holds a lease when
the server's process group is killed. What protects the labeling: every lease and annotation is a
row committed before its response is sent (the web process holds no state), a held lease is served
to its holder first (`assignment_next`), and a submit's idempotency key makes a client's retry of
an answer it never saw acknowledged store nothing twice. Kept in process memory, any of them would
be lost with the process, and these assertions would fail.
"""

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import uuid

import pytest
import requests
from rest_framework.authtoken.models import Token

from annotate.models import Annotation, Assignment, Item
from tests.factories import UserFactory, make_project
from tests.workers import ROOT, subprocess_env

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class _Server:
    """gunicorn serving config.wsgi on the test database, in a process group of its own."""

    def __init__(self, tmp_path, port: int) -> None:
        self.url = f"http://127.0.0.1:{port}"
        self.log = tmp_path / f"web-{time.monotonic_ns()}.log"
        gunicorn = os.path.join(os.path.dirname(sys.executable), "gunicorn")
        command = [gunicorn, "config.wsgi", "--bind", f"127.0.0.1:{port}", "--workers", "1", "--threads", "2"]
        self.process = subprocess.Popen(
            command, cwd=ROOT, env=subprocess_env(), stdout=self.log.open("w"), stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
        self._wait_ready(60)

    def _wait_ready(self, seconds: float) -> None:
        """Poll the login page until it answers 200 (each try bounded by its own timeout).

        gunicorn loads the application lazily, so its first answer can take seconds on a loaded
        machine: a try that times out is a server not ready yet, like one that refuses.
        """
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                break
            try:
                if requests.get(f"{self.url}/accounts/login/", timeout=10).status_code == 200:
                    return
            except (requests.ConnectionError, requests.Timeout):
                pass
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(timeout=0.1)  # a short wait between tries; ends at once if gunicorn exits
        raise AssertionError(f"gunicorn did not serve:\n{self.log.read_text()[-3000:]}")

    def kill(self) -> None:
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=30)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.kill()


@pytest.fixture
def servers(tmp_path):
    started: list[_Server] = []
    port = _free_port()

    def start() -> _Server:
        server = _Server(tmp_path, port)
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


class _Annotator:
    def __init__(self, server: _Server, project, user) -> None:
        self.server, self.project = server, project
        self.headers = {"Authorization": f"Token {Token.objects.create(user=user).key}"}

    def post(self, route: str, body: dict) -> requests.Response:
        url = f"{self.server.url}/api/projects/{self.project.pk}/{route}/"
        return requests.post(url, json=body, headers=self.headers, timeout=30)

    def next(self) -> dict:
        response = self.post("next", {})
        assert response.status_code == 200, response.text
        return response.json()

    def submit_and_next(self, item_id: int, key: str) -> dict:
        body = {"item": item_id, "value": {"choices": ["positive"]}, "idempotency_key": key}
        response = self.post("submit-and-next", body)
        assert response.status_code == 201, response.text
        return response.json()


def test_a_web_server_killed_while_annotators_label_loses_no_lease_and_no_answer(servers):
    first, second = UserFactory(), UserFactory()
    project = make_project(items=6, overlap=2, members=[(first, "annotator"), (second, "annotator")])
    server = servers()
    alice, bob = _Annotator(server, project, first), _Annotator(server, project, second)

    leased = alice.next()
    answered, keys = [], {}
    for _ in range(2):
        item_id = leased["item"]["id"]
        keys[item_id] = str(uuid.uuid4())
        body = alice.submit_and_next(item_id, keys[item_id])
        answered.append((item_id, body["annotation"]["id"]))
        leased = body["next"]
    bob_leased = bob.next()
    held = leased  # alice's lease, taken and not answered, when the server dies
    assert Assignment.objects.filter(pk=held["assignment"]["id"], status="open").exists()

    server.kill()
    with pytest.raises(requests.ConnectionError):
        alice.next()
    server = alice.server = bob.server = servers()

    again = alice.next()
    assert again["assignment"]["id"] == held["assignment"]["id"]
    assert again["item"]["id"] == held["item"]["id"]
    assert bob.next()["assignment"]["id"] == bob_leased["assignment"]["id"]
    stored = {a.item_id: a.pk for a in Annotation.objects.filter(project=project, annotator=first)}
    assert stored == dict(answered)
    # A retry of the last answer, as a client that never saw its response sends it: nothing new.
    last_item, last_annotation = answered[-1]
    retry = alice.post(
        "annotations",
        {"item": last_item, "value": {"choices": ["positive"]}, "idempotency_key": keys[last_item]},
    )
    assert retry.status_code in (200, 201), retry.text
    assert retry.json()["id"] == last_annotation
    assert Annotation.objects.filter(project=project, annotator=first).count() == 2

    alice.submit_and_next(held["item"]["id"], str(uuid.uuid4()))
    bob.submit_and_next(bob_leased["item"]["id"], str(uuid.uuid4()))
    assert Annotation.objects.filter(project=project, annotator=first).count() == 3
    assert Annotation.objects.filter(project=project, annotator=second).count() == 1
    for item in Item.objects.filter(project=project):
        assert item.annotation_count <= project.overlap, item
        assert Annotation.objects.filter(item=item, counted=True).count() == item.annotation_count
