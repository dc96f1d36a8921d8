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


def simulate(*, source: Source, strategies: list[str], settings: Settings, repeats: int,
             log: Log = lambda line: None) -> SimulationResult:  # fmt: skip
    """Replay `source` with each strategy, `repeats` times, inside the sandbox."""
    from django.contrib.auth import get_user_model

    from training.simulation.sandbox import simulation_sandbox
    from training.strategies import STRATEGIES

    unknown = [s for s in strategies if s not in STRATEGIES]
    if unknown:
        raise SourceUnusable(f"unknown strategy {unknown[0]!r}; known: {', '.join(STRATEGIES)}")
    if min(settings.seed_size, settings.batch, settings.budget) < 1:
        raise SourceUnusable("seed size, batch and budget must be at least 1")
    started = time.perf_counter()
    curves: list[Curve] = []
    notes = list(source.notes)
    if source.left_out:
        notes.append(f"{source.left_out} item(s) without a known label were left out")
    with simulation_sandbox():
        user = get_user_model().objects.create(username="simulated-annotator")
        for repeat in range(repeats):
            split = split_make(source=source, repeat=repeat, settings=settings, user=user)
            log(f"repeat {repeat}: {len(split.pool):,} items in the pool, {len(split.test):,} held out")
            full = None
            for strategy in strategies:
                curve = replay(source=source, split=split, strategy=strategy, settings=settings, user=user,
                               log=log, full=full)  # fmt: skip
                full = curve.full_score
                curves.append(curve)
    if settings.budget > min(len(c.points) and c.points[-1].n_labels for c in curves):
        notes.append("the pool ran out before the budget")
    return SimulationResult(
        source=source.name, measure=source.measure, strategies=list(strategies), settings=settings,
        repeats=repeats, curves=curves, seconds=time.perf_counter() - started, notes=notes,
    )  # fmt: skip
