"""POST /api/projects/<id>/predict/ (training/api/predict.py, training/predict.py).

The real path: a live gunicorn and a real predict worker subprocess, over the embedded filesystem
broker with its filesystem result backend and over Redis, for a text and an image project; the
answers equal the backend's own predict_proba on the studio's own inputs for the same items. Then
what is refused, and how: auth, empty and oversized batches, the byte cap, texts that are not
strings, files that are not images, no model, a wrong version, the rate limit counted across two
processes, and no worker (503).
"""

import http.client
import io
import json
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from django.conf import settings
from django.core.cache import caches
from django.core.management import call_command
from django.test.client import BOUNDARY, MULTIPART_CONTENT, encode_multipart
from django.urls import reverse
from PIL import Image
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from annotate.demo import digit_png, digits_arrays
from annotate.models import Item, Membership
from annotate.projects import membership_add
from tests.factories import UserFactory, make_project
from tests.services import REDIS_URL, skip_or_fail, unreachable_reason
from tests.training.projects import digits_project, reviews_project
from tests.workers import ROOT, subprocess_env
from training.artifact_store import artifact_local
from training.backends import load_backend
from training.backends.image import images_to_pixels
from training.models import DatasetSnapshot, ModelVersion
from training.versions import model_inputs, model_version_train

pytestmark = pytest.mark.django_db


# Helpers ---------------------------------------------------------------------------------


def _url(project, version=None) -> str:
    url = reverse("api:predict", kwargs={"project_id": project.pk})
    return url if version is None else f"{url}?version={version}"


def _manager(project):
    return project.memberships.get(role=Membership.Role.MANAGER).user


def _token(user) -> str:
    return Token.objects.get_or_create(user=user)[0].key


def _client(user=None) -> APIClient:
    """A client that authenticates as `user` with the API's token, as a script would."""
    client = APIClient()
    if user is not None:
        client.credentials(HTTP_AUTHORIZATION=f"Token {_token(user)}")
    return client


def _version_row(project, backend: str = "text_logreg", *, active: bool = True) -> ModelVersion:
    """A version row whose model is never loaded: every request in these tests is refused before
    anything is dispatched."""
    number = ModelVersion.objects.filter(project=project).count() + 1
    dataset = DatasetSnapshot.objects.create(
        project=project, classes=[], item_ids=[], values=[], validation_ids=[], fingerprint=f"f{number}"
    )
    return ModelVersion.objects.create(
        project=project,
        number=number,
        backend=backend,
        dataset=dataset,
        artifact_path="none",
        is_active=active,
    )


def _png(digit: int = 0) -> bytes:
    pixels, _ = digits_arrays()
    return digit_png(pixels[digit])


def _upload(name: str, data: bytes):
    file = io.BytesIO(data)
    file.name = name
    return file


def _predict_files() -> list[Path]:
    folder = Path(settings.MEDIA_ROOT) / "predict"
    return [p for p in folder.rglob("*") if p.is_file()] if folder.exists() else []


class LiveServer:
    """gunicorn serving the studio on the test database and media, in a process of its own."""

    def __init__(self, tmp_path: Path, **env: str) -> None:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.port = sock.getsockname()[1]
        self.log = tmp_path / f"gunicorn-{self.port}.log"
        command = [
            str(Path(sys.executable).parent / "gunicorn"), "config.wsgi", "--bind", f"127.0.0.1:{self.port}",
            "--workers", "1", "--threads", "2", "--log-level", "warning",
        ]  # fmt: skip
        self.process = subprocess.Popen(
            command,
            cwd=ROOT,
            env=subprocess_env(LABELLOOP_LOG_LEVEL="WARNING", **env),
            stdout=self.log.open("w"),
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                break
            try:
                status, _ = self.request("GET", "/accounts/login/")
                if status == 200:
                    return
            except OSError:
                pass
            time.sleep(0.2)
        raise AssertionError(f"gunicorn did not answer:\n{self.log.read_text()[-3000:]}")

    def request(
        self, method: str, path: str, *, token: str | None = None, body: bytes | None = None, content_type=""
    ) -> tuple[int, dict]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=120)
        headers = {"Host": "127.0.0.1"}
        if token:
            headers["Authorization"] = f"Token {token}"
        if content_type:
            headers["Content-Type"] = content_type
        try:
            conn.request(method, path, body=body, headers=headers)
            response = conn.getresponse()
            payload = response.read()
        finally:
            conn.close()
        try:
            return response.status, json.loads(payload) if payload else {}
        except ValueError:
            return response.status, {"raw": payload[:500].decode(errors="replace")}

    def predict_texts(self, project, token: str, texts: list, version=None) -> tuple[int, dict]:
        body = json.dumps({"texts": texts}).encode()
        return self.request(
            "POST", _url(project, version), token=token, body=body, content_type="application/json"
        )

    def predict_images(self, project, token: str, files: list) -> tuple[int, dict]:
        body = encode_multipart(BOUNDARY, {"images": files})
        return self.request("POST", _url(project), token=token, body=body, content_type=MULTIPART_CONTENT)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)


