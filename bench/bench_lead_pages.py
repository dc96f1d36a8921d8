"""The leads' dashboards on PostgreSQL at 100,000 items and 300,000 annotations: each page's and
endpoint's p95 over 50 sequential warm requests from one client, beside the 200 ms target.

    .venv/bin/python -m bench.bench_lead_pages --keep-database     # builds once (~40 min), then reuses
    .venv/bin/python -m bench.bench_lead_pages                     # rebuilds the data first
    .venv/bin/python -m bench.bench_lead_pages --quick             # 3,000 items, a smoke run

The data (bench/harness/lead_data.py, LeadSpec's defaults): 100,000 items imported through
annotate's import service (one CSV), 250 of them gold; 300,000 annotations by 8 annotators at
overlap 3, each a `queue.assignment_next` and `queue.annotation_submit` in process, their clock
spread over the 30 days before today; proposals from 3 model versions; 2,000 review decisions
through `review.review_decide`. It is built into `--database-url` (default
postgres://postgres@127.0.0.1:5432/labelloop_dashbench), which `--keep-database` keeps between
runs, and copied (CREATE DATABASE … TEMPLATE) into `<that>_run` for each run, so every run measures
the same data.

Then 1,000 more annotations through the HTTP API (the annotators in turn, each with its own
token and connection: `next/` once, then `submit-and-next/`), which the dashboards must reflect:
after them the combined endpoint must count exactly 1,000 more annotations (labels per day and
the time histogram), all on today's date, the items completed must equal the database's count,
and the page must say the new total. The run stops (exit 2) if they do not.

Figures: the page /projects/<id>/dashboards/ (the lead's session cookie, every chart drawn as
SVG), the combined /api/projects/<id>/dashboards/ and each chart's endpoint (the lead's token).
Load model: one client, one request at a time on one keep-alive connection over loopback, 5
unmeasured requests first, then `--requests` (50) timed from sending the request to the last byte
of the response; gunicorn 2 processes × 4 threads (gthread) as bin/run serves the studio,
DEBUG off; nothing else is sent to the studio meanwhile (other work on the machine is not
controlled: its load average is printed). The statements per request are counted in process
(Django's test client, CaptureQueriesContext) on the same database. Exits 1 when a figure misses
its target.
"""

import argparse
import http.client
import json
import random
import sys
import time
from dataclasses import asdict
from pathlib import Path

if __package__ in (None, ""):  # run as a file: make `bench` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.harness.api import Client, session_cookie, tokens_obtain
from bench.harness.lead_data import LEAD_LABELS, LeadProject, LeadSpec, lead_database_ready
from bench.harness.machine import describe, loadavg
from bench.harness.report import all_met, rows_aligned
from bench.harness.servers import Gunicorn
from bench.harness.stats import latency_summary, log
from bench.harness.studio import django_setup, environment_apply, studio_environment, var_dir_temporary

DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/labelloop_dashbench"
TARGET_MS = 200
QUICK = LeadSpec(items=3_000, annotations=9_000, gold_items=20, reviews=100)
CHART_PATHS = ("progress", "labels-per-day", "seconds", "agreement", "gold", "labels", "proposals", "reviews")


class Reflected(RuntimeError):
    """The dashboards do not show the annotations the benchmark just made."""


def http_annotations(*, port: int, project: LeadProject, tokens: list[str], count: int, seed: int) -> dict:
    """`count` annotations through the API: the annotators in turn, each `next/` once and then
    `submit-and-next/`; their last leases are released at the end."""
    rng = random.Random(seed)
    clients = [Client(port, token=token) for token in tokens]
    base = f"/api/projects/{project.project_id}"
    current: list[dict | None] = [None] * len(clients)
    exhausted: set[int] = set()
    done = 0
    started = time.perf_counter()
    turn = 0
    while done < count:
        if len(exhausted) == len(clients):
            raise Reflected(f"the queue ran dry after {done} of {count} HTTP annotations")
        i = turn % len(clients)
        turn += 1
        if i in exhausted:
            continue
        client = clients[i]
        if current[i] is None:
            status, body, _ = client.request("POST", f"{base}/next/", {})
            if status == 204:
                exhausted.add(i)
                continue
            if status != 200:
                raise Reflected(f"next/ -> {status}: {body[:200]!r}")
            current[i] = json.loads(body)["item"]
        item = current[i]
        submit = {
            "item": item["id"],
            "value": {"choices": [rng.choice(LEAD_LABELS)]},
            "active_ms": int(rng.lognormvariate(8.8, 0.5)),
        }
        proposal = item.get("proposal")
        if proposal and proposal.get("model_version_id"):
            submit["proposal"] = {
                "value": proposal["value"],
                "model_version_id": proposal["model_version_id"],
            }
        status, body, _ = client.request("POST", f"{base}/submit-and-next/", submit)
        if status != 201:
            raise Reflected(f"submit-and-next/ -> {status}: {body[:200]!r}")
        done += 1
        following = json.loads(body)["next"]
        current[i] = following["item"] if following else None
        if following is None:
            exhausted.add(i)
    seconds = time.perf_counter() - started
    for client in clients:
        client.request("POST", f"{base}/release/", {})
        client.close()
    return {"annotations": done, "seconds": round(seconds, 2), "per_second": round(done / seconds, 1)}


