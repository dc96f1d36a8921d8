"""The item browser through HTTP on PostgreSQL: every filter alone, and search plus one filter, on
page 1 and page 50, beside the target (p95 ≤ 150 ms).

    .venv/bin/python -m bench.bench_item_browser [--items 100000] [--requests 30] [--json out.json]
    .venv/bin/python -m bench.bench_item_browser --reuse --explain     # the data of the last run

The data (set-up, not measured; bench/harness/item_browser_data.py). A fresh PostgreSQL database
(dropped and created; --reuse keeps the last run's), migrated; a lead and 6 annotators; one text
project with 4 labels and overlap 3. Its --items texts are seeded synthetic sentences (8–30 words
drawn from a Zipf-distributed 2,000-word vocabulary), imported through
`annotate.importing.import_csv` (COPY). Nine items in ten get 3 annotations, each from 3 of the 6
annotators, 70% the item's true label, else one of the other three (so there are disagreements and
3-way ties), written in one INSERT … SELECT per slot with the items' counters set as the queue
would leave them; then the final labels and tallies are computed by
`annotate.quality.rebuild.project_quality_rebuild`, the studio's own rebuild. 1% of the labeled
items are made gold and 3% suspicious (a suspicion and the model's alternative, as training writes
them); two model versions (the second active) each hold a prediction for every item with 1,000
distinct scores (so the confidence sort has ties). VACUUM ANALYZE last, as autovacuum would after
bulk writes (it is off on these machines).

With --lead-data it measures instead on a copy of the lead benchmarks' project
(`bench/harness/lead_data.py`: 100,000 items and 300,000 annotations made through the import,
queue and review services), to which it adds, as training would, the two versions' predictions
and the suspicious labels; its search terms are runs of its words found on a sample.

The load model. One lead, one HTTP connection kept alive, sequential requests with no think
time, against gunicorn as bin/run serves the studio (2 processes × 4 threads, DEBUG off). For each
case: `GET /api/projects/{id}/browser/?<filters>&page_size=50` (token auth), 3 unmeasured warm-up
requests, then --requests timed ones for page 1; page 50 is reached by following `next_cursor` 49
times (unmeasured), then requested --requests times (timed); then the count the page loads after
its rows (`/projects/{id}/items/count/?<filters>`, a session), timed the same way. Each time is
from sending the request to the response's last byte. A case with fewer than 50 pages reports
page 50 as "–" with its number of pages. The HTML page (`/projects/{id}/items/`) is timed for three
cases.
"""

import argparse
import http.client
import json
import subprocess
import sys
import urllib.parse
from pathlib import Path

if not __package__:  # run as a file (python bench/<script>.py): make the `bench` package importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.harness import REPO
from bench.harness.api import Client, session_cookie, tokens_obtain, users_create
from bench.harness.cpu import http_cpu_meter
from bench.harness.database import database_recreate
from bench.harness.item_browser_data import (
    ANNOTATORS,
    PROJECT_NAME,
    data_build,
    lead_data_extend,
    search_terms,
    texts_csv,
)
from bench.harness.machine import cpu_jitter, cpu_speed_ms, describe, loadavg
from bench.harness.report import others_note, rows_aligned
from bench.harness.servers import Gunicorn
from bench.harness.stats import latency_summary, log
from bench.harness.studio import django_setup, environment_apply, studio_environment, var_dir_temporary

DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/labelloop_ibbench"
TARGET_MS = 150
PAGE_SIZE = 50
PAGE = 50


# The cases -------------------------------------------------------------------------------


