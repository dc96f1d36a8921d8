"""Early stopping of the image network as the studio uses it, against training the scheduled epochs.

    .venv/bin/python -m bench.bench_early_stopping                       # 5 seeds × 150, 300, 600, 1000
    .venv/bin/python -m bench.bench_early_stopping --seeds 3 --sizes 300 600 --min 500

image_cnn on the augmented digits of bench/harness/digits.py (per seed, the first n of one seeded pick
train and the digits never picked are the evaluation set). Two arms per (seed, n):
- "off": one fit on the n labels for the scheduled epochs (about 250 optimiser steps), what the
  studio does with early stopping off;
- "on": what a studio run does with it on (training/versions.py): an evaluation fit on a fold's
  training side (80% of the n labels, as one fold of the 5-fold cross-validation) with early stopping
  (a seeded 15% slice of those held out, patience, the best epoch's weights), then the final fit on
  all n labels for that fit's best epoch count, without a slice. Below `--min` labels (the backend's
  early_stopping_min) "on" trains as "off" does, as the backend does.
The accuracy is the final fit's on the evaluation digits.

Load model: one process, one fit at a time, torch on --threads threads (default 1, as the training
worker), on the CPU unless --device says otherwise. Target: "on" is nowhere more than 1 point below
"off" (mean of the seeds) at the sizes where it acts; the mean best epoch and the scheduled epochs
are printed beside.
"""

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np

if not __package__:  # run as a file (python bench/<script>.py): make the `bench` package importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.harness import REPO
from bench.harness.machine import cpu_speed_ms, loadavg, torch_arguments, torch_machine
from bench.harness.report import percent_mean_sd

SIZES = [150, 300, 600, 1000]
TOLERANCE_POINTS = 1.0
CLASSES = [str(c) for c in range(10)]


def _accuracy(backend, X, y) -> float:
    return float(np.mean(backend.predict_proba(X).argmax(axis=1) == y))


def arm_off(X, y, *, seed: int, device: str) -> tuple[object, dict]:
    from training.backends.image import ImageCNNBackend

    backend = ImageCNNBackend(device=device, early_stopping=False)
    return backend, backend.fit(X, y, classes=CLASSES, multi_label=False, seed=seed)


def arm_on(X, y, *, seed: int, device: str, minimum: int) -> tuple[object, dict]:
    """The evaluation fit on 80% with early stopping, then the refit on all for its best epoch count."""
    from training.backends.image import ImageCNNBackend

    fold = np.random.default_rng(seed + 100).permutation(len(y))[: int(0.8 * len(y))]
    evaluation = ImageCNNBackend(device=device, early_stopping=True, early_stopping_min=minimum)
    info = evaluation.fit(X[fold], y[fold], classes=CLASSES, multi_label=False, seed=seed)
    if not info["validation_rows"]:
        return arm_off(X, y, seed=seed, device=device)[0], {**info, "acted": False}
    final = ImageCNNBackend(device=device, early_stopping=False, epochs=info["best_epoch"])
    final.fit(X, y, classes=CLASSES, multi_label=False, seed=seed)
    return final, {**info, "acted": True}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--sizes", type=int, nargs="+", default=SIZES)
    parser.add_argument("--min", type=int, default=None, help="early_stopping_min (default: the backend's)")
    torch_arguments(parser)
    args = parser.parse_args(argv)

    sys.path.insert(0, str(REPO))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    import django

    django.setup()
    from bench.harness.digits import image_arrays
    from training.backends.image import ImageCNNBackend

    minimum = args.min if args.min is not None else ImageCNNBackend.default_params["early_stopping_min"]
    print(torch_machine(threads=args.threads, device=args.device) + f"; early_stopping_min {minimum}")
    print(f"load model: one fit at a time in this process; {args.seeds} seeds × {len(args.sizes)} sizes\n")
    sizes = sorted(args.sizes)
    accuracy = {arm: {n: [] for n in sizes} for arm in ("off", "on")}
    best, scheduled, acted = ({n: [] for n in sizes} for _ in range(3))
    started = time.perf_counter()
    for seed in range(args.seeds):
        arrays = image_arrays(seed=seed, n_train=sizes[-1])
        for n in sizes:
            X, y = arrays["X_train"][:n], arrays["y_train"][:n]
            off, off_info = arm_off(X, y, seed=seed, device=args.device)
            on, on_info = arm_on(X, y, seed=seed, device=args.device, minimum=minimum)
            accuracy["off"][n].append(_accuracy(off, arrays["X_eval"], arrays["y_eval"]))
            accuracy["on"][n].append(_accuracy(on, arrays["X_eval"], arrays["y_eval"]))
            best[n].append(on_info["best_epoch"])
            scheduled[n].append(off_info["epochs"])
            acted[n].append(on_info["acted"])
        print(f"  seed {seed} done, {time.perf_counter() - started:.0f} s so far")
    print(f"\naccuracy of the final fit in %, mean ± sd of {args.seeds} seeds")
    print(f"{'labels':>6}  {'off':>14}  {'on':>14}  {'on − off':>14}  {'best epoch':>10}  {'scheduled':>9}")
    met = True
    for n in sizes:
        gain = [a - b for a, b in zip(accuracy["on"][n], accuracy["off"][n], strict=True)]
        note = "" if all(acted[n]) else "  (below early_stopping_min: on = off)"
        print(
            f"{n:>6}  {percent_mean_sd(accuracy['off'][n])}  {percent_mean_sd(accuracy['on'][n])}  "
            f"{percent_mean_sd(gain)}  "
            f"{statistics.mean(best[n]):>10.1f}  {statistics.mean(scheduled[n]):>9.1f}{note}"
        )
        if all(acted[n]) and 100 * statistics.mean(gain) < -TOLERANCE_POINTS:
            met = False
    print(
        f"target: on at most {TOLERANCE_POINTS:g} point below off where it acts; "
        f"met: {'yes' if met else 'NO'}"
    )
    print(
        f"{time.perf_counter() - started:.0f} s; load average now {loadavg()}, CPU speed {cpu_speed_ms()} ms"
    )
    return 0 if met else 1


if __name__ == "__main__":
    raise SystemExit(main())
