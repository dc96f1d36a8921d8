"""`manage.py simulate_active_learning --project ID | --dataset NAME --strategy S …`: replay known
labels through the studio's queue, training and scoring (training/simulation/), in a database
of its own, and write the learning curves and the labels-to-reach table."""

import logging
import os
from datetime import datetime
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from training.simulation import DATASETS, Settings, SourceUnusable, simulate, source_load
from training.strategies import STRATEGIES


class Command(BaseCommand):
    help = (
        "Replay a project's known labels (its final labels, or an import column with --labels-from"
        " metadata:COLUMN) or a data set through the real queue, training and scoring, per strategy,"
        " against a held-out test split, in an in-memory database; write the learning curves (SVG)"
        " and the labels needed to reach 90/95/99% of the full-data score."
    )

    def add_arguments(self, parser):
        what = parser.add_mutually_exclusive_group(required=True)
        what.add_argument("--project", type=int, help="a project of this studio (read only)")
        what.add_argument("--dataset", choices=DATASETS, help="a demo or synthetic data set")
        parser.add_argument(
            "--labels-from", default="final",
            help='known labels of --project: "final" (the items\' final labels) or "metadata:COLUMN"',
        )  # fmt: skip
        parser.add_argument(
            "--strategy", action="append", choices=STRATEGIES, dest="strategies",
            help="a sampling strategy; give it again for more (default: margin and random)",
        )  # fmt: skip
        parser.add_argument("--seed-size", type=int, default=20, help="labels before the first model")
        parser.add_argument("--batch", type=int, default=20, help="labels per round")
        parser.add_argument("--budget", type=int, default=500, help="labels in all")
        parser.add_argument("--repeats", type=int, default=1)
        parser.add_argument(
            "--first-repeat", type=int, default=0,
            help="the first repeat's number (each repeat is seeded by its number: 3 with --repeats 2"
            " adds repeats 3 and 4 to an earlier run of 3)",
        )  # fmt: skip
        parser.add_argument(
            "--order", choices=("source", "sorted", "shuffled"), default="source",
            help="import order of the pool: as in the source, sorted by class, or shuffled per repeat",
        )  # fmt: skip
        parser.add_argument("--test-share", type=float, default=0.2, help="held-out share of the items")
        parser.add_argument(
            "--random-share", type=float, default=None,
            help="the projects' random slice (default: a new project's, as the studio ships)",
        )  # fmt: skip
        parser.add_argument(
            "--folds", type=int, default=0,
            help="k of each training's k-fold fits (the version's own metrics, needed by --label-issues):"
            " 0, the default, fits once on all labels, as the studio's final fit (the simulation scores"
            " every version on its held-out split)",
        )  # fmt: skip
        parser.add_argument(
            "--jobs", type=int, default=1,
            help="processes the replays run in, one (repeat, strategy) at a time each (one core each)",
        )  # fmt: skip
        parser.add_argument(
            "--label-issues", action="store_true",
            help="run each training's label-issue phase too (label issues, random-sampling curve);"
            " off by default",
        )  # fmt: skip
        parser.add_argument(
            "--text-model", choices=["ngrams", "encoder"], default="ngrams",
            help="text classification: the projects' text model (encoder: the sentence encoder)",
        )  # fmt: skip
        parser.add_argument("--size", type=int, default=2000, help="items of a synthetic data set")
        parser.add_argument("--out", type=Path, help="folder for the results (default var/simulations/…)")

    def handle(self, *args, **o):
        strategies = list(dict.fromkeys(o["strategies"] or ["margin", "random"]))
        run = Settings(
            seed_size=o["seed_size"], batch=o["batch"], budget=o["budget"], order=o["order"],
            test_share=o["test_share"], random_share=o["random_share"], folds=o["folds"],
            label_issues=o["label_issues"], text_model=o["text_model"],
        )  # fmt: skip
        if not 0 < run.test_share < 1:
            raise CommandError("--test-share must lie between 0 and 1")
        if o["repeats"] < 1:
            raise CommandError("--repeats must be at least 1")
        if o["verbosity"] < 2:
            # Each round's training logs a line; the command prints its own per round instead.
            for name in ("training", "annotate", "celery"):
                logging.getLogger(name).setLevel(logging.WARNING)
        load_before = os.getloadavg()[0]
        try:
            source = source_load(project_id=o["project"], dataset=o["dataset"], labels_from=o["labels_from"],
                                 size=o["size"])  # fmt: skip
            self.stdout.write(f"{source.name}: {len(source.values):,} items with known labels")
            result = simulate(source=source, strategies=strategies, settings=run, repeats=o["repeats"],
                              log=self.stdout.write, jobs=o["jobs"],
                              first_repeat=o["first_repeat"])  # fmt: skip
        except SourceUnusable as exc:
            raise CommandError(str(exc)) from exc
        folder = o["out"] or Path(settings.VAR_DIR) / "simulations" / (
            f"{source.name.replace(' ', '_').replace('/', '_')[:40]}-{datetime.now():%Y%m%d-%H%M%S}"
        )
        paths = result.write(folder)
        self.stdout.write("")
        self.stdout.write(result.table())
        for note in result.notes:
            self.stdout.write(f"note: {note}")
        # The load model beside the figure: this process, one core at a time, on a machine with …
        self.stdout.write(
            f"{result.seconds:.1f} s in {o['jobs']} process(es) on {os.cpu_count()} cores, load average"
            f" {load_before:.1f} at the start and {os.getloadavg()[0]:.1f} at the end;"
            f" written: {', '.join(str(p) for p in paths)}"
        )
