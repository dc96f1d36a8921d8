"""Limits on input (issue 17, item 1): a body over LABELLOOP_MAX_REQUEST_BYTES is refused from
its Content-Length before a byte is read, a chunked body gets 411, an upload is stopped by the
counting handler at most 1 MiB past the limit, and NUL bytes are refused with a message."""

import io

import pytest
from django.core.exceptions import RequestDataTooBig
from django.test import Client, override_settings

from annotate.limits import UPLOAD_SLACK, CountingUploadHandler
from annotate.models import Item
from tests.factories import UserFactory, make_project

pytestmark = pytest.mark.django_db

LIMIT = 64 * 1024


class Unreadable(io.RawIOBase):
    """A request body that fails the test if anything reads it."""

    def read(self, *args):
        raise AssertionError("the body was read")

    readline = readinto = read


@pytest.fixture
def lead():
    user = UserFactory()
    project = make_project(labels=["a", "b"], items=0, members=[])
    project.memberships.filter(role="manager").update(user=user)
    client = Client(raise_request_exception=False)
    client.force_login(user)
    return project, client


def _post(client, path, *, length: str | None, **extra):
    meta = {"wsgi.input": Unreadable(), **extra}
    if length is not None:
        meta["CONTENT_LENGTH"] = length
    return client.generic("POST", path, data=b"", content_type="application/json", **meta)


@override_settings(LABELLOOP_MAX_REQUEST_BYTES=LIMIT)
@pytest.mark.parametrize(
    "path", ["/api/projects/{pk}/imports/", "/projects/{pk}/import/", "/accounts/login/"]
)
def test_a_body_declared_over_the_limit_is_refused_before_it_is_read(lead, path):
    project, client = lead
    url = path.format(pk=project.pk)
    # Client.generic sets CONTENT_LENGTH from the data; the declared length is what counts.
    response = client.generic(
        "POST", url, data=b"x", content_type="application/json", CONTENT_LENGTH=str(LIMIT + 1),
        **{"wsgi.input": Unreadable()},
    )  # fmt: skip
    assert response.status_code == 413, response.content
    assert "limit of 0.0625 MiB" in response.content.decode()
    if url.startswith("/api/"):
        assert response["Content-Type"] == "application/json"
    assert not Item.objects.exists()


@override_settings(LABELLOOP_MAX_REQUEST_BYTES=LIMIT)
def test_a_chunked_body_without_a_length_gets_411_and_a_lying_length_400(lead):
    project, client = lead
    url = f"/api/projects/{project.pk}/imports/"
    response = client.generic(
        "POST", url, data=b"", content_type="application/json",
        **{"wsgi.input": Unreadable(), "HTTP_TRANSFER_ENCODING": "chunked", "CONTENT_LENGTH": ""},
    )  # fmt: skip
    assert response.status_code == 411
    assert "Content-Length" in response.json()["detail"]
    for bad in ("-5", "12abc", "1e9"):
        response = client.generic(
            "POST", url, data=b"", content_type="application/json",
            **{"wsgi.input": Unreadable(), "CONTENT_LENGTH": bad},
        )  # fmt: skip
        assert response.status_code == 400, bad
        assert "Content-Length" in response.json()["detail"]


@override_settings(LABELLOOP_MAX_REQUEST_BYTES=LIMIT)
def test_a_body_at_the_limit_goes_through(lead):
    project, client = lead
    rows = b"".join(b'{"text": "item %d"}\n' % n for n in range(3))
    upload = io.BytesIO(rows)
    upload.name = "items.jsonl"
    response = client.post(f"/api/projects/{project.pk}/imports/", {"file": upload})
    assert response.status_code in (200, 201, 202), response.content
    assert Item.objects.filter(project=project).count() == 3


@override_settings(LABELLOOP_MAX_REQUEST_BYTES=LIMIT)
def test_the_counting_handler_stops_an_upload_at_most_1_mib_past_the_limit():
    handler = CountingUploadHandler()
    chunk = b"x" * 64 * 1024
    read = 0
    with pytest.raises(RequestDataTooBig, match="upload: over"):
        for start in range(0, 100 * 1024 * 1024, len(chunk)):
            read += len(chunk)
            assert handler.receive_data_chunk(chunk, start) == chunk
    assert LIMIT + UPLOAD_SLACK < read <= LIMIT + UPLOAD_SLACK + len(chunk)


def test_the_counting_handler_is_what_the_studio_uploads_through(lead, settings):
    """Without the Content-Length check, an upload over the limit is still stopped as it is read:
    400, nothing imported."""
    project, client = lead
    settings.LABELLOOP_MAX_REQUEST_BYTES = LIMIT
    settings.MIDDLEWARE = [
        m for m in settings.MIDDLEWARE if m != "annotate.limits.RequestSizeLimitMiddleware"
    ]
    rows = b"".join(b'{"text": "item %07d"}\n' % n for n in range(80_000))  # about 1.8 MiB
    assert len(rows) > LIMIT + UPLOAD_SLACK
    upload = io.BytesIO(rows)
    upload.name = "items.jsonl"
    response = client.post(f"/api/projects/{project.pk}/imports/", {"file": upload})
    assert response.status_code == 400, response.content
    assert not Item.objects.exists()
