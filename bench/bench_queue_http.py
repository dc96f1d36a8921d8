"""The studio through HTTP: gunicorn on PostgreSQL, with the figures beside their targets.

    .venv/bin/python -m bench.bench_queue_http [--items 100000] [--quick] [--json out.json]

It builds everything it measures: a fresh PostgreSQL database (dropped and created), a temporary
LABELLOOP_VAR_DIR, users, projects and members through the REST API, a CSV of Rotten Tomatoes
sentences repeated to --items rows, and a gunicorn server configured as bin/run's (stopped at
the end, error or not). Then it measures:

1. importing the CSV (in-process `import_csv`, PostgreSQL COPY; and the HTTP import when the
   API has one);
2. next-item and submit latency of one annotator at a paced rate (open loop);
3. closed-loop label-and-next throughput of 8 annotators at overlap 1, then checks from the
   database that no item went beyond its overlap;
4. the same at overlap 3 for an annotator who has already labeled 20,000 items;
5. streaming the JSONL export of a project with 2 annotations per item, and the gunicorn
   worker's memory growth while it streams.

bench/README.md explains the load models. Set-up steps that are not being measured (inserting
annotations, ANALYZE) write to the database directly. This file holds the figures and their
order; the servers, the load generators, the API set-up and the meters are in bench/harness/.
"""

import argparse
import io
import json
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

if not __package__:  # run as a file (python bench/<script>.py): make the `bench` package importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.harness import REPO
from bench.harness.api import Studio, export_http, http_import, tokens_obtain, users_create
from bench.harness.cpu import CpuMeter, capacity, http_cpu_meter
from bench.harness.database import analyze, database_recreate, next_query_explain, overlap_check
from bench.harness.dataset import annotations_insert, reviews_csv
from bench.harness.load import paced_cycles, saturation, value_for
from bench.harness.machine import cpu_jitter, cpu_speed_ms, describe, loadavg, versions
from bench.harness.report import Figure, all_met, figures_markdown, others_note, pace_note, saturation_note
from bench.harness.servers import CeleryWorker, Gunicorn
from bench.harness.stats import log
from bench.harness.studio import django_setup, environment_apply, studio_environment, var_dir_temporary

DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/labelloop_bench"
# 2 × cores. --sweep-workers 2,4,8 on the shared 2-core machine found no count better than another
# beyond the noise (cycles per gunicorn CPU-second equal within it): see bench/README.md.
# As bin/run serves the studio: 2 processes of 4 threads (gthread, connections kept alive).
DEFAULT_WORKERS = 2
DEFAULT_THREADS = 4
ANNOTATORS = 8
PRELABELED = 20_000  # figure 4: items annotator #1 has labeled before the measurement


@dataclass
class Bench:
    """One invocation: what it measures (from the options) and the studio it measures."""

    args: argparse.Namespace
    env: dict
    var_dir: Path
    items: int
    paced_seconds: int
    saturation_seconds: int
    data: bytes = b""
    server: Gunicorn | None = None
    studio: Studio | None = None

    def serve(self, workers: int) -> Gunicorn:
        """gunicorn with `workers` processes, in place of the one serving now (if any)."""
        if self.server is not None:
            self.server.stop()
        self.server = Gunicorn(
            workers=workers, env=self.env, log_path=self.var_dir / "gunicorn.log", threads=self.args.threads
        )
        self.server.start()
        if self.studio is not None:
            self.studio.port = self.server.port
        return self.server

    def cpu_meter(self) -> CpuMeter:
        return http_cpu_meter(self.server.pids)

    def csv_import(self, project_id: int) -> float:
        """The CSV imported in-process into a project made through the API; the seconds it took."""
        from annotate.importing import import_csv
        from annotate.models import Project

        start = time.perf_counter()
        imported = import_csv(
            project=Project.objects.get(pk=project_id),
            file=io.BytesIO(self.data),
            filename="bench.csv",
            text_column="text",
            id_column="id",
        )
        seconds = time.perf_counter() - start
        assert imported.items_created == self.items, imported
        return seconds

    def paced(self, project_id: int) -> dict:
        """Annotator #1's paced cycles (figures 2 and 4), with the CPU they took and the machine's
        jitter measured just before."""
        jitter = cpu_jitter()
        with self.cpu_meter() as cpu:
            paced = paced_cycles(
                port=self.server.port,
                token=self.studio.tokens[0],
                project_id=project_id,
                rate=self.args.rate,
                seconds=self.paced_seconds,
            )
        paced["cpu_cores"] = cpu.cores
        paced["machine_jitter"] = jitter
        log(f"   next p50/p99 {paced['next']['p50_ms']}/{paced['next']['p99_ms']} ms; {cpu.text()}")
        return paced

    def saturated(self, project_id: int, *, seconds: float, warmup: float = 1.0) -> tuple[dict, CpuMeter]:
        """Every annotator in a closed loop (figures 3 and 4, and the worker sweep), metered."""
        with self.cpu_meter() as cpu:
            sat = saturation(
                port=self.server.port,
                tokens=self.studio.tokens,
                project_id=project_id,
                seconds=seconds,
                warmup=warmup,
            )
        return sat, cpu

    def saturated_checked(self, project_id: int) -> dict:
        """saturated(), then the CPU per cycle and the database's overlap check."""
        sat, cpu = self.saturated(project_id, seconds=self.saturation_seconds)
        sat["cpu_cores"] = cpu.cores
        sat.update(capacity(sat["cycles_per_s"], cpu.cores))
        sat["overlap_check"] = overlap_check(project_id)
        log(f"   {sat['cycles_per_s']} cycles/s; {cpu.text()}")
        log(f"   overlap check: {sat['overlap_check']['text']}")
        return sat


