"""A training run as the studio runs it, measured: requested through `training_run_request` (its
Celery dispatch suppressed), then `training_run_execute` timed end to end in this process, with its
phases, the parts of its pool scoring, its peak memory and its CPU; or executed in a separate process
(`RunSubprocess`), like a Celery worker competing for the cores.
"""

import contextlib
import cProfile
import math
import pstats
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from unittest import mock

from bench.harness import REPO
from bench.harness.cpu import run_cpu_meter
from bench.harness.memory import memory_settle, peak_reset, proc_status, ru_maxrss_mib

TRAIN_PHASES = ("snapshot", "load", "cross-validate", "evaluate", "label issues", "fit", "store")
# Where prediction_pool_score's time goes (wrappers around what it calls).
SCORE_PARTS = (
    "featurize texts",
    "read images",
    "predict",
    "proposals + uncertainty",
    "Prediction upsert (bulk_create)",
    "Item.priority (bulk_update)",
)

SUBPROCESS_RUN = """
import os, sys, time
os.nice(int(sys.argv[2]))
import torch
torch.set_num_threads(1)
torch.set_num_interop_threads(1)
import django
django.setup()
from training.runs import training_run_execute
started = time.perf_counter()
run = training_run_execute(run_id=int(sys.argv[1]))
print(f"run {run.pk}: {run.status}, {run.items_scored} items scored, {time.perf_counter() - started:.2f} s")
"""


def run_request(project, trigger: str):
    """A queued TrainingRun created by the studio's service, with its Celery dispatch suppressed."""
    from django.db import transaction

    from training import runs, tasks

    with (
        mock.patch.object(tasks.training_run_execute, "delay_on_commit", lambda *a, **k: None),
        transaction.atomic(),
    ):
        run, created = runs.training_run_request(project=project, trigger=trigger)
    if not created:
        raise RuntimeError(f"project {project.pk} already had an open run: {run}")
    return run


def timed_run(project, trigger: str, *, profile: Path | None = None) -> dict:
    """One training run in this process, end to end, with its phases, memory and CPU.

    With `profile`, the run executes under cProfile (slower) and its stats are written there.
    """
    from django.db.models.query import QuerySet

    from training import runs, strategies
    from training import scoring as pool_scoring
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
        (runs, "model_version_train", timing("train", runs.model_version_train)),
        (runs, "prediction_pool_score", timing("score", runs.prediction_pool_score)),
        (TextLogRegBackend, "featurize", score_part("featurize texts", TextLogRegBackend.featurize)),
        (pool_scoring, "model_inputs", score_part("read images", pool_scoring.model_inputs)),
        (TextLogRegBackend, "predict_proba", score_part("predict", TextLogRegBackend.predict_proba)),
        (ImageCNNBackend, "predict_proba", score_part("predict", ImageCNNBackend.predict_proba)),
        (strategies, "proposals", score_part("proposals + uncertainty", strategies.proposals)),
        (strategies, "scores", score_part("proposals + uncertainty", strategies.scores)),
        (QuerySet, "bulk_create", score_part("Prediction upsert (bulk_create)", QuerySet.bulk_create)),
        (QuerySet, "bulk_update", score_part("Item.priority (bulk_update)", QuerySet.bulk_update)),
    ]

    run = run_request(project, trigger)
    memory_settle()
    rss_before = proc_status().get("VmRSS", 0) / 1024
    reset = peak_reset()
    with contextlib.ExitStack() as stack:
        for owner, name, wrapper in patches:
            stack.enter_context(mock.patch.object(owner, name, wrapper))
        cpu = stack.enter_context(run_cpu_meter())
        profiler = cProfile.Profile() if profile else None
        started = time.perf_counter()
        if profiler is not None:
            run = profiler.runcall(runs.training_run_execute, run_id=run.pk)
        else:
            run = runs.training_run_execute(run_id=run.pk)
        seconds = time.perf_counter() - started
    if profiler is not None:
        profiler.dump_stats(profile)
        stats = pstats.Stats(profiler, stream=sys.stderr).sort_stats("cumulative")
        stats.print_stats(40)
    peak = proc_status().get("VmHWM", 0) / 1024 if reset else ru_maxrss_mib()
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


class RunSubprocess:
    """`training_run_execute` of one queued run in a `python -c` process at niceness `nice`, with
    torch at 1 thread as in the worker; its output is collected as it runs."""

    def __init__(self, run_id: int, *, nice: int, env: dict):
        self.process = subprocess.Popen(
            [sys.executable, "-c", SUBPROCESS_RUN, str(run_id), str(nice)],
            cwd=REPO,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.lines: list[str] = []
        self.reader = threading.Thread(target=lambda: self.lines.extend(self.process.stdout), daemon=True)
        self.reader.start()

    def ended(self) -> bool:
        return self.process.poll() is not None

    def wait(self) -> int:
        """Wait for it to exit; its return code."""
        self.process.wait()
        self.reader.join(timeout=5)
        return self.process.returncode

    @property
    def output(self) -> str:
        return "".join(self.lines)
