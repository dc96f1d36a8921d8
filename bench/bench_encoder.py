"""How many labels the sentence encoder saves against the hashed n-grams, on the Rotten Tomatoes demo.

    .venv/bin/python -m bench.bench_encoder [--seeds 5] [--sizes 100,200,500,1000] [--threads 2]

Load model: one process, the backends alone on arrays (training/backends/text.py and encoder.py),
as the training worker runs them. For each seed, a stratified 20% test split of the demo's 12,808
snippets (2,562) and a seeded random pick of labeled snippets from the rest, nested (the 100 are
the first 100 of the 200, …); both models fit the same picks with their default parameters and are
scored on the same test split. Accuracy per size is the mean of the seeds with the standard
deviation. Target (the issue's): the encoder at 200 labels at least as accurate as the n-grams at
1,000.

Cost: every snippet is embedded once (as the features cache keeps one embedding per item), timed
as seconds per 1,000 items on this machine's cores with --threads torch threads (the worker sets
1; the figure is given for both); the model's first load is timed apart.
"""

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

if not __package__:  # run as a file (python bench/<script>.py): make the `bench` package importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.harness import REPO
from bench.harness.machine import describe

SIZES = (100, 200, 500, 1000)
TARGET_ENCODER_AT, TARGET_NGRAMS_AT = 200, 1000


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--sizes", default=",".join(map(str, SIZES)))
    parser.add_argument("--threads", type=int, default=2, help="torch threads while embedding")
    parser.add_argument("--device", default=None, help="torch device (default: cuda if available)")
    args = parser.parse_args(argv)
    sizes = sorted(int(s) for s in args.sizes.split(","))

    sys.path.insert(0, str(REPO))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    import django

    django.setup()
    import torch

    from tests.training import data
    from training.backends.encoder import SentenceEncoder, TextEncoderBackend, encoder_available
    from training.backends.text import TextLogRegBackend

    meta = describe()
    print(f"machine: {meta}")
    why = encoder_available()
    if why:
        print(f"the encoder is not available: {why}")
        return 1
    texts, y = data.rotten_tomatoes(full=True)
    torch.set_num_threads(args.threads)

    started = time.perf_counter()
    encoder = SentenceEncoder(device=args.device)
    encoder.embed(["warm up"])
    load_s = time.perf_counter() - started
    started = time.perf_counter()
    embeddings = encoder.embed(list(texts))
    embed_s = time.perf_counter() - started
    sample = list(texts[:1000])
    torch.set_num_threads(1)
    started = time.perf_counter()
    encoder.embed(sample)
    one_thread_s = time.perf_counter() - started
    torch.set_num_threads(args.threads)
    ngrams = TextLogRegBackend().featurizer.featurize(list(texts))

    rows: dict[str, dict[int, list[float]]] = {
        "ngrams": {n: [] for n in sizes},
        "encoder": {n: [] for n in sizes},
    }
    for seed in range(args.seeds):
        train, test = data.review_split(y, seed=seed, n_train=max(sizes))
        for n in sizes:
            pick = train[:n]
            for name, backend, X in (
                ("ngrams", TextLogRegBackend(), ngrams),
                ("encoder", TextEncoderBackend(device=args.device), embeddings),
            ):
                backend.fit(X[pick], y[pick], classes=data.REVIEW_CLASSES, multi_label=False, seed=seed)
                accuracy = float(np.mean(backend.predict_proba(X[test]).argmax(axis=1) == y[test]))
                rows[name][n].append(accuracy)
        print(f"  seed {seed}: " + ", ".join(
            f"{n}: n-grams {rows['ngrams'][n][-1]:.3f} encoder {rows['encoder'][n][-1]:.3f}" for n in sizes
        ))  # fmt: skip

    print(f"\nRotten Tomatoes demo ({len(texts):,} snippets), test split {len(test):,}, {args.seeds} seeds")
    print("| labels | hashed n-grams | sentence encoder |")
    print("|---|---|---|")
    mean = {name: {n: float(np.mean(v)) for n, v in by.items()} for name, by in rows.items()}
    for n in sizes:
        cells = [f"{mean[name][n]:.3f} ± {np.std(rows[name][n]):.3f}" for name in ("ngrams", "encoder")]
        print(f"| {n:,} | {cells[0]} | {cells[1]} |")
    if TARGET_ENCODER_AT in sizes and TARGET_NGRAMS_AT in sizes:
        a, b = mean["encoder"][TARGET_ENCODER_AT], mean["ngrams"][TARGET_NGRAMS_AT]
        met = "met" if a >= b else "NOT met"
        print(
            f"\ntarget: the encoder at {TARGET_ENCODER_AT} labels ({a:.3f}) at least as accurate as the "
            f"n-grams at {TARGET_NGRAMS_AT:,} ({b:.3f}): {met}"
        )
    started = time.perf_counter()
    TextEncoderBackend(device=args.device).fit(
        embeddings[:1000], y[:1000], classes=data.REVIEW_CLASSES, multi_label=False
    )
    fit_s = time.perf_counter() - started
    per_1000 = 1000 * embed_s / len(texts)
    print(
        f"cost: embedding {len(texts):,} snippets took {embed_s:.1f} s on {encoder.device} with "
        f"{args.threads} torch threads: {per_1000:.2f} s per 1,000 items ({one_thread_s:.2f} s per 1,000 "
        f"with 1 thread, as the worker runs), once per item (cached); the model's first load "
        f"{load_s:.1f} s; a fit on 1,000 embeddings {fit_s:.2f} s"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