def reflected_check(*, before: dict, after: dict, added: int, page: str, project: LeadProject) -> dict:
    """Raise Reflected unless the dashboards show the `added` annotations; returns what was compared."""
    from django.utils import timezone

    from annotate.models import Annotation, Item

    def labels(figures):
        return sum(a["total"] for a in figures["labels_per_day"]["annotators"])

    def timed(figures):
        return sum(a["annotations"] for a in figures["seconds"]["annotators"])

    today = timezone.localdate().isoformat()
    days = after["labels_per_day"]["days"]
    today_count = 0
    if days and days[-1] == today:
        today_count = sum(a["per_day"][-1] for a in after["labels_per_day"]["annotators"])
    in_database = Annotation.objects.filter(project_id=project.project_id).count()
    complete = (
        Item.objects.filter(project_id=project.project_id, is_complete=True).exclude(pick_kind="gold").count()
    )
    found = {
        "labels_per_day_before": labels(before),
        "labels_per_day_after": labels(after),
        "seconds_histogram_before": timed(before),
        "seconds_histogram_after": timed(after),
        "annotations_today": today_count,
        "annotations_in_database": in_database,
        "completed_before": before["progress"]["completed"],
        "completed_after": after["progress"]["completed"],
        "completed_in_database": complete,
        "total_items": after["progress"]["total_items"],
    }
    problems = []
    if found["labels_per_day_after"] != found["labels_per_day_before"] + added:
        problems.append("labels per day did not grow by the annotations made")
    if found["seconds_histogram_after"] != found["seconds_histogram_before"] + added:
        problems.append("the time histogram did not grow by the annotations made")
    if today_count != added:
        problems.append(f"{today_count} annotations shown today, {added} made")
    if found["labels_per_day_after"] != in_database:
        problems.append(f"labels per day count {found['labels_per_day_after']}, the database {in_database}")
    if found["completed_after"] != complete:
        problems.append(f"progress says {found['completed_after']} items complete, the database {complete}")
    total_text = f"{found['labels_per_day_after']:,} annotations by"
    if total_text not in page:
        problems.append(f"the page does not say {total_text!r}")
    found["ok"] = not problems
    if problems:
        raise Reflected("; ".join(problems) + f" ({found})")
    return found


def get(client: Client, path: str) -> tuple[int, bytes, float]:
    """GET, reconnecting once if the server closed the idle keep-alive connection (as a browser does)."""
    try:
        return client.request("GET", path)
    except (OSError, http.client.HTTPException):
        return client.request("GET", path)


def get_json(client: Client, path: str) -> dict:
    status, body, _ = get(client, path)
    if status != 200:
        raise RuntimeError(f"GET {path} -> {status}: {body[:300]!r}")
    return json.loads(body)


def timed_requests(client: Client, path: str, *, requests: int, warmup: int) -> dict:
    """`requests` GETs timed after `warmup` unmeasured ones, back to back on one connection."""
    for _ in range(warmup):
        status, body, _ = get(client, path)
        if status != 200:
            raise RuntimeError(f"GET {path} -> {status}: {body[:300]!r}")
    seconds, size = [], 0
    for _ in range(requests):
        status, body, took = client.request("GET", path)
        if status != 200:
            raise RuntimeError(f"GET {path} -> {status}")
        seconds.append(took)
        size = len(body)
    return {**latency_summary(seconds), "bytes": size}


def statements_per_request(project: LeadProject) -> dict:
    """SQL statements of one page and one combined API request, counted in process."""
    from django.contrib.auth import get_user_model
    from django.db import connection
    from django.test import Client as DjangoClient
    from django.test.utils import CaptureQueriesContext
    from rest_framework.test import APIClient

    lead = get_user_model().objects.get(username=project.lead_username)
    browser, api = DjangoClient(), APIClient()
    browser.force_login(lead)
    api.force_authenticate(lead)
    found = {}
    for name, client, path in (
        ("page", browser, f"/projects/{project.project_id}/dashboards/"),
        ("api", api, f"/api/projects/{project.project_id}/dashboards/"),
    ):
        client.get(path)
        with CaptureQueriesContext(connection) as queries:
            assert client.get(path).status_code == 200
        found[name] = len(queries.captured_queries)
        found[f"{name}_reads_annotations"] = any(
            "annotate_annotation" in q["sql"] for q in queries.captured_queries
        )
    return found


