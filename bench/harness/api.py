"""HTTP as the studio's users speak it: one user's connection (`Client`), the lead and annotators with
their tokens, projects and members created through the REST API (`Studio`), a browser session, and
the two bulk transfers measured over HTTP (the multipart import, the streamed JSONL export).

Users are made in the database (hashing a password is slow on purpose); everything else a user
would do goes through the API.
"""

import http.client
import json
import time
import uuid
from dataclasses import dataclass

from bench.harness.dataset import REVIEW_LABELS
from bench.harness.memory import peak_reset, proc_status
from bench.harness.servers import Gunicorn

PASSWORD = "bench-password-not-secret"


class HttpError(RuntimeError):
    pass


class Client:
    """One simulated user: one http.client connection, reopened when the server closes it.

    gthread workers keep it alive between requests; sync workers (--threads 1) close it after
    every response, so each request then includes a TCP connect over loopback.
    """

    def __init__(self, port: int, *, token: str | None = None, cookie: str | None = None):
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
        self.headers = {"Host": f"127.0.0.1:{port}", "Accept": "application/json"}
        if token:
            self.headers["Authorization"] = f"Token {token}"
        if cookie:
            self.headers["Cookie"] = cookie

    def request(
        self, method: str, path: str, body: object = None, *, raw: bytes | None = None, content_type: str = ""
    ) -> tuple[int, bytes, float]:
        """(status, body, seconds from sending the request to the last byte of the response)."""
        headers = dict(self.headers)
        data = raw
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        elif content_type:
            headers["Content-Type"] = content_type
        start = time.perf_counter()
        try:
            self.conn.request(method, path, body=data, headers=headers)
            response = self.conn.getresponse()
            payload = response.read()
        except (OSError, http.client.HTTPException):
            self.conn.close()
            raise
        return response.status, payload, time.perf_counter() - start

    def json(self, method: str, path: str, body: object = None, expect: tuple[int, ...] = (200, 201)) -> dict:
        status, payload, _ = self.request(method, path, body)
        if status not in expect:
            raise HttpError(f"{method} {path} -> {status}: {payload[:500]!r}")
        return json.loads(payload) if payload else {}

    def close(self) -> None:
        self.conn.close()


@dataclass
class Studio:
    """The studio as its lead and annotators reach it: the server's port and their tokens."""

    port: int
    lead_token: str
    tokens: list[str]  # annotator #1 .. #8
    usernames: list[str]
    user_ids: list[int]

    def lead(self) -> Client:
        return Client(self.port, token=self.lead_token)

    def project_create(self, *, name: str, overlap: int) -> int:
        lead = self.lead()
        body = {"name": name, "task_type": "text_classification", "labels": REVIEW_LABELS, "overlap": overlap}
        project_id = lead.json("POST", "/api/projects/", body, expect=(201,))["id"]
        for username in self.usernames:
            lead.json(
                "POST",
                f"/api/projects/{project_id}/members/",
                {"username": username, "role": "annotator"},
                expect=(201, 200),
            )
        lead.close()
        return project_id


def tokens_obtain(port: int, usernames: list[str]) -> list[str]:
    client = Client(port)
    tokens = [
        client.json("POST", "/api/auth/token/", {"username": name, "password": PASSWORD})["token"]
        for name in usernames
    ]
    client.close()
    return tokens


def users_create(count: int) -> tuple[object, list]:
    """The lead and `count` annotators, sharing one password hash (hashing is slow on purpose)."""
    from django.contrib.auth import get_user_model
    from django.contrib.auth.hashers import make_password

    user_model = get_user_model()
    hashed = make_password(PASSWORD)
    lead = user_model.objects.create(username="bench-lead", password=hashed, email="lead@bench.invalid")
    annotators = [
        user_model.objects.create(username=f"bench-annotator{n}", password=hashed)
        for n in range(1, count + 1)
    ]
    return lead, annotators


def session_cookie(user) -> str:
    """A logged-in browser session for `user`, made the way django.contrib.auth.login makes one."""
    from importlib import import_module

    from django.conf import settings
    from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY

    store = import_module(settings.SESSION_ENGINE).SessionStore()
    store[SESSION_KEY] = str(user.pk)
    store[BACKEND_SESSION_KEY] = "django.contrib.auth.backends.ModelBackend"
    store[HASH_SESSION_KEY] = user.get_session_auth_hash()
    store.create()
    return f"{settings.SESSION_COOKIE_NAME}={store.session_key}"