@pytest.fixture
def live(tmp_path):
    """`live(**env)` starts gunicorn on the test database (with `env` over the test's environment)."""
    servers: list[LiveServer] = []

    def start(**env: str) -> LiveServer:
        servers.append(LiveServer(tmp_path, **env))
        return servers[-1]

    yield start
    for server in servers:
        server.stop()


def _expected(backend, model_in) -> np.ndarray:
    return np.asarray(backend.predict_proba(model_in), dtype=np.float64)


def _assert_predictions_equal(answer: dict, version: ModelVersion, backend, expected: np.ndarray) -> None:
    """The answer is the version's, one prediction per row of `expected` in order, equal to 1e-9."""
    backend_classes = list(backend.classes)
    assert answer["version"] == version.number and answer["backend"] == version.backend
    assert len(answer["predictions"]) == len(expected)
    for row, prediction in zip(expected, answer["predictions"], strict=True):
        got = np.asarray([prediction["probabilities"][c] for c in backend_classes])
        np.testing.assert_allclose(got, row, rtol=0, atol=1e-9)
        assert prediction["value"] == {"choices": [backend_classes[int(np.argmax(row))]]}
        assert abs(prediction["confidence"] - float(row.max())) <= 1e-9


# The real path ---------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("broker", ["filesystem", "redis"])
def test_predictions_through_gunicorn_and_a_real_predict_worker_equal_the_models_own(broker, workers, live):
    if broker == "redis":
        reason = unreachable_reason(REDIS_URL)
        if reason:
            skip_or_fail(f"Redis: {reason}")
    broker_url = REDIS_URL if broker == "redis" else "filesystem://"
    import torch

    torch.set_num_threads(1)
    texts_project = reviews_project(n=80)
    older = model_version_train(
        project=texts_project, params={"C": 0.05}, folds=0, diagnostics=False
    )  # v1, replaced by v2 below
    active = model_version_train(project=texts_project, folds=0, diagnostics=False)
    images_project = digits_project(n=60)
    pictures = model_version_train(project=images_project, params={"epochs": 1}, folds=0, diagnostics=False)
    if broker == "filesystem":
        call_command("createcachetable", "labelloop_cache")  # the throttle's table, as bin/run makes it
    workers(broker_url, queues="predict")
    server = live(CELERY_BROKER_URL=broker_url)

    # Texts: three of the project's items and two new ones, out of order.
    items = list(Item.objects.filter(project=texts_project).order_by("-pk")[:3])
    texts = [items[2].text, "a dull, lifeless film", items[0].text, "wonderful and moving", items[1].text]
    token = _token(_manager(texts_project))
    status, answer = server.predict_texts(texts_project, token, texts)
    assert status == 200, answer
    backend = load_backend(artifact_local(prefix=active.artifact_path))
    expected = _expected(backend, backend.featurize(texts))
    _assert_predictions_equal(answer, active, backend, expected)
    # The items' rows equal the studio's own inputs for those items (the features cache).
    studio = _expected(backend, model_inputs(project=texts_project, backend=backend, item_ids=[items[2].pk]))
    np.testing.assert_allclose(expected[0], studio[0], rtol=0, atol=1e-12)

    # An older version by its number, through the same warm worker.
    status, answer = server.predict_texts(texts_project, token, texts[:2], version=older.number)
    assert status == 200, answer
    old_backend = load_backend(artifact_local(prefix=older.artifact_path))
    _assert_predictions_equal(
        answer, older, old_backend, _expected(old_backend, old_backend.featurize(texts[:2]))
    )
    assert not np.allclose(_expected(old_backend, old_backend.featurize(texts[:2])), expected[:2])

    # Images: two of the project's item files (as stored) and a digit it does not hold.
    image_items = list(Item.objects.filter(project=images_project).order_by("pk")[:2])
    stored = []
    for item in image_items:
        with item.image.open("rb") as file:
            stored.append(file.read())
    new_png = _png(1500)
    files = [_upload("b.png", stored[1]), _upload("new.png", new_png), _upload("a.png", stored[0])]
    status, answer = server.predict_images(images_project, _token(_manager(images_project)), files)
    assert status == 200, answer
    cnn = load_backend(artifact_local(prefix=pictures.artifact_path))
    size = int(cnn.input_shape[-1])
    own = model_inputs(project=images_project, backend=cnn, item_ids=[image_items[1].pk, image_items[0].pk])
    new_input = images_to_pixels([Image.open(io.BytesIO(new_png))], size=size).astype(np.float32) / 255.0
    expected = _expected(cnn, np.concatenate([own[:1], new_input, own[1:]]))
    _assert_predictions_equal(answer, pictures, cnn, expected)
    assert _predict_files() == [], "the worker left uploaded images in the storage"