def cases(*, terms: dict[str, str], annotator_id: int) -> list[tuple[str, dict]]:
    """(name, query parameters): each filter alone, the sorts, searches, then search + each filter."""
    alone = [
        ("no filter (time order)", {}),
        ("sort -created_at", {"sort": "-created_at"}),
        ("sort confidence", {"sort": "confidence"}),
        ("sort -confidence", {"sort": "-confidence"}),
        ("labeled=true", {"labeled": "true"}),
        ("labeled=false", {"labeled": "false"}),
        ("final_label=neutral", {"final_label": "neutral"}),
        ("final_source=consensus", {"final_source": "consensus"}),
        ("final_source=tie", {"final_source": "tie"}),
        ("annotator=#1", {"annotator": str(annotator_id)}),
        ("disagreement=true", {"disagreement": "true"}),
        ("gold=true", {"gold": "true"}),
        ("suspicious=true", {"suspicious": "true"}),
        ("proposal=mixed", {"proposal": "mixed"}),
        ("confidence_max=0.3", {"confidence_max": "0.3"}),
        ("proposal=mixed, confidence ≥ 0.9", {"proposal": "mixed", "confidence_min": "0.9"}),
        (f"q={terms['common']} (common)", {"q": terms["common"]}),
        (f"q={terms['rare']} (rare)", {"q": terms["rare"]}),
        (f"q={terms['absent']} (no match)", {"q": terms["absent"]}),
    ]
    q = {"q": terms["common"]}
    combined = [
        (f"q + {name}", {**q, **params})
        for name, params in alone
        if params
        and "q" not in params
        and name not in ("sort -created_at", "proposal=mixed, confidence ≥ 0.9")
    ]
    return alone + combined


def _path(project_id: int, params: dict, cursor: str | None = None, *, html: bool = False) -> str:
    query = {**params, "page_size": str(PAGE_SIZE)}
    if cursor:
        query["cursor"] = cursor
    base = f"/projects/{project_id}/items/" if html else f"/api/projects/{project_id}/browser/"
    return f"{base}?{urllib.parse.urlencode(query)}"


def _get(client: Client, path: str) -> tuple[int, bytes, float]:
    """GET, once more on a fresh connection if the server had closed this one while it sat idle
    (gunicorn keeps an idle connection alive for 2 s; one client waits while the other walks)."""
    try:
        return client.request("GET", path)
    except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
        return client.request("GET", path)


def timed(client: Client, path: str, requests: int, warmup: int = 3) -> tuple[dict, bytes]:
    """Summary of `requests` timed GETs after `warmup` untimed ones (which also reconnect)."""
    for _ in range(warmup):
        status, body, _ = _get(client, path)
        if status != 200:
            raise RuntimeError(f"GET {path} -> {status}: {body[:300]!r}")
    seconds = []
    for _ in range(requests):
        status, body, took = client.request("GET", path)
        if status != 200:
            raise RuntimeError(f"GET {path} -> {status}: {body[:300]!r}")
        seconds.append(took)
    return latency_summary(seconds), body


def case_measure(client: Client, page_client: Client, project_id: int, params: dict, requests: int) -> dict:
    """Page 1, page 50 (after following the cursor 49 times) and the page's count fragment."""
    first, body = timed(client, _path(project_id, params), requests)
    page = json.loads(body)
    result = {"params": params, "page_1": first, "page_50": None}
    cursor, reached = page["next_cursor"], 1
    while cursor and reached < PAGE:
        page = client.json("GET", _path(project_id, params, cursor))
        reached += 1
        if reached < PAGE:
            cursor = page["next_cursor"]
    result["pages"] = reached
    if reached == PAGE:
        result["page_50"], _ = timed(client, _path(project_id, params, cursor), requests, warmup=1)
    count_path = f"/projects/{project_id}/items/count/?{urllib.parse.urlencode(params)}"
    result["count_request"], body = timed(page_client, count_path, requests, warmup=1)
    result["count"] = int(body.split()[0])
    return result


def explain(project_id: int, params: dict, cursor: str = "") -> str:
    """EXPLAIN ANALYZE of each statement a page of `params` runs (in this process, through the
    ORM, as annotate.browser.item_page sends them)."""
    from django.db import connection
    from django.http import QueryDict

    from annotate.browser import Proposals, item_filters_parse, item_page
    from annotate.models import Project
    from training.models import ModelVersion, Prediction

    project = Project.objects.get(pk=project_id)
    version = ModelVersion.objects.get(project=project, is_active=True)
    proposals = Proposals(relation=Prediction.item.field.related_query_name(), model_version_id=version.pk)
    query = QueryDict(urllib.parse.urlencode(params))
    filters = item_filters_parse(project=project, params=query, proposals=proposals)
    statements = []

    def capture(execute, sql, sql_params, many, context):
        statements.append((sql, sql_params))
        return execute(sql, sql_params, many, context)

    with connection.execute_wrapper(capture):
        item_page(project=project, filters=filters, cursor=cursor, page_size=PAGE_SIZE)
    plans = []
    with connection.cursor() as db:
        for sql, sql_params in statements:
            db.execute(f"EXPLAIN (ANALYZE) {sql}", sql_params)
            plans.append("\n".join(row[0] for row in db.fetchall()))
    return "\n\n".join(plans)