def run(args: argparse.Namespace, var_dir: Path) -> tuple[list[tuple[str, str, str, bool]], dict]:
    spec = QUICK if args.quick else LeadSpec()
    cache_url = args.database_url + ("_quick" if args.quick else "")
    run_url = cache_url + "_run"
    env = environment_apply(
        studio_environment(
            run_url,
            var_dir,
            DJANGO_DEBUG="0",
            DJANGO_SECURE_SSL_REDIRECT="0",
            DJANGO_ALLOWED_HOSTS="127.0.0.1,localhost,testserver",
        )
    )
    meta: dict = {**describe(), "spec": asdict(spec), "cache_database": cache_url, "run_database": run_url}
    started = time.perf_counter()
    project = lead_database_ready(
        cache_url=cache_url, run_url=run_url, spec=spec, keep=args.keep_database, env=env
    )
    meta["data_ready_s"] = round(time.perf_counter() - started, 1)
    meta["project"] = asdict(project)
    log(
        f"project {project.project_id}: {project.items:,} items, {project.annotations:,} annotations, "
        f"{project.reviews:,} reviews ({'reused' if project.reused else 'built'}; {project.build_seconds})"
    )
    django_setup()
    from django.contrib.auth import get_user_model

    server = Gunicorn(workers=2, threads=4, env=env, log_path=var_dir / "gunicorn.log")
    rows: list[tuple[str, str, str, bool]] = []
    try:
        server.start()
        tokens = tokens_obtain(server.port, [project.lead_username, *project.annotator_usernames])
        lead_token, annotator_tokens = tokens[0], tokens[1:]
        lead = Client(server.port, token=lead_token)
        combined = f"/api/projects/{project.project_id}/dashboards/"
        before = get_json(lead, combined)
        log(f"{args.http_annotations:,} annotations through the API")
        meta["http_annotations"] = http_annotations(
            port=server.port,
            project=project,
            tokens=annotator_tokens,
            count=args.http_annotations,
            seed=spec.seed,
        )
        after = get_json(lead, combined)
        cookie = session_cookie(get_user_model().objects.get(username=project.lead_username))
        browser = Client(server.port, cookie=cookie)
        page_path = f"/projects/{project.project_id}/dashboards/"
        status, page, _ = get(browser, page_path)
        if status != 200:
            raise Reflected(f"the page answered {status}")
        meta["reflected"] = reflected_check(
            before=before, after=after, added=args.http_annotations, page=page.decode(), project=project
        )
        log(f"the dashboards reflect them: {meta['reflected']}")
        meta["statements"] = statements_per_request(project)
        targets = [
            ("page  /projects/{id}/dashboards/", browser, page_path),
            ("api   /dashboards/", lead, combined),
        ]
        targets += [(f"api   /dashboards/{name}/", lead, f"{combined}{name}/") for name in CHART_PATHS]
        meta["latency"] = {}
        for name, client, path in targets:
            summary = timed_requests(client, path, requests=args.requests, warmup=args.warmup)
            meta["latency"][name] = summary
            met = summary["p95_ms"] <= TARGET_MS
            rows.append(
                (
                    name,
                    f"p95 {summary['p95_ms']:.1f} ms (p50 {summary['p50_ms']:.1f})",
                    f"≤ {TARGET_MS} ms",
                    met,
                )
            )
            log(f"   {name}: {summary}")
        browser.close()
        lead.close()
    except BaseException:
        log(f"gunicorn log (tail):\n{server.log_tail()}")
        raise
    finally:
        server.stop()
        from django.db import connections

        connections.close_all()
        meta["loadavg_end"] = loadavg()
    return rows, meta


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database-url", default=DEFAULT_DATABASE_URL)
    parser.add_argument(
        "--keep-database",
        action="store_true",
        help="reuse the data built by an earlier run (built if missing)",
    )
    parser.add_argument("--quick", action="store_true", help="3,000 items and 9,000 annotations: a smoke run")
    parser.add_argument("--requests", type=int, default=50)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--http-annotations", type=int, help="1,000 (50 with --quick)")
    parser.add_argument("--json", help="write every figure and detail here")
    parser.add_argument("--keep", action="store_true", help="keep the temporary var folder (gunicorn's log)")
    args = parser.parse_args()
    if args.http_annotations is None:
        args.http_annotations = 50 if args.quick else 1_000
    with var_dir_temporary("labelloop-bench-lead-", keep=args.keep) as var_dir:
        try:
            rows, meta = run(args, var_dir)
        except Reflected as exc:
            log(f"FAILED: {exc}")
            return 2
    p, http, statements = meta["project"], meta["http_annotations"], meta["statements"]
    reads = statements["page_reads_annotations"] or statements["api_reads_annotations"]
    print(
        f"\nLeads' dashboards: {p['items']:,} items, {p['annotations']:,} annotations"
        f" (+{http['annotations']:,} through the API, {http['per_second']}/s), {p['reviews']:,} reviews;"
        f" PostgreSQL {meta['run_database']}"
    )
    print(
        f"load model: one client, {args.requests} sequential warm requests per path ({args.warmup}"
        " unmeasured first), keep-alive over loopback; gunicorn 2 × 4 threads, DEBUG off;"
        " nothing else sent to the studio"
    )
    print(
        f"machine: {meta['nproc']} cores ({meta['cpu_model']}), load average {meta['loadavg_start']}"
        f" at the start, {meta['loadavg_end']} at the end; statements per request: page"
        f" {statements['page']}, API {statements['api']} (annotations read: {reads})"
    )
    print()
    print("\n".join(rows_aligned(rows)))
    if args.json:
        Path(args.json).write_text(json.dumps({"rows": rows, **meta}, indent=2, default=str))
    return 0 if all_met(met for *_, met in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
