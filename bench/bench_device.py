"""The torch backends alone on NumPy arrays, on the CPU and on CUDA where there is one: the check of the
GPU path (issue 16, part 5) on a machine with no Django, no database and no studio.

    python -m bench.bench_device                  # cuda when torch sees one, and the CPU beside it
    python -m bench.bench_device --devices cpu    # the CPU only
    python -m bench.bench_device --images 4000 --epochs 10

Image network (training/backends/image.py, ImageCNNBackend): seeded random-pattern images (n, 1, 32,
32), 10 classes whose mean brightness pattern differs, fitted `--epochs` epochs on each device, then
10,000 images predicted; the CPU model's weights are then loaded onto each other device (save and
load, weights_only) and the two devices' probabilities compared. The sentence encoder
(training/backends/encoder.py) embeds 1,000 texts on each device when it is installed here (its
83.5 MB of weights: not on a machine that received only this repository), else the line says why it
was not checked.

Load model: one process, one fit at a time, torch on --threads threads. Targets: the device each fit
ran on is the one asked for (fit_info["device"]); on CUDA, probabilities of the same weights within
1e-4 of the CPU's (float32 kernels differ); the fit and predict times are printed, not judged.
Nothing here needs more than NumPy and torch (and sentence-transformers for the encoder).
"""

import argparse
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

if not __package__:  # run as a file (python bench/<script>.py): make the `bench` package importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

PROBA_TOLERANCE = 1e-4


def pattern_images(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """n images in [0, 1] of 10 classes: each class a fixed 4x4 block pattern upscaled, plus noise."""
    rng = np.random.default_rng(seed)
    patterns = np.random.default_rng(0).random((10, 4, 4))
    y = rng.integers(0, 10, n)
    base = np.kron(patterns[y], np.ones((8, 8)))  # (n, 32, 32)
    X = np.clip(base + rng.normal(0, 0.35, base.shape), 0, 1).astype(np.float32)[:, None]
    return X, y.astype(np.int64)


def image_check(device: str, *, n: int, epochs: int, reference=None) -> dict:
    from training.backends.image import ImageCNNBackend

    X, y = pattern_images(n, seed=1)
    X_eval, y_eval = pattern_images(10_000, seed=2)
    backend = ImageCNNBackend(device=device, epochs=epochs)
    started = time.perf_counter()
    info = backend.fit(X, y, classes=[str(c) for c in range(10)], multi_label=False, seed=0)
    fit_seconds = time.perf_counter() - started
    started = time.perf_counter()
    proba = backend.predict_proba(X_eval)
    predict_seconds = time.perf_counter() - started
    row = {
        "device": info["device"],
        "fit_s": fit_seconds,
        "predict_10k_s": predict_seconds,
        "accuracy": float(np.mean(proba.argmax(axis=1) == y_eval)),
        "backend": backend,
    }
    if reference is not None:
        # The reference (CPU) model's weights on this device: same weights, this device's kernels.
        with tempfile.TemporaryDirectory() as folder:
            reference.save(Path(folder))
            moved = ImageCNNBackend.load(Path(folder))
            moved._params["device"] = device
            row["max_proba_diff_vs_cpu"] = float(
                np.abs(moved.predict_proba(X_eval) - reference.predict_proba(X_eval)).max()
            )
    return row


def encoder_check(device: str) -> str:
    try:
        from training.backends.encoder import EncoderUnavailable, SentenceEncoder
    except ImportError as exc:
        return f"not checked: {exc}"
    try:
        encoder = SentenceEncoder(device=device)
    except EncoderUnavailable as exc:
        return f"not checked: {exc}"
    texts = [f"sentence number {i} about a film that was {'good' if i % 2 else 'dull'}" for i in range(1000)]
    encoder.embed(texts[:64])  # load the model first
    started = time.perf_counter()
    embeddings = encoder.embed(texts)
    seconds = time.perf_counter() - started
    norms = np.linalg.norm(embeddings, axis=1)
    return (
        f"{encoder.last_embed['device']}: 1,000 texts in {seconds:.2f} s, shape {embeddings.shape}, "
        f"norms {norms.min():.4f}–{norms.max():.4f}"
    )


def main(argv: list[str] | None = None) -> int:
    import torch

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", nargs="+", default=None, help="default: cpu, and cuda when available")
    parser.add_argument("--images", type=int, default=2000)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    devices = args.devices or (["cpu", "cuda"] if torch.cuda.is_available() else ["cpu"])
    print(
        f"python {platform.python_version()} · numpy {np.__version__} · torch {torch.__version__} · "
        f"cuda available {torch.cuda.is_available()}"
        + (
            f" ({torch.cuda.get_device_name(0)}, CUDA {torch.version.cuda})"
            if torch.cuda.is_available()
            else ""
        )
        + f" · {args.threads} CPU thread(s)"
    )
    print(f"Image network: {args.images} images 1x32x32, 10 classes, {args.epochs} epochs; 10,000 predicted")
    failures, reference = [], None
    for device in devices:
        row = image_check(device, n=args.images, epochs=args.epochs, reference=reference)
        reference = reference or row["backend"]
        diff = row.get("max_proba_diff_vs_cpu")
        print(
            f"  {device:>5}: ran on {row['device']:<6} fit {row['fit_s']:7.2f} s"
            f" · predict {row['predict_10k_s']:6.2f} s"
            f" · accuracy {row['accuracy']:.3f}"
            + (
                ""
                if diff is None
                else f" · CPU weights here: max |Δp| {diff:.2e} (target ≤ {PROBA_TOLERANCE:g})"
            )
        )
        if not row["device"].startswith(device):
            failures.append(f"{device}: the fit ran on {row['device']}")
        if diff is not None and diff > PROBA_TOLERANCE:
            failures.append(f"{device}: probabilities differ from the CPU's by {diff:.2e}")
    for device in devices:
        print(f"Sentence encoder on {device}: {encoder_check(device)}")
    print("target met" if not failures else "TARGET MISSED: " + "; ".join(failures))
    return 0 if not failures else 1


if __name__ == "__main__":
    sys.exit(main())