# Orchestration -------------------------------------------------------------------------


def run(args: argparse.Namespace, var_dir: Path) -> dict:
    env = environment_apply(
        studio_environment(
            args.database_url,
            var_dir,
            DJANGO_DEBUG="0",
            DJANGO_SECURE_SSL_REDIRECT="0",
            DJANGO_ALLOWED_HOSTS="127.0.0.1,localhost",
        )
    )
    meta = {**describe(), "items": args.items, "database": args.database_url}
    if args.lead_data:
        from bench.harness.lead_data import LeadSpec, lead_database_ready

        built = lead_database_ready(
            cache_url=args.lead_cache_url, run_url=args.database_url, spec=LeadSpec(), keep=True, env=env
        )
    elif not args.reuse:
        log(f"PostgreSQL database {args.database_url}: drop and create")
        meta["postgresql"] = database_recreate(args.database_url)
    log("manage.py migrate")
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "--noinput", "-v", "0"], cwd=REPO, env=env, check=True
    )
    django_setup()
    from django.contrib.auth import get_user_model

    from annotate.models import Annotation, Project

    project = None if args.lead_data else Project.objects.filter(name=PROJECT_NAME).first()
    if args.lead_data:
        project_id, facts, lead, annotators = lead_data_extend(built)
    elif project is None:
        log(f"set-up: {args.items:,} items")
        lead, annotators = users_create(ANNOTATORS)
        project_id, facts = data_build(items=args.items, lead=lead, annotators=annotators)
    else:
        log("reusing the last run's data")
        project_id = project.pk
        items = project.items.count()
        _, documents = texts_csv(items)  # seeded: the same texts, so the same search terms
        terms = search_terms(documents, items)
        facts = {
            "search_terms": terms,
            "search_term_texts": {kind: documents.get(word, 0) for kind, word in terms.items()},
            "annotations": Annotation.objects.filter(project_id=project_id).count(),
        }
        lead = get_user_model().objects.get(username="bench-lead")
        annotators = list(
            get_user_model().objects.filter(username__startswith="bench-annotator").order_by("id")
        )
    meta["facts"] = facts
    meta["items_in_project"] = Project.objects.get(pk=project_id).items.count()
    all_cases = cases(terms=facts["search_terms"], annotator_id=annotators[0].pk)
    if args.explain:
        for name, params in all_cases:
            print(f"--- {name}\n{explain(project_id, params)}\n")
    server = Gunicorn(workers=2, threads=4, env=env, log_path=var_dir / "gunicorn.log")
    results, html = [], []
    try:
        server.start()
        client = Client(server.port, token=tokens_obtain(server.port, [lead.username])[0])
        page_client = Client(server.port, cookie=session_cookie(lead))
        page_client.headers["Accept"] = "text/html"
        meta["machine_jitter"] = cpu_jitter()
        with http_cpu_meter(server.pids) as cpu:
            for name, params in all_cases:
                result = case_measure(client, page_client, project_id, params, args.requests)
                result["name"] = name
                results.append(result)
                p50 = result["page_50"]["p95_ms"] if result["page_50"] else "–"
                log(
                    f"   {name}: {result['count']:,} match; p95 page 1 {result['page_1']['p95_ms']} ms,"
                    f" page 50 {p50}, count {result['count_request']['p95_ms']}"
                )
            common = facts["search_terms"]["common"]
            for name, params in [("no filter", {}), ("labeled=true", {"labeled": "true"}),
                                 ("q + disagreement", {"q": common, "disagreement": "true"})]:  # fmt: skip
                got, _ = timed(page_client, _path(project_id, params, html=True), args.requests)
                html.append({"name": name, "params": params, "page_1": got})
                log(f"   page {name}: p95 {got['p95_ms']} ms")
        meta["cpu_cores"] = cpu.cores
    except BaseException:
        log(f"gunicorn log (tail):\n{server.log_tail()}")
        raise
    finally:
        server.stop()
        from django.db import connections

        connections.close_all()
        meta["loadavg_end"] = loadavg()
        meta["cpu_speed_ms_end"] = cpu_speed_ms()
    return {"meta": meta, "cases": results, "html": html}