def test_the_task_in_eager_mode_answers_as_the_model_does(settings):
    """The thin task wrapper, run inline (CELERY_TASK_ALWAYS_EAGER): the same answer, no worker."""
    settings.CELERY_TASK_ALWAYS_EAGER = True  # the Celery app reads Django's settings on each lookup
    project = reviews_project(n=40)
    version = model_version_train(project=project, folds=0, diagnostics=False)
    texts = ["wonderful and moving", "a dull, lifeless film"]
    response = _client(_manager(project)).post(_url(project), {"texts": texts}, format="json")
    assert response.status_code == 200, response.content
    backend = load_backend(artifact_local(prefix=version.artifact_path))
    _assert_predictions_equal(response.json(), version, backend, _expected(backend, backend.featurize(texts)))


# Who may ask -------------------------------------------------------------------------------


def test_a_request_without_a_token_is_refused_401():
    project = make_project()
    _version_row(project)
    response = APIClient().post(_url(project), {"texts": ["hello"]}, format="json")
    assert response.status_code == 401


@pytest.mark.parametrize("role", [Membership.Role.ANNOTATOR, Membership.Role.REVIEWER])
def test_members_who_do_not_manage_the_project_are_refused_403(role):
    user = UserFactory()
    project = make_project(members=[(user, role)])
    _version_row(project)
    response = _client(user).post(_url(project), {"texts": ["hello"]}, format="json")
    assert response.status_code == 403
    assert "managers" in response.json()["detail"]


def test_a_project_the_requester_is_not_a_member_of_is_not_found():
    project = make_project()
    _version_row(project)
    manager_elsewhere = _manager(make_project())
    response = _client(manager_elsewhere).post(_url(project), {"texts": ["hello"]}, format="json")
    assert response.status_code == 404


# What is refused ------------------------------------------------------------------------------


def test_an_empty_batch_is_refused_naming_the_field():
    project = make_project()
    _version_row(project)
    response = _client(_manager(project)).post(_url(project), {"texts": []}, format="json")
    assert response.status_code == 400
    assert response.json() == {"texts": ["texts: the batch is empty; send 1 to 256 texts"]}


def test_a_body_without_texts_is_refused_naming_the_field():
    project = make_project()
    _version_row(project)
    response = _client(_manager(project)).post(_url(project), {"text": ["hello"]}, format="json")
    assert response.status_code == 400
    assert "texts: required" in response.json()["texts"][0]


