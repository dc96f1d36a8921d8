"""Choosing the next batch for 100,000 items with margin + diversity (training/strategies.py).

    .venv/bin/python -m bench.bench_diversity [--items 100000] [--batch 20] [--repeats 5]

What is timed: strategies.margin_diversity over the whole pool, as pool scoring's last step runs
it: margin of every item, the top max(10 × batch, 2,000) most uncertain as candidates, a 64-d
truncated SVD of their features, k-means into `batch` clusters, ranks interleaved across them.
Inputs (made before the clock starts, seeded): softmax probabilities over 10 classes, and two
kinds of features, each timed: hashed sparse text features as the text model reads them (2^19
columns, 2^18 word and 2^18 character n-grams, 150 non-zeros a row drawn from a Zipf law, l2
rows) and 64-d dense embeddings. Target: ≤ 5 s on 2 cores. Load model: one process, BLAS and
OpenMP limited to 2 threads, nothing else of the studio running; the machine's load average is
printed beside the figures.
"""

import argparse
import os
import sys
import time
from pathlib import Path

for _name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_name, "2")

import numpy as np  # noqa: E402

if not __package__:  # run as a file: make the `training` package importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from training import strategies  # noqa: E402

TARGET_S = 5.0


def synthetic_pool(items: int, seed: int = 0):
    """(proba, hashed sparse features, 64-d embeddings) for `items` items."""
    import scipy.sparse as sp

    rng = np.random.default_rng(seed)
    logits = rng.normal(scale=2.0, size=(items, 10))
    proba = np.exp(logits - logits.max(axis=1, keepdims=True))
    proba /= proba.sum(axis=1, keepdims=True)
    nnz = 150
    columns = (rng.zipf(1.3, size=items * nnz) % 2**19).astype(np.int32)
    rows = np.repeat(np.arange(items), nnz)
    hashed = sp.csr_matrix(
        (rng.random(items * nnz).astype(np.float32), (rows, columns)), shape=(items, 2**19), dtype=np.float32
    )
    hashed.sum_duplicates()
    norms = np.sqrt(np.asarray(hashed.multiply(hashed).sum(axis=1)).ravel())
    hashed = sp.diags(1 / np.maximum(norms, 1e-12)).astype(np.float32) @ hashed
    embeddings = rng.normal(size=(items, 64)).astype(np.float32)
    return proba, hashed.tocsr(), embeddings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=100_000)
    parser.add_argument("--batch", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    started = time.perf_counter()
    proba, hashed, embeddings = synthetic_pool(args.items)
    candidates = strategies.diversity_prefilter_size(args.batch)
    print(f"{args.items:,} items, batch {args.batch}, candidates {candidates:,};"
          f" inputs made in {time.perf_counter() - started:.1f} s; load average {os.getloadavg()[0]:.2f},"
          f" {os.cpu_count()} CPUs, 2 threads")  # fmt: skip
    strategies.margin_diversity(proba[:3000], embeddings[:3000], batch=args.batch)  # imports, warm-up
    for name, features in (("hashed 2^19 sparse", hashed), ("64-d embeddings", embeddings)):
        times = []
        for repeat in range(args.repeats):
            t = time.perf_counter()
            strategies.margin_diversity(proba, features, batch=args.batch, seed=repeat)
            times.append(time.perf_counter() - t)
        verdict = "met" if max(times) <= TARGET_S else "NOT met"
        print(f"{name:>20}: median {np.median(times):.2f} s, max {max(times):.2f} s"
              f" (target ≤ {TARGET_S:.0f} s: {verdict})")  # fmt: skip
    print(f"load average at the end {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
