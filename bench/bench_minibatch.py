"""The image CNN's accuracy around a multiple of its batch size, with and without the minibatch floor.

    .venv/bin/python -m bench.bench_minibatch     # 5 seeds × 440, 445, 448, 449, 450, 455, 460 labels
    .venv/bin/python -m bench.bench_minibatch --seeds 3 --sizes 448 449 450

image_cnn with its default parameters (batch 64) on the augmented digits of bench/harness/digits.py:
per seed, the first n of one seeded pick of sources train the model and the digits never picked as
sources (1,797 − the largest n, augmented with another seed) are the one evaluation set of that seed,
so every n of a seed is scored on the same images. "before" is `min_batch_size=1`, the old loop
(449 labels end every epoch on a batch of 1); "after" is the default, where a remainder under 32 joins
the batch before it. Both fit with the same seed, so the runs differ only in how the epoch is cut.

Load model: one process, one fit at a time, torch on --threads threads (default 1, what the training
worker sets), on the CPU unless --device says otherwise; the machine's load average and speed are
printed before and after, since the cores are shared. Target: after, no minibatch below the stated
size in any fit (the loop's own count, fit_info["smallest_batch"]), and no size in the range more
than 1 point below the mean accuracy of the sizes (mean of the seeds).
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

SIZES = [440, 445, 448, 449, 450, 455, 460]
MODES = {"before": {"min_batch_size": 1}, "after": {}}
DIP_TARGET_POINTS = 1.0


def fit_and_score(X, y, X_eval, y_eval, *, seed: int, device: str, params: dict) -> tuple[float, dict]:
    """Accuracy on the evaluation set and the fit's info, for one fit."""
    from training.backends.image import ImageCNNBackend

    # Early stopping off: the figures are about the loop fed exactly these n labels.
    backend = ImageCNNBackend(device=device, early_stopping=False, **params)
    info = backend.fit(X, y, classes=[str(c) for c in range(10)], multi_label=False, seed=seed)
    accuracy = float(np.mean(backend.predict_proba(X_eval).argmax(axis=1) == y_eval))
    return accuracy, info


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--sizes", type=int, nargs="+", default=SIZES)
    torch_arguments(parser)
    args = parser.parse_args(argv)

    sys.path.insert(0, str(REPO))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    import django

    django.setup()
    from bench.harness.digits import image_arrays
    from training.backends.image import ImageCNNBackend

    print(torch_machine(threads=args.threads, device=args.device))
    print(
        f"load model: one fit at a time in this process; {args.seeds} seeds × {len(args.sizes)} sizes × 2\n"
    )
    sizes = sorted(args.sizes)
    accuracy = {mode: {n: [] for n in sizes} for mode in MODES}
    smallest = {mode: {n: [] for n in sizes} for mode in MODES}
    started = time.perf_counter()
    for seed in range(args.seeds):
        arrays = image_arrays(seed=seed, n_train=sizes[-1])
        for n in sizes:
            X, y = arrays["X_train"][:n], arrays["y_train"][:n]
            for mode, params in MODES.items():
                acc, info = fit_and_score(
                    X, y, arrays["X_eval"], arrays["y_eval"], seed=seed, device=args.device, params=params
                )
                accuracy[mode][n].append(acc)
                smallest[mode][n].append(info["smallest_batch"])
        print(f"  seed {seed} done, {time.perf_counter() - started:.0f} s so far")
    seconds = time.perf_counter() - started

    print(
        f"\naccuracy in % on {len(arrays['y_eval']):,} held-out augmented digits, "
        f"mean ± sd of {args.seeds} seeds"
    )
    print(
        f"{'labels':>6}  {'before':>14}  {'smallest':>8}  {'after':>14}  {'smallest':>8}  "
        f"{'after − before':>14}"
    )
    for n in sizes:
        gain = [a - b for a, b in zip(accuracy["after"][n], accuracy["before"][n], strict=True)]
        print(
            f"{n:>6}  {percent_mean_sd(accuracy['before'][n])}  {min(smallest['before'][n]):>8}  "
            f"{percent_mean_sd(accuracy['after'][n])}  {min(smallest['after'][n]):>8}  "
            f"{percent_mean_sd(gain)}"
        )
    met = True
    for mode in MODES:
        means = {n: statistics.mean(accuracy[mode][n]) for n in sizes}
        overall = statistics.mean(means.values())
        worst = min(sizes, key=lambda n: means[n])
        dip = 100 * (overall - means[worst])
        line = f"{mode}: mean {100 * overall:.2f}%, worst size {worst} at {dip:.2f} points below the mean"
        if mode == "after":
            stated = ImageCNNBackend().min_batch_size
            floor_ok = min(min(v) for v in smallest["after"].values()) >= stated
            met = floor_ok and dip <= DIP_TARGET_POINTS
            line += (
                f" (target ≤ {DIP_TARGET_POINTS:.0f}); smallest batch fed "
                f"{min(min(v) for v in smallest['after'].values())} (target ≥ {stated}); "
                f"met: {'yes' if met else 'NO'}"
            )
        print(line)
    print(
        f"\n{seconds:.0f} s for {2 * args.seeds * len(sizes)} fits; "
        f"load average now {loadavg()}, CPU speed {cpu_speed_ms()} ms"
    )
    return 0 if met else 1


if __name__ == "__main__":
    raise SystemExit(main())