def test_257_texts_are_refused_naming_the_limit():
    project = make_project()
    _version_row(project)
    response = _client(_manager(project)).post(_url(project), {"texts": ["hello"] * 257}, format="json")
    assert response.status_code == 400
    assert response.json() == {"texts": ["texts: 257 texts, over the limit of 256 a request"]}


def test_a_body_over_the_byte_cap_is_refused_413_before_it_is_read(settings):
    settings.LABELLOOP_PREDICT_MAX_BYTES = 1000
    project = make_project()
    _version_row(project)
    client = _client(_manager(project))
    # Exactly at the cap the body is read (and its one blank text refused, so nothing is dispatched).
    at_the_cap = json.dumps({"texts": [" " * (1000 - len('{"texts": [""]}'))]})
    assert len(at_the_cap) == 1000
    response = client.post(_url(project), at_the_cap, content_type="application/json")
    assert (response.status_code, response.json()) == (400, {"texts": ["texts[0]: the text is empty"]})
    response = client.post(
        _url(project), json.dumps({"texts": ["x" * 2000]}), content_type="application/json"
    )
    assert response.status_code == 413
    assert "over the limit of 1,000" in response.json()["detail"]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (3, "texts[1]: a string expected, not a number"),
        (None, "texts[1]: a string expected, not null"),
        (["nested"], "texts[1]: a string expected, not a list"),
        ("   ", "texts[1]: the text is empty"),
        ("a\x00b", "texts[1]: contains a NUL character"),
        ("\ud800", "texts[1]: not valid Unicode (a lone surrogate at character 0)"),
        ("x" * 100_001, "texts[1]: 100,001 characters, over the limit of 100,000"),
    ],
)
def test_a_text_that_is_not_a_usable_string_is_refused_naming_its_index(text, message):
    project = make_project()
    _version_row(project)
    body = json.dumps({"texts": ["fine", text, "fine too"]})
    response = _client(_manager(project)).post(_url(project), body, content_type="application/json")
    assert response.status_code == 400
    assert response.json() == {"texts": [message]}


def test_a_body_that_is_not_json_is_refused_400():
    project = make_project()
    _version_row(project)
    response = _client(_manager(project)).post(_url(project), b'{"texts": [', content_type="application/json")
    assert response.status_code == 400


def test_texts_sent_as_multipart_to_a_text_model_are_refused_naming_the_field():
    project = make_project()
    _version_row(project)
    response = _client(_manager(project)).post(_url(project), {"images": [_upload("a.png", _png())]})
    assert response.status_code == 400
    assert "texts" in response.json()


def _image_project():
    project = make_project(task_type="image_classification", labels=[str(d) for d in range(10)])
    _version_row(project, backend="image_cnn")
    return project


def test_an_uploaded_file_that_is_not_an_image_is_refused_naming_it_and_nothing_is_stored():
    project = _image_project()
    files = [_upload("zero.png", _png()), _upload("cat.png", b"meow, not a picture")]
    response = _client(_manager(project)).post(_url(project), {"images": files})
    assert response.status_code == 400
    assert response.json()["images"][0].startswith("images[1] (cat.png): not an image")
    assert _predict_files() == []


