"""Active-learning simulation: replay known labels through the studio's own loop and measure
how many labels each strategy needs (`manage.py simulate_active_learning`).

- sources.py: the items and their known labels (a project's final labels or an import column,
  the demo's data sets, seeded synthetic ones), read before anything else happens.
- sandbox.py: an in-memory database and a temporary media and cache folder, swapped in for the
  run, so the studio's data is never touched.
- replay.py: per repeat a held-out test split; per strategy a fresh project labeled through the
  queue, trained, scored and evaluated round by round (the real services, no shortcut).
- report.py: the table (labels to reach 90, 95 and 99% of the full-data score, mean and 95%
  interval over the repeats) and the learning-curve picture.
"""

import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from training.simulation.replay import Curve, Log, Settings, replay, split_make
from training.simulation.report import learning_curves_svg, table_text
from training.simulation.sources import DATASETS, Source, SourceUnusable, source_load

__all__ = ["DATASETS", "Settings", "SimulationResult", "SourceUnusable", "simulate", "source_load"]


@dataclass
class SimulationResult:
    source: str
    measure: str
    strategies: list[str]
    settings: Settings
    repeats: int
    curves: list[Curve]
    seconds: float
    notes: list[str]

    @property
    def title(self) -> str:
        s = self.settings
        return (f"{self.source}: seed {s.seed_size}, batch {s.batch}, budget {s.budget:,}, order {s.order},"
                f" {self.repeats} repeat{'s' if self.repeats != 1 else ''}")  # fmt: skip

    def table(self) -> str:
        return table_text(title=self.title, curves=self.curves, strategies=self.strategies,
                          budget=self.settings.budget, measure=self.measure)  # fmt: skip

    def svg(self) -> str:
        return learning_curves_svg(title=self.title, curves=self.curves, strategies=self.strategies,
                                   measure=self.measure)  # fmt: skip

    def write(self, folder: Path) -> list[Path]:
        """table.txt, learning_curve.svg and curves.json (every point of every repeat) in `folder`."""
        folder.mkdir(parents=True, exist_ok=True)
        paths = [folder / "table.txt", folder / "learning_curve.svg", folder / "curves.json"]
        paths[0].write_text(self.table() + "".join(f"note: {n}\n" for n in self.notes))
        paths[1].write_text(self.svg())
        payload = {"source": self.source, "measure": self.measure, "settings": asdict(self.settings),
                   "repeats": self.repeats, "seconds": round(self.seconds, 1), "notes": self.notes,
                   "curves": [asdict(c) for c in self.curves]}  # fmt: skip
        paths[2].write_text(json.dumps(payload, indent=1))
        return paths


def simulate(
    *,
    source: Source,
    strategies: list[str],
    settings: Settings,
    repeats: int,
    log: Log = lambda line: None,
    jobs: int = 1,
    first_repeat: int = 0,
) -> SimulationResult:
    """Replay `source` with each strategy, `repeats` times, inside the sandbox: repeats
    first_repeat, first_repeat + 1, …, each seeded by its number (its split and every draw), so
    that a later run can add repeats to an earlier one's. With `jobs` > 1
    the replays run in that many forked processes, each in a sandbox of its own."""
    from training.strategies import STRATEGIES

    unknown = [s for s in strategies if s not in STRATEGIES]
    if unknown:
        raise SourceUnusable(f"unknown strategy {unknown[0]!r}; known: {', '.join(STRATEGIES)}")
    if min(settings.seed_size, settings.batch, settings.budget) < 1:
        raise SourceUnusable("seed size, batch and budget must be at least 1")
    if settings.label_issues and settings.folds < 2:
        raise SourceUnusable("the label-issue phase needs k-fold fits: --folds 2 or more")
    if jobs < 1 or first_repeat < 0:
        raise SourceUnusable("jobs must be at least 1 and the first repeat at least 0")
    numbers = list(range(first_repeat, first_repeat + repeats))
    started = time.perf_counter()
    notes = list(source.notes)
    if source.left_out:
        notes.append(f"{source.left_out} item(s) without a known label were left out")
    if jobs == 1:
        curves = _repeats_run(source, strategies, settings, numbers, log)
    else:
        curves = _repeats_in_processes(source, strategies, settings, numbers, jobs, log)
    if settings.budget > min(len(c.points) and c.points[-1].n_labels for c in curves):
        notes.append("the pool ran out before the budget")
    return SimulationResult(
        source=source.name, measure=source.measure, strategies=list(strategies), settings=settings,
        repeats=repeats, curves=curves, seconds=time.perf_counter() - started, notes=notes,
    )  # fmt: skip


def _repeats_run(source: Source, strategies: list[str], settings: Settings, repeats: list[int],
                 log: Log) -> list[Curve]:  # fmt: skip
    """The curves of these repeats, every strategy on each, one after the other."""
    return [
        replay_unit(source, strategy, settings, repeat, log) for repeat in repeats for strategy in strategies
    ]


def replay_unit(source: Source, strategy: str, settings: Settings, repeat: int, log: Log) -> Curve:
    """One (repeat, strategy) in a sandbox of its own: the repeat's split, then the replay.

    Fresh each time, so that a replay never depends on what ran before it in the process: the
    ids its items get (the random slice samples them by id range) are the same in any run, one
    process or several, and a later run with --first-repeat repeats it exactly.
    """
    from django.contrib.auth import get_user_model

    from training.simulation.sandbox import simulation_sandbox

    with simulation_sandbox():
        user = get_user_model().objects.create(username="simulated-annotator")
        split = split_make(source=source, repeat=repeat, settings=settings, user=user)
        log(
            f"repeat {repeat}, {strategy}: {len(split.pool):,} items in the pool,"
            f" {len(split.test):,} held out"
        )
        return replay(source=source, split=split, strategy=strategy, settings=settings, user=user, log=log)


# The forked workers' view of the run (set before the fork, read in the child; nothing is pickled
# but the repeat number and the curves coming back).
_FORKED: dict = {}


def _forked_unit(unit: tuple[int, str]) -> Curve:
    import sys

    import torch
    from threadpoolctl import threadpool_limits

    # One core per process, as a worker has (training/tasks.py): torch's and BLAS's threads.
    torch.set_num_threads(1)
    run = _FORKED
    repeat, strategy = unit

    def log(line: str) -> None:
        print(line, file=sys.stdout, flush=True)

    with threadpool_limits(limits=1):
        return replay_unit(run["source"], strategy, run["settings"], repeat, log)


def _repeats_in_processes(source: Source, strategies: list[str], settings: Settings, repeats: list[int],
                          jobs: int, log: Log) -> list[Curve]:  # fmt: skip
    """One (repeat, strategy) per task (replay_unit), so that the processes stay busy to the end."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    from django.db import connections

    units = [(repeat, strategy) for strategy in strategies for repeat in repeats]
    log(f"{len(units)} replays ({len(repeats)} repeats × {len(strategies)} strategies) in {jobs} processes")
    # A forked child opens a sandbox of its own and never uses the parent's connections; they are
    # closed first where they can be (not inside a transaction, a test's say, which the parent
    # carries on with), and a child ends with os._exit, so it never closes the copy it inherited.
    for connection in connections.all(initialized_only=True):
        if not connection.in_atomic_block:
            connection.close()
    _FORKED.update(source=source, strategies=strategies, settings=settings)
    try:
        with ProcessPoolExecutor(max_workers=jobs, mp_context=multiprocessing.get_context("fork")) as pool:
            curves = list(pool.map(_forked_unit, units))
    finally:
        _FORKED.clear()
    return sorted(curves, key=lambda c: (c.repeat, strategies.index(c.strategy)))