# The figures -----------------------------------------------------------------------------


def figure_import(bench: Bench, worker: CeleryWorker) -> tuple[Figure, int]:
    """1: the CSV in-process (PostgreSQL COPY), then over HTTP as a Celery job; (the figure, the
    overlap-1 project it filled, which figures 2 and 3 label)."""
    items = bench.items
    queue_project = bench.studio.project_create(name="bench: queue (overlap 1)", overlap=1)
    worker.wait_ready()  # idle (it polls its broker) while the in-process import runs
    log(f"1. import_csv of {items:,} rows into project {queue_project}")
    import_s = bench.csv_import(queue_project)
    http_project = bench.studio.project_create(name="bench: HTTP import", overlap=1)
    log("1. HTTP import")
    via_http = http_import(studio=bench.studio, project_id=http_project, data=bench.data, items=items)
    worker.stop()
    analyze()
    figure = Figure(
        "import",
        f"Import {items:,}-row CSV",
        "one import_csv call in-process (PostgreSQL COPY), idle studio; "
        "HTTP: one multipart POST /api/projects/{id}/imports/ until its job ends",
        f"{import_s:.2f} s in-process; HTTP {via_http['text']}",
        "≤ 4 s",
        "19 s",
        import_s <= 4 and (via_http["seconds"] is None or via_http["seconds"] <= 4),
        {"in_process_s": round(import_s, 3), "http": via_http, "csv_mb": round(len(bench.data) / 2**20, 1)},
    )
    return figure, queue_project


def workers_sweep(bench: Bench, project_id: int, counts: list[int]) -> tuple[int, dict]:
    """5 s of saturation at each worker count; (the best count, each one's figures)."""
    sweep = {}
    for count in counts:
        bench.serve(count)
        log(f"   sweep: {count} workers, closed loop of {ANNOTATORS} for 5 s")
        got, cpu = bench.saturated(project_id, seconds=5, warmup=2)
        sweep[count] = {"cycles_per_s": got["cycles_per_s"], "other_cores": cpu.cores["other"]}
        log(f"   sweep: {count} workers -> {got['cycles_per_s']} cycles/s; {cpu.text()}")
    return max(sweep, key=lambda count: sweep[count]["cycles_per_s"]), sweep


def figures_paced(bench: Bench, project_id: int) -> list[Figure]:
    """2: one annotator, open loop, on the overlap-1 project: next and submit latency."""
    rate, items = bench.args.rate, bench.items
    log(f"2. one annotator, {rate:g} cycles/s for {bench.paced_seconds} s")
    paced = bench.paced(project_id)
    nxt, sub = paced["next"], paced["submit"]
    return [
        Figure(
            "next_latency",
            "Next-item latency p50 / p95 / p99",
            f"1 annotator, open loop {rate:g} cycles/s for {bench.paced_seconds} s; cycle = POST next + "
            f"POST annotations; {items:,}-item project, overlap 1",
            f"{nxt['p50_ms']} / {nxt['p95_ms']} / {nxt['p99_ms']} ms; {pace_note(paced)}",
            "p99 ≤ 30 ms",
            "232 / – / 408 ms (p50 / p99)",
            nxt["p99_ms"] <= 30,
            paced,
        ),
        Figure(
            "submit_latency",
            "Submit latency p50 / p95 / p99",
            "same cycles as above (POST annotations)",
            f"{sub['p50_ms']} / {sub['p95_ms']} / {sub['p99_ms']} ms",
            "–",
            "–",
            None,
            {},
        ),
    ]