def test_a_truncated_png_is_refused_naming_it():
    project = _image_project()
    png = _png()
    files = [_upload("cut.png", png[: len(png) // 2])]
    response = _client(_manager(project)).post(_url(project), {"images": files})
    assert response.status_code == 400
    assert response.json()["images"][0].startswith("images[0] (cut.png): a broken image")
    assert _predict_files() == []


def test_an_image_request_without_files_is_refused_naming_the_field():
    project = _image_project()
    response = _client(_manager(project)).post(_url(project), {"other": "x"})
    assert response.status_code == 400
    assert response.json()["images"][0].startswith("images: no files")


def test_json_to_an_image_model_is_refused_naming_the_field():
    project = _image_project()
    response = _client(_manager(project)).post(_url(project), {"texts": ["a"]}, format="json")
    assert response.status_code == 400
    assert "images" in response.json()


def test_257_images_are_refused_naming_the_limit():
    project = _image_project()
    png = _png()
    files = [_upload(f"{n}.png", png) for n in range(257)]
    response = _client(_manager(project)).post(_url(project), {"images": files})
    assert response.status_code == 400
    assert response.json() == {"images": ["images: 257 files, over the limit of 256 a request"]}


def test_a_project_with_no_model_version_answers_409_with_what_to_do():
    project = make_project()
    response = _client(_manager(project)).post(_url(project), {"texts": ["hello"]}, format="json")
    assert response.status_code == 409
    assert "no active model version" in response.json()["detail"]
    assert f"/api/projects/{project.pk}/training-runs/" in response.json()["detail"]


@pytest.mark.parametrize("version", ["7", "abc", "-1"])
def test_a_version_this_project_does_not_have_is_refused_naming_the_field(version):
    project = make_project()
    _version_row(project)
    other = make_project()
    for _ in range(7):
        _version_row(other, active=False)  # the other project has a version 7: it does not count
    response = _client(_manager(project)).post(_url(project, version), {"texts": ["hello"]}, format="json")
    assert response.status_code == 400
    message = response.json()["version"][0]
    assert message.startswith("version: ")
    assert "is not a version number" in message or "(its versions: 1)" in message


# The rate limit and the worker ---------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_the_rate_limit_is_counted_across_two_web_processes(settings, live):
    """Two requests allowed an hour: one from this process, one from gunicorn; the third, from
    either, is refused 429 with Retry-After. Each process alone has seen fewer than the limit."""
    settings.LABELLOOP_PREDICT_RATE = "2/hour"
    caches["throttle"].clear()  # counts of an earlier run under the same user id
    project = make_project()  # no model: 409, but every request is counted
    manager = _manager(project)
    server = live(LABELLOOP_PREDICT_RATE="2/hour")
    here = _client(manager)

    assert here.post(_url(project), {"texts": ["a"]}, format="json").status_code == 409
    status, body = server.predict_texts(project, _token(manager), ["a"])
    assert status == 409, body
    refused = here.post(_url(project), {"texts": ["a"]}, format="json")
    assert refused.status_code == 429
    assert 0 < int(refused["Retry-After"]) <= 3600
    status, body = server.predict_texts(project, _token(manager), ["a"])
    assert status == 429, body
    # Another manager of the project has a count of their own.
    other = UserFactory()
    membership_add(project=project, user=other, role=Membership.Role.MANAGER)
    assert _client(other).post(_url(project), {"texts": ["a"]}, format="json").status_code == 409


def test_an_unreachable_throttle_cache_answers_503_not_500(settings):
    settings.CACHES = {
        **settings.CACHES,
        "throttle": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": "redis://127.0.0.1:9/0",
        },
    }
    project = make_project()
    _version_row(project)
    response = _client(_manager(project)).post(_url(project), {"texts": ["hello"]}, format="json")
    assert response.status_code == 503
    assert "rate limiter's cache is unreachable" in response.json()["detail"]


def test_no_predict_worker_answers_503_with_what_to_check_and_leaves_no_file(settings):
    settings.LABELLOOP_PREDICT_TIMEOUT = 0.5
    project = _image_project()
    response = _client(_manager(project)).post(_url(project), {"images": [_upload("zero.png", _png())]})
    assert response.status_code == 503
    assert "no predict worker answered within 0.5 s" in response.json()["detail"]
    assert "'predict' queue" in response.json()["detail"]
    assert _predict_files() == []


def test_the_schema_documents_the_endpoint():
    schema = APIClient().get("/api/schema/?format=json")
    assert schema.status_code == 200
    operation = schema.json()["paths"]["/api/projects/{project_id}/predict/"]["post"]
    assert set(operation["requestBody"]["content"]) == {"application/json", "multipart/form-data"}
    assert {"200", "400", "409", "413", "429", "503"} <= set(operation["responses"])