def _row(label: str, summary: dict | None, note: str = "") -> tuple[str, str, str, bool | None]:
    if summary is None:
        return (label, note, f"≤ {TARGET_MS} ms", None)
    value = f"p95 {summary['p95_ms']} ms (p50 {summary['p50_ms']}, max {summary['max_ms']})"
    return (label, value, f"≤ {TARGET_MS} ms", summary["p95_ms"] <= TARGET_MS)


def report(found: dict) -> tuple[str, bool]:
    rows = []
    for result in found["cases"]:
        name = f"{result['name']} [{result['count']:,}]"
        rows.append(_row(f"{name} · page 1", result["page_1"]))
        rows.append(_row(f"{name} · page 50", result["page_50"], f"– ({result['pages']} pages only)"))
        rows.append(_row(f"{name} · count", result["count_request"]))
    for result in found["html"]:
        rows.append(_row(f"HTML page {result['name']} · page 1", result["page_1"]))
    meta = found["meta"]
    facts = meta["facts"]
    lines = [
        f"Item browser: {meta['items_in_project']:,} items, {facts.get('annotations', 0):,} annotations, "
        "PostgreSQL; the migrations' indexes (no trigram index for the search)",
        f"machine: {meta['nproc']} cores, {meta['cpu_model']}; CPU speed {meta['cpu_speed_ms_start']} → "
        f"{meta['cpu_speed_ms_end']} ms; load {meta['loadavg_start']} → {meta['loadavg_end']}; "
        f"{others_note(meta['cpu_cores'])}; jitter p50/p99 {meta['machine_jitter']['p50_ms']}/"
        f"{meta['machine_jitter']['p99_ms']} ms",
        f"search terms {facts['search_terms']} are in {facts['search_term_texts']} texts;"
        " [n]: items matching",
        "load: one lead, one keep-alive connection, sequential requests, no think time; "
        f"{found['cases'][0]['page_1']['n']} timed requests per figure after warm-up; page size {PAGE_SIZE};"
        " page 1 and 50 through the API (token), the count and the HTML page with a session",
        "",
        *rows_aligned(rows),
    ]
    return "\n".join(lines), all(met is not False for *_, met in rows)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--items", type=int, default=100_000)
    parser.add_argument("--requests", type=int, default=30, help="timed requests per figure")
    parser.add_argument(
        "--database-url", default=DEFAULT_DATABASE_URL, help="dropped and created (unless --reuse)"
    )
    parser.add_argument("--reuse", action="store_true", help="keep the database and data of the last run")
    parser.add_argument(
        "--lead-data",
        action="store_true",
        help="measure on a copy of the lead benchmarks' project (bench/harness/lead_data.py: 100,000"
        " items, 300,000 annotations through the services), built into --lead-cache-url if it is"
        " not there (about 40 minutes; never while another benchmark builds it)",
    )
    parser.add_argument("--lead-cache-url", default="postgres://postgres@127.0.0.1:5432/labelloop_dashbench")
    parser.add_argument("--explain", action="store_true", help="print each case's page-1 plan")
    parser.add_argument("--json", type=Path, help="write every figure and detail as JSON")
    parser.add_argument("--keep", action="store_true", help="keep the temporary var folder")
    args = parser.parse_args()
    with var_dir_temporary("ibbench-", keep=args.keep) as var_dir:
        found = run(args, var_dir)
    text, met = report(found)
    print(text)
    if args.json:
        args.json.write_text(json.dumps(found, indent=2, default=str))
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())