def figure_saturation(bench: Bench, project_id: int) -> Figure:
    """3: every annotator, closed loop, overlap 1; then the overlap check."""
    log(f"3. {ANNOTATORS} annotators, closed loop for {bench.saturation_seconds} s, overlap 1")
    sat = bench.saturated_checked(project_id)
    return Figure(
        "saturation_overlap1",
        "Label-and-next throughput, overlap 1",
        f"{ANNOTATORS} annotators (threads, distinct users), closed loop, no think time, "
        f"{bench.saturation_seconds} s; cycle = POST submit-and-next",
        f"{sat['cycles_per_s']} cycles/s (p50 {sat['submit_and_next']['p50_ms']} ms, "
        f"p99 {sat['submit_and_next']['p99_ms']} ms); {saturation_note(sat)}",
        "≥ 100 cycles/s; overlap never exceeded",
        "–",
        sat["cycles_per_s"] >= 100 and sat["overlap_check"]["ok"],
        sat,
    )


def figures_deep(bench: Bench, prelabeled: int) -> tuple[list[Figure], float]:
    """4: overlap 3, annotator #1 already deep in the queue: alone (open loop), then with the others
    (closed loop). Also returns the project's import time (figure 1's second import)."""
    rate, items, paced_seconds = bench.args.rate, bench.items, bench.paced_seconds
    annotator1 = bench.studio.user_ids[0]
    project_id = bench.studio.project_create(name="bench: overlap 3", overlap=3)
    log(f"4. import {items:,} rows into project {project_id} (overlap 3)")
    import_s = bench.csv_import(project_id)
    inserted = annotations_insert(
        project_id=project_id, annotator_id=annotator1, limit=prelabeled, value=value_for(0)
    )
    analyze()
    log(f"   annotator #1 has {inserted:,} labels; {rate:g} cycles/s for {paced_seconds} s")
    plan = next_query_explain(project_id=project_id, annotator_id=annotator1)
    paced = bench.paced(project_id)
    paced["explain_before"] = plan
    # After their first submits the search starts at annotator #1's bookmark.
    paced["explain_after"] = next_query_explain(project_id=project_id, annotator_id=annotator1)
    log(f"4. {ANNOTATORS} annotators incl. #1, closed loop for {bench.saturation_seconds} s, overlap 3")
    sat = bench.saturated_checked(project_id)
    dn, a1 = paced["next"], sat["annotator1_submit_and_next"]
    figures = [
        Figure(
            "next_latency_deep",
            f"Next-item latency p50 / p95 / p99, annotator with {inserted:,} labels",
            f"annotator #1 alone, open loop {rate:g} cycles/s for {paced_seconds} s; "
            f"{items:,}-item project, overlap 3, their {inserted:,} labels on the queue's first items",
            f"{dn['p50_ms']} / {dn['p95_ms']} / {dn['p99_ms']} ms; {pace_note(paced)}",
            "p99 ≤ 30 ms",
            "232 / – / 408 ms (p50 / p99)",
            dn["p99_ms"] <= 30,
            paced,
        ),
        Figure(
            "saturation_overlap3",
            "Label-and-next throughput, overlap 3",
            f"{ANNOTATORS} annotators incl. #1 ({inserted:,} labels), closed loop, no think time, "
            f"{bench.saturation_seconds} s; cycle = POST submit-and-next",
            f"{sat['cycles_per_s']} cycles/s (#1: p50 {a1['p50_ms']} ms, p99 {a1['p99_ms']} ms); "
            f"{saturation_note(sat)}",
            "≥ 100 cycles/s; overlap never exceeded",
            "–",
            sat["cycles_per_s"] >= 100 and sat["overlap_check"]["ok"],
            sat,
        ),
    ]
    return figures, import_s