def http_import(*, studio: Studio, project_id: int, data: bytes, items: int) -> dict:
    """POST the CSV to the API's import endpoint, if there is one, and wait for its job to finish."""
    lead = studio.lead()
    path = f"/api/projects/{project_id}/imports/"
    boundary = uuid.uuid4().hex
    parts = [
        f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode()
        for name, value in (("format", "csv"), ("text_column", "text"), ("id_column", "id"))
    ]
    parts.append(
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="bench.csv"\r\n'
        f"Content-Type: text/csv\r\n\r\n".encode()
        + data
        + f"\r\n--{boundary}--\r\n".encode()
    )
    start = time.perf_counter()
    status, payload, took = lead.request(
        "POST", path, raw=b"".join(parts), content_type=f"multipart/form-data; boundary={boundary}"
    )
    if status in (404, 405):
        return {"status": status, "text": "n/a (endpoint missing)", "seconds": None}
    if status not in (200, 201, 202):
        return {"status": status, "text": f"n/a (HTTP {status}: {payload[:120]!r})", "seconds": None}
    job = json.loads(payload) if payload else {}
    queued = job.get("status") in ("queued", "running")
    # Past the synchronous row limit the job is queued for the Celery worker: poll it.
    deadline = start + 300
    job_id = job.get("id")
    while job.get("status") in ("queued", "running") and job_id and time.perf_counter() < deadline:
        time.sleep(0.1)
        status, payload, _ = lead.request("GET", f"{path}{job_id}/")
        if status != 200:
            break
        job = json.loads(payload)
    seconds = time.perf_counter() - start
    lead.close()
    state = job.get("status", "done")
    found = {
        "status": status,
        "job": {k: job.get(k) for k in ("id", "status", "items_created", "rows_total", "error")},
        "queued_for_worker": queued,
        "upload_answered_s": round(took, 3),
    }
    if state in ("queued", "running"):
        return {**found, "text": f"n/a (job still {state} after {seconds:.0f} s)", "seconds": None}
    if state != "succeeded" or job.get("items_created") != items:
        return {**found, "text": f"n/a (job {state}: {str(job.get('error'))[:100]})", "seconds": None}
    how = f"upload answered in {took:.2f} s, then a Celery job" if queued else "imported within the request"
    return {**found, "text": f"{seconds:.2f} s ({how})", "seconds": round(seconds, 3)}


def export_http(*, studio: Studio, server: Gunicorn, project_id: int, lead_user, items: int) -> dict:
    """Stream the JSONL export to the end; the gunicorn workers' memory before and after."""
    candidates = [
        (
            "API",
            f"/api/projects/{project_id}/export/?format=jsonl",
            Client(studio.port, token=studio.lead_token),
        ),
        (
            "browser",
            f"/projects/{project_id}/export/?format=jsonl",
            Client(studio.port, cookie=session_cookie(lead_user)),
        ),
    ]
    workers = server.worker_pids()
    before = {pid: proc_status(pid).get("VmRSS", 0) for pid in workers}
    reset = all([peak_reset(pid) for pid in workers])  # VmHWM back to the current RSS, every worker
    result: dict = {"tried": []}
    for route, path, client in candidates:
        conn = client.conn
        start = time.perf_counter()
        conn.request("GET", path, headers=client.headers)
        response = conn.getresponse()
        first_byte = time.perf_counter() - start
        if response.status == 404:
            response.read()
            result["tried"].append(f"{route} {path}: 404")
            client.close()
            continue
        size = lines = 0
        while chunk := response.read(1 << 20):
            size += len(chunk)
            lines += chunk.count(b"\n")
        seconds = time.perf_counter() - start
        client.close()
        result.update(
            route=route,
            path=path,
            status=response.status,
            location=response.getheader("Location"),
            seconds=round(seconds, 3),
            first_byte_s=round(first_byte, 3),
            bytes=size,
            lines=lines,
            complete=response.status == 200 and lines == items,
        )
        break
    after = {pid: proc_status(pid) for pid in workers}
    growth = {pid: after[pid].get("VmRSS", 0) - before[pid] for pid in workers if after[pid]}
    peak = {pid: after[pid].get("VmHWM", 0) - before[pid] for pid in workers if after[pid]}
    result.update(
        rss_growth_mb=round(max(growth.values(), default=0) / 1024, 1),
        peak_growth_mb=round(max(peak.values(), default=0) / 1024, 1) if reset else None,
        rss_before_mb={pid: round(kb / 1024, 1) for pid, kb in before.items()},
    )
    return result
