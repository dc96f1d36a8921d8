"""Items created from a JSON body against the same items uploaded as a file, on PostgreSQL.

    .venv/bin/python -m bench.bench_items_create [--rows 10000] [--repeats 5] [--database-url URL]

Target: the JSON body (POST /api/projects/{id}/items/) creates at least 80% of the items per
second of the file path (POST /api/projects/{id}/imports/ with the same rows as a CSV), since
both go through the import's row rules and batch writer (COPY on PostgreSQL).

Load model: one manager, one request at a time, in this process (Django's test client over the
WSGI handler: no network, no server, no concurrency), against a fresh PostgreSQL database
(`--database-url`, default postgres://postgres@127.0.0.1:5432/labelloop_bench_items: dropped and
created, then migrated). Each repeat creates a fresh project and times one request of each path,
alternating which goes first; request bodies are encoded before the clock starts, so the figures
are the server's work: parsing, the row rules, the writes, the commit and the ANALYZE after it.
The rows are `{"external_id": "r<n>", "text": "<n>: <a sentence of ~60 characters>"}`, the CSV
`external_id,text` with `--id-column external_id`. Prints each repeat and the medians; exits 1
when the target is missed.
"""

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
import urllib.parse
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/labelloop_bench_items"
TARGET = 0.8
SENTENCE = "a slow but rewarding film about memory, loss and a very good dog"


def database_recreate(database_url: str) -> None:
    import psycopg
    from psycopg import sql

    parts = urllib.parse.urlsplit(database_url)
    name = parts.path.lstrip("/")
    maintenance = urllib.parse.urlunsplit(parts._replace(path="/postgres"))
    with psycopg.connect(maintenance, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=10_000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--database-url", default=DEFAULT_DATABASE_URL)
    args = parser.parse_args()
    if not 0 < args.rows <= 10_000:
        parser.error("--rows: 1 to 10,000 (above the import's synchronous limit the file path queues a job)")

    database_recreate(args.database_url)
    var_dir = tempfile.mkdtemp(prefix="labelloop-bench-items-")
    os.environ.update(
        DATABASE_URL=args.database_url,
        LABELLOOP_VAR_DIR=var_dir,
        DJANGO_SETTINGS_MODULE="config.settings",
        DJANGO_ALLOWED_HOSTS="testserver",
        LABELLOOP_LOG_LEVEL="WARNING",
    )
    os.environ.pop("DJANGO_ENV", None)
    sys.path.insert(0, str(REPO))
    import django

    django.setup()
    from django.contrib.auth import get_user_model
    from django.core.management import call_command
    from django.test.client import BOUNDARY, MULTIPART_CONTENT, encode_multipart
    from django.urls import reverse
    from rest_framework.test import APIClient

    from annotate.models import Item
    from annotate.projects import project_create

    call_command("migrate", verbosity=0)
    rows = [{"external_id": f"r{n}", "text": f"{n}: {SENTENCE}"} for n in range(args.rows)]
    body = json.dumps({"items": rows}).encode()
    csv_text = "external_id,text\n" + "".join(f'{r["external_id"]},"{r["text"]}"\n' for r in rows)
    lead = get_user_model().objects.create_user(username="bench-lead")
    client = APIClient()
    client.force_authenticate(lead)

    def json_body(project) -> float:
        url = reverse("api:item-list", kwargs={"project_id": project.pk})
        started = time.perf_counter()
        response = client.post(url, body, content_type="application/json")
        seconds = time.perf_counter() - started
        assert response.status_code == 201, response.content[:500]
        return seconds

    def file_upload(project) -> float:
        url = reverse("api:import-list", kwargs={"project_id": project.pk})
        upload = _Upload("items.csv", csv_text.encode())
        multipart = encode_multipart(BOUNDARY, {"file": upload, "id_column": "external_id"})
        started = time.perf_counter()
        response = client.post(url, multipart, content_type=MULTIPART_CONTENT)
        seconds = time.perf_counter() - started
        assert response.status_code == 201 and response.json()["status"] == "succeeded", response.content[
            :500
        ]
        return seconds

    paths = {"json body": json_body, "file (CSV)": file_upload}
    times: dict[str, list[float]] = {name: [] for name in paths}
    print(f"{args.rows:,} rows, {args.repeats} repeats, PostgreSQL at {args.database_url}", flush=True)
    for repeat in range(args.repeats):
        order = list(paths) if repeat % 2 == 0 else list(reversed(paths))
        for name in order:
            project = project_create(
                name=f"{name} {repeat}", task_type="text_classification", created_by=lead, labels=["a", "b"]
            )
            times[name].append(paths[name](project))
            assert Item.objects.filter(project=project).count() == args.rows
        print(
            f"  repeat {repeat + 1}: "
            + ", ".join(f"{name} {args.rows / times[name][-1]:,.0f} items/s" for name in paths),
            flush=True,
        )
    rates = {name: args.rows / statistics.median(seconds) for name, seconds in times.items()}
    ratio = rates["json body"] / rates["file (CSV)"]
    for name, rate in rates.items():
        print(f"{name:>12}: {rate:,.0f} items/s (median of {args.repeats})")
    met = ratio >= TARGET
    print(
        f"JSON body / file path: {ratio:.0%} (target: JSON body >= {TARGET:.0%} of the file path) "
        + ("met" if met else "MISSED")
    )
    return 0 if met else 1


class _Upload:
    """A file for encode_multipart: a name and the bytes to send."""

    def __init__(self, name: str, data: bytes):
        self.name = name
        self._data = data

    def read(self) -> bytes:
        return self._data


if __name__ == "__main__":
    sys.exit(main())