def figure_export(bench: Bench, lead_user) -> Figure:
    """5: the JSONL export of a project with 2 annotations per item, streamed by the lead."""
    items = bench.items
    project_id = bench.studio.project_create(name="bench: export (overlap 2)", overlap=2)
    log(f"5. import {items:,} rows into project {project_id}, 2 annotations per item")
    bench.csv_import(project_id)
    for n in (1, 2):
        annotations_insert(
            project_id=project_id, annotator_id=bench.studio.user_ids[n], limit=None, value=value_for(n)
        )
    analyze()
    log("5. export JSONL over HTTP")
    with bench.cpu_meter() as cpu:
        exported = export_http(
            studio=bench.studio, server=bench.server, project_id=project_id, lead_user=lead_user, items=items
        )
    exported["cpu_cores"] = cpu.cores
    if "seconds" in exported and exported["complete"]:
        peak = exported["peak_growth_mb"]
        memory = exported["rss_growth_mb"] if peak is None else peak
        ours = (
            f"{exported['seconds']:.2f} s, {exported['bytes'] / 2**20:.0f} MB; worker RSS +{memory} MB "
            + ("(peak)" if peak is not None else "(after)")
            + f" [{exported['route']} URL]; {others_note(exported['cpu_cores'])}"
        )
        met = exported["seconds"] <= 5 and memory <= 100
    else:
        ours = f"n/a ({exported.get('status', exported['tried'])}, {exported.get('location') or ''})"
        met = False
    return Figure(
        "export",
        f"Export {items:,} items × 2 annotations (JSONL)",
        "one streamed GET by the lead, idle studio; time to the last byte; "
        "memory: max VmHWM − VmRSS-before over the gunicorn workers",
        ours,
        "≤ 5 s, ≤ 100 MB growth",
        "128 s",
        met,
        exported,
    )


# Orchestration -------------------------------------------------------------------------


