"""CI: the studio as the README's production section runs it, on PostgreSQL and Redis.

Run from a checkout's root with the venv that `bin/run` made from requirements.txt alone:
    .venv/bin/python .ci/production_check.py
It checks the pins (`pip check`, every runtime module imports, kombu's Redis transport too), makes
a fresh database and Redis database, migrates, runs `manage.py check --deploy`, starts every line
of the Procfile (gunicorn, both workers, beat) and goes through HTTP as a lead would: import a
small CSV, label through the API, request a training run and wait for it, read a proposal, export.
It fails if any step fails or any process exits before the end. Standard library and the runtime
requirements only.
"""

import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

ROOT = Path.cwd()
BIN = Path(sys.executable).parent
POSTGRES = os.environ.get("LABELLOOP_TEST_POSTGRES_URL", "postgres://postgres@127.0.0.1:5432/labelloop")
REDIS = os.environ.get("LABELLOOP_CHECK_REDIS_URL", "redis://127.0.0.1:6379/14")
N_ITEMS, N_LABELED = 60, 48
GOOD = ["wonderful", "moving", "brilliant", "funny", "gripping", "superb"]
BAD = ["dull", "tedious", "clumsy", "boring", "lifeless", "awful"]


def say(message: str) -> None:
    print(f"production check: {message}", flush=True)


def fail(message: str) -> None:
    print(f"production check FAILED: {message}", flush=True)
    raise SystemExit(1)


def run(*command: str, env: dict) -> str:
    result = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True)
    if result.returncode != 0:
        fail(
            f"{' '.join(command)} exited {result.returncode}:\n{result.stdout[-3000:]}{result.stderr[-3000:]}"
        )
    return result.stdout


def check_pins(env: dict) -> None:
    run(str(BIN / "python"), "-m", "pip", "check", "--disable-pip-version-check", env=env)
    code = (
        "import django, importlib, pkgutil; django.setup()\n"
        "for pkg in ('config', 'annotate', 'training'):\n"
        "    for m in pkgutil.walk_packages(importlib.import_module(pkg).__path__, pkg + '.'):\n"
        "        importlib.import_module(m.name)\n"
        "import kombu.transport.redis, zoneinfo, tzdata, cleanlab\n"
        "import psycopg\n"
        "assert psycopg.pq.__impl__ in ('binary', 'c'), 'psycopg runs on ' + psycopg.pq.__impl__\n"
    )
    run(str(BIN / "python"), "-c", code, env=env)
    say(
        "pip check clean; every runtime module imports, kombu's Redis transport and cleanlab included;"
        " psycopg runs on its C implementation"
    )


def fresh_services(database_url: str) -> None:
    import psycopg
    import redis

    name = database_url.rsplit("/", 1)[1]
    with psycopg.connect(database_url.rsplit("/", 1)[0] + "/postgres", autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    redis.Redis.from_url(REDIS).flushdb()


def procfile() -> dict[str, str]:
    lines = (ROOT / "Procfile").read_text().splitlines()
    entries = [line.split(":", 1) for line in lines if line.strip() and not line.startswith("#")]
    return {name.strip(): command.strip() for name, command in entries}


class Studio:
    """The Procfile's processes, each in its own process group, logging to a file."""

    def __init__(self, env: dict, logs: Path) -> None:
        self.env, self.logs, self.processes = env, logs, {}

    def start(self) -> None:
        for name, command in procfile().items():
            log = (self.logs / f"{name}.log").open("w")
            self.processes[name] = subprocess.Popen(
                ["bash", "-c", f"exec {command}"], cwd=ROOT, env=self.env, stdout=log,
                stderr=subprocess.STDOUT, start_new_session=True,
            )  # fmt: skip
            say(f"started {name} (pid {self.processes[name].pid}): {command}")

    def check_alive(self) -> None:
        for name, process in self.processes.items():
            if process.poll() is not None:
                fail(f"{name} exited with {process.returncode}:\n{self.tail(name)}")

    def tail(self, name: str) -> str:
        return (self.logs / f"{name}.log").read_text()[-4000:]

    def wait_for_log(self, name: str, text: str, seconds: float = 90) -> None:
        deadline = time.monotonic() + seconds
        while text not in self.tail(name):
            self.check_alive()
            if time.monotonic() > deadline:
                fail(f"{name} did not log {text!r} in {seconds:.0f} s:\n{self.tail(name)}")
            time.sleep(0.3)

    def stop(self) -> None:
        for process in self.processes.values():
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        deadline = time.monotonic() + 20
        for process in self.processes.values():
            try:
                process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()


class Api:
    """JSON over HTTP to the studio, as a client behind the TLS proxy (X-Forwarded-Proto)."""

    def __init__(self, base: str, studio: Studio) -> None:
        self.base, self.studio, self.token = base, studio, None

    def call(self, method: str, path: str, body=None, *, raw: bytes | None = None, content_type=None):
        self.studio.check_alive()
        headers = {"X-Forwarded-Proto": "https", "Accept": "application/json"}
        if self.token:
            headers["Authorization"] = f"Token {self.token}"
        data = raw
        if body is not None:
            data, content_type = json.dumps(body).encode(), "application/json"
        if content_type:
            headers["Content-Type"] = content_type
        request = urllib.request.Request(self.base + path, data=data, method=method, headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=60) as response:
                payload, status = response.read(), response.status
                kind = response.headers.get_content_type()
        except urllib.error.HTTPError as exc:
            fail(f"{method} {path} answered {exc.code}: {exc.read()[:2000]!r}")
        return status, (json.loads(payload) if kind == "application/json" and payload else payload)

    def upload(self, path: str, filename: str, content: bytes, fields: dict) -> dict:
        boundary = uuid.uuid4().hex
        parts = [
            f'--{boundary}\r\nContent-Disposition: form-data; name="{key}"\r\n\r\n{value}\r\n'.encode()
            for key, value in fields.items()
        ]
        parts.append(
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{filename}"\r\n'
            "Content-Type: text/csv\r\n\r\n".encode()
            + content
            + b"\r\n"
        )
        parts.append(f"--{boundary}--\r\n".encode())
        return self.call(
            "POST", path, raw=b"".join(parts), content_type=f"multipart/form-data; boundary={boundary}"
        )[1]


def wait_ready(api: Api, seconds: float = 60) -> None:
    """Until the login page answers 200 (over the proxy's https)."""
    deadline = time.monotonic() + seconds
    request = urllib.request.Request(api.base + "/accounts/login/", headers={"X-Forwarded-Proto": "https"})
    while True:
        api.studio.check_alive()
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                if response.status == 200:
                    return
        except (ConnectionError, urllib.error.URLError):
            pass
        if time.monotonic() > deadline:
            fail(f"the web server did not answer in {seconds:.0f} s:\n{api.studio.tail('web')}")
        time.sleep(0.3)


def go_through_the_loop(api: Api, password: str) -> None:
    _, body = api.call("POST", "/api/auth/token/", {"username": "lead", "password": password})
    api.token = body["token"]
    _, project = api.call(
        "POST", "/api/projects/",
        {"name": "Production check", "labels": ["good", "bad"], "training_min_labels": 10},
    )  # fmt: skip
    base = f"/api/projects/{project['id']}"
    rows = ["id,text"] + [
        f"r{i},a {(GOOD if i % 2 else BAD)[i % 6]} and {(GOOD if i % 2 else BAD)[(i // 2) % 6]} film {i}"
        for i in range(N_ITEMS)
    ]
    job = api.upload(f"{base}/imports/", "reviews.csv", "\n".join(rows).encode(), {"text_column": "text"})
    while job["status"] not in ("succeeded", "failed"):
        time.sleep(0.3)
        job = api.call("GET", f"{base}/imports/{job['id']}/")[1]
    if job["status"] != "succeeded" or job["items_created"] != N_ITEMS:
        fail(f"the import ended {job}")
    say(f"imported {N_ITEMS} items from a CSV")
    for _ in range(N_LABELED):
        status, lease = api.call("POST", f"{base}/next/", {})
        if status != 200:
            fail(f"next answered {status} before {N_LABELED} labels")
        number = int(lease["item"]["text"].rsplit(" ", 1)[1])
        value = {"choices": ["good" if number % 2 else "bad"]}
        api.call(
            "POST", f"{base}/annotations/", {"item": lease["item"]["id"], "value": value, "active_ms": 900}
        )
    say(f"labeled {N_LABELED} items through the API")
    _, run = api.call("POST", f"{base}/training-runs/", {})
    deadline = time.monotonic() + 180
    while run["status"] in ("queued", "running"):
        if time.monotonic() > deadline:
            fail(f"the training run stayed {run['status']}:\n{api.studio.tail('training')}")
        time.sleep(0.5)
        run = api.call("GET", f"{base}/training-runs/{run['id']}/")[1]
    if run["status"] != "succeeded":
        fail(f"the training run ended {run}:\n{api.studio.tail('training')}")
    say(f"training run {run['id']} succeeded; {run['items_scored']} items scored")
    # A random-slice pick (the project's random share) is served without a proposal, by design:
    # label it and ask again; the queue's order then serves a proposed item.
    slice_labeled = 0
    for _ in range(20):
        status, lease = api.call("POST", f"{base}/next/", {})
        if status != 200 or not lease["item"].get("random_slice"):
            break
        if lease["item"]["proposal"] is not None:
            fail(f"a random-slice item came with a proposal: {lease}")
        value = {"choices": ["good"]}
        api.call(
            "POST", f"{base}/annotations/", {"item": lease["item"]["id"], "value": value, "active_ms": 900}
        )
        slice_labeled += 1
    proposal = lease["item"]["proposal"] if status == 200 else None
    if not proposal or proposal["value"]["choices"][0] not in ("good", "bad"):
        fail(f"no proposal on the next item: {lease}")
    say(f"the next item comes with a proposal: {proposal}")
    say(f"random-slice items served first, without a proposal: {slice_labeled}")
    _, export = api.call("GET", f"{base}/export/?format=jsonl")
    records = [json.loads(line) for line in export.decode().splitlines()]
    labeled = sum(1 for record in records if record["annotations"])
    if len(records) != N_ITEMS or labeled != N_LABELED + slice_labeled:
        fail(f"the export has {len(records)} items, {labeled} labeled")
    say(f"exported {len(records)} items, {labeled} with annotations")
    predictions_outside_the_studio(api, base)


def predictions_outside_the_studio(api: "Api", base: str) -> None:
    """The same predictions from the endpoint (the predict worker) and from the downloaded model
    run by its loader in a process of its own: same labels, probabilities within 1e-6."""
    import io
    import zipfile

    texts = ["a superb and moving film", "a tedious, clumsy film", "a film"]
    _, answer = api.call("POST", f"{base}/predict/", {"texts": texts})
    number = answer["version"]
    _, archive = api.call("GET", f"{base}/model-versions/{number}/download/")
    folder = Path(tempfile.mkdtemp(prefix="labelloop-download-"))
    with zipfile.ZipFile(io.BytesIO(archive)) as zipped:
        zipped.extractall(folder)
    (unzipped,) = folder.iterdir()
    loader = [str(BIN / "python"), "-m", "labelloop_model", *(a for t in texts for a in ("--text", t))]
    done = subprocess.run(loader, cwd=unzipped, capture_output=True, text=True, timeout=120, env={"PATH": ""})
    if done.returncode != 0:
        fail(f"the downloaded model's loader failed: {done.stderr}")
    lines = [json.loads(line) for line in done.stdout.splitlines()]
    for served, loaded in zip(answer["predictions"], lines, strict=True):
        gap = max(
            abs(served["probabilities"][c] - loaded["probabilities"][c]) for c in served["probabilities"]
        )
        if served["value"] != loaded["value"] or gap > 1e-6:
            fail(f"the endpoint said {served}, the downloaded model {loaded}")
    agreed = "; ".join(f"{p['value']['choices'][0]} {max(p['probabilities'].values()):.3f}" for p in lines)
    say(f"v{number}: the endpoint and the downloaded model agree on {len(texts)} texts: {agreed}")


def main() -> None:
    scratch = Path(tempfile.mkdtemp(prefix="labelloop-production-"))
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    password = secrets.token_urlsafe(16)
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "LABELLOOP_", "CELERY_"))},
        "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}",
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "DJANGO_ENV": "production",
        "DJANGO_SECRET_KEY": secrets.token_urlsafe(50),
        "DATABASE_URL": POSTGRES.rsplit("/", 1)[0] + "/labelloop_production_check",
        "CELERY_BROKER_URL": REDIS,
        "DJANGO_ALLOWED_HOSTS": "127.0.0.1,localhost",
        "LABELLOOP_VAR_DIR": str(scratch / "var"),
        "LABELLOOP_BIND": f"127.0.0.1:{port}",
        "DJANGO_SUPERUSER_PASSWORD": password,
        "PYTHONUNBUFFERED": "1",
    }
    check_pins(env)
    fresh_services(env["DATABASE_URL"])
    manage = [str(BIN / "python"), "manage.py"]
    run(*manage, "migrate", "--noinput", "-v0", env=env)
    run(*manage, "collectstatic", "--noinput", "-v0", env=env)
    print(run(*manage, "check", "--deploy", "--fail-level", "WARNING", env=env).strip())
    run(*manage, "createsuperuser", "--noinput", "--username", "lead", "--email", "lead@example.org", env=env)
    studio = Studio(env, scratch)
    studio.start()
    try:
        for name in ("training", "default", "predict"):
            studio.wait_for_log(name, "ready.")
        studio.wait_for_log("beat", "beat: Starting")
        api = Api(f"http://127.0.0.1:{port}", studio)
        wait_ready(api)
        started = time.monotonic()
        go_through_the_loop(api, password)
        studio.check_alive()
        say(f"every process still up after the loop ({time.monotonic() - started:.1f} s): "
            + ", ".join(f"{n} {p.pid}" for n, p in studio.processes.items()))  # fmt: skip
    finally:
        studio.stop()
    say("ok")


if __name__ == "__main__":
    main()