def run(args: argparse.Namespace, var_dir: Path) -> tuple[list[Figure], dict]:
    items = args.items or (10_000 if args.quick else 100_000)
    http_env = {
        "DJANGO_DEBUG": "0",
        "DJANGO_SECURE_SSL_REDIRECT": "0",
        "DJANGO_ALLOWED_HOSTS": "127.0.0.1,localhost",
        "LABELLOOP_EXPORT_STREAM_MAX_ITEMS": "1000000",  # stream the export rather than queue a job
    }
    # DEBUG off, as in production (with it on, Django formats every query for its log: a third more
    # CPU per request). Plain HTTP on loopback, so no redirect to HTTPS: a proxy in front would end TLS.
    env = environment_apply(studio_environment(args.database_url, var_dir, **http_env))
    bench = Bench(
        args=args,
        env=env,
        var_dir=var_dir,
        items=items,
        paced_seconds=10 if args.quick else 30,
        saturation_seconds=8 if args.quick else 20,
    )
    meta = {**describe(), "items": items, "quick": args.quick, "var_dir": str(var_dir)}
    log(f"PostgreSQL database {args.database_url}: drop and create")
    meta["postgresql"] = database_recreate(args.database_url)
    log("manage.py migrate")
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "--noinput", "-v", "0"], cwd=REPO, env=env, check=True
    )
    django_setup()
    from django.conf import settings

    meta["gunicorn_version"] = versions("gunicorn")["gunicorn"]
    meta["django_debug"] = settings.DEBUG

    log(f"CSV of {items:,} Rotten Tomatoes sentences")
    bench.data = reviews_csv(items)
    meta["csv_mb"] = round(len(bench.data) / 2**20, 1)
    lead_user, annotators = users_create(ANNOTATORS)

    figures: list[Figure] = []
    worker = CeleryWorker(env=env, log_path=var_dir / "celery.log")
    try:
        workers = DEFAULT_WORKERS if args.workers is None else args.workers
        server = bench.serve(workers)
        worker.start()  # for the HTTP import
        bench.studio = Studio(
            port=server.port,
            lead_token=tokens_obtain(server.port, [lead_user.username])[0],
            tokens=tokens_obtain(server.port, [a.username for a in annotators]),
            usernames=[a.username for a in annotators],
            user_ids=[a.pk for a in annotators],
        )
        imported, queue_project = figure_import(bench, worker)
        figures.append(imported)

        if args.sweep_workers:
            counts = [int(c) for c in args.sweep_workers.split(",")]
            workers, meta["worker_sweep"] = workers_sweep(bench, queue_project, counts)
            if workers != bench.server.workers:
                bench.serve(workers)
        meta["gunicorn_workers"] = workers
        meta["gunicorn_threads"] = args.threads
        log("   warm-up: 8 annotators for 2 s, not measured")
        saturation(
            port=bench.server.port, tokens=bench.studio.tokens, project_id=queue_project, seconds=2, warmup=0
        )
        meta["gunicorn_command"] = " ".join(bench.server.command).replace(str(REPO) + "/", "")

        figures += figures_paced(bench, queue_project)
        figures.append(figure_saturation(bench, queue_project))
        deep, second_import_s = figures_deep(bench, prelabeled=min(PRELABELED, items // 5))
        figures[0].details["second_import_s"] = round(second_import_s, 3)
        figures += deep
        figures.append(figure_export(bench, lead_user))
    except BaseException:
        if bench.server is not None:
            log(f"gunicorn log (tail):\n{bench.server.log_tail()}")
        if worker.proc is not None:
            log(f"Celery worker log (tail):\n{worker.log_tail()}")
        raise
    finally:
        worker.stop()
        if bench.server is not None:
            bench.server.stop()
        from django.db import connections

        connections.close_all()
        meta["loadavg_end"] = loadavg()
        meta["cpu_speed_ms_end"] = cpu_speed_ms()
    return figures, meta


def table(figures: list[Figure], meta: dict) -> str:
    threads = meta.get("gunicorn_threads", 1)
    kind = "sync: a new connection per request" if threads == 1 else "gthread: connections kept alive"
    lines = [
        f"LabelLoop queue through HTTP — {meta['items']:,} items{' (--quick)' if meta['quick'] else ''}",
        f"Machine: nproc {meta['nproc']}, {meta['cpu_model']}; load average at start {meta['loadavg_start']},"
        f" at end {meta.get('loadavg_end', 'n/a')} (shared machine: other work may depress the figures);"
        f" CPU speed (bench/harness/machine.py, a 2M-iteration Python loop, lower is faster):"
        f" {meta['cpu_speed_ms_start']} ms at start, {meta.get('cpu_speed_ms_end', 'n/a')} ms at end",
        f"PostgreSQL {meta['postgresql']}; gunicorn {meta.get('gunicorn_version')} with "
        f"{meta.get('gunicorn_workers')} workers, {meta.get('gunicorn_threads', 1)} thread(s) each ({kind}); "
        f"Django DEBUG={meta.get('django_debug')}; Python {meta['python']}",
    ]
    if "worker_sweep" in meta:
        sweep = ", ".join(
            f"{k} workers {v['cycles_per_s']}/s (others used {v['other_cores']} cores)"
            for k, v in meta["worker_sweep"].items()
        )
        lines.append(f"Worker sweep (overlap 1, 8 annotators, 5 s each): {sweep}")
    lines += [f"Server: {meta.get('gunicorn_command')}", "", *figures_markdown(figures)]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.bench_queue_http", description=__doc__.split("\n")[0]
    )
    parser.add_argument(
        "--items", type=int, default=None, help="rows in the CSV (100,000; 10,000 with --quick)"
    )
    parser.add_argument("--quick", action="store_true", help="10,000 items and short runs: a smoke run")
    parser.add_argument("--database-url", default=DEFAULT_DATABASE_URL, help="dropped and created")
    parser.add_argument(
        "--workers", type=int, default=None, help=f"gunicorn worker processes ({DEFAULT_WORKERS})"
    )
    parser.add_argument(
        "--sweep-workers", default="", help="e.g. 2,4,8: measure 5 s of saturation at each, keep the best"
    )
    parser.add_argument("--rate", type=float, default=20.0, help="cycles/s of the paced annotator (20)")
    parser.add_argument("--json", type=Path, help="also write the figures here as JSON")
    parser.add_argument("--explain", action="store_true", help="print the next-item query's plan (figure 4)")
    parser.add_argument(
        "--threads",
        type=int,
        default=DEFAULT_THREADS,
        help=f"threads per gunicorn worker ({DEFAULT_THREADS}; 1: sync workers)",
    )
    parser.add_argument("--keep", action="store_true", help="keep the temporary LABELLOOP_VAR_DIR")
    args = parser.parse_args(argv)
    if args.sweep_workers and args.workers is not None:
        parser.error("--workers and --sweep-workers exclude each other")

    with var_dir_temporary("labelloop-bench-", keep=args.keep) as var_dir:
        figures, meta = run(args, var_dir)
    print(table(figures, meta))
    if args.explain:
        deep = next(f for f in figures if f.key == "next_latency_deep")
        print("\nNext-item query for annotator #1 in the overlap-3 project (EXPLAIN ANALYZE)")
        print("before their first submit of the run (no bookmark yet: one walk over their 20,000 labels):")
        print(deep.details["explain_before"])
        print("\nafter the paced run (from their bookmark):")
        print(deep.details["explain_after"])
    if args.json:
        args.json.write_text(
            json.dumps({"meta": meta, "figures": [asdict(f) for f in figures]}, indent=1, default=str) + "\n"
        )
        log(f"wrote {args.json}")
    return 0 if all_met(f.met for f in figures) else 1


if __name__ == "__main__":
    sys.exit(main())
