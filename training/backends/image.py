"""Image classification: a small convolutional network in PyTorch, trained from scratch (no torchvision).

Input is a float32 array (n, C, H, W) in [0, 1], e.g. from `images_to_array`. Three blocks of
conv-batchnorm-relu-maxpool, then dropout and one linear layer. AdamW with a one-cycle learning rate over
a number of epochs that grows as the data set shrinks, random shifts of a few pixels as augmentation;
everything seeded. Given the project's unlabeled images (`fit(..., unlabeled=...)`), a fit with fewer
than `pseudo_labels_below` labels per class also trains on their pseudo-labels (pseudo_labels.py).

No minibatch is smaller than `min_batch_size` (half of `batch_size` unless set; the whole set when it
is smaller still): an epoch's shuffled order is cut into `batch_size` chunks and a remainder below that
size is merged into the chunk before it, so every label is used every epoch and BatchNorm never
normalises a batch of one or two (449 labels at batch 64 used to end each epoch on a batch of 1, and
cost 2.7 points of accuracy on 5 seeds: bench/bench_minibatch.py). The loop checks every batch it feeds and
records the smallest, the largest and the examples used per epoch in `fit_info`.

Transfer learning: `start_from(state, source=...)` gives the network starting weights (another fitted
network's `weights()`, e.g. another project's version: training/transfer.py). Every later fit builds
its network, then copies in each of the source's tensors whose name and shape match, except the
head (the last nn.Linear), which stays freshly initialised for this task's classes. The input
standardisation (the Standardize buffers) is the source's too: its first filters and its BatchNorm
running statistics were learned on inputs scaled that way, and a few labels estimate the mean and
spread less well than the source's many. A source whose conv layers differ is refused.

torch is imported inside the functions that need it, so importing this module (and the web process)
stays light. The worker, not this module, sets torch's thread counts.
"""

import math
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Self

import numpy as np

from training.backends.artifacts import atomic_write
from training.backends.base import Backend

WEIGHTS = "weights.pt"


def images_to_array(images: Sequence, size: int = 32, *, rgb: bool = False) -> np.ndarray:
    """PIL images as float32 (n, 1 or 3, size, size) in [0, 1]: grayscale unless `rgb`, resized bilinearly.

    Transparent pixels are laid on white first, so a PNG with alpha reads as it looks in the browser.
    The aspect ratio is not kept: every image is stretched to a square, as the network expects.
    """
    from PIL import Image

    mode = "RGB" if rgb else "L"
    out = np.empty((len(images), 3 if rgb else 1, size, size), dtype=np.float32)
    for i, image in enumerate(images):
        if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
            rgba = image.convert("RGBA")
            image = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
            image.alpha_composite(rgba)
        image = image.convert(mode)
        if image.size != (size, size):
            # Pillow's BILINEAR widens its filter when shrinking, so a downscale averages, not aliases.
            image = image.resize((size, size), Image.Resampling.BILINEAR)
        pixels = np.asarray(image, dtype=np.float32)
        out[i] = (pixels[None] if not rgb else pixels.transpose(2, 0, 1)) / 255.0
    return out


def images_to_pixels(images: Sequence, size: int = 32) -> np.ndarray:
    """PIL images as uint8 (n, 1, size, size): `images_to_array` rounded to 8 bits, the form the
    studio caches an item's image in (training/features.py); the network reads it divided by 255."""
    return np.round(images_to_array(images, size=size) * 255).astype(np.uint8)


# Early stopping: a validation loss counts as better only by this much (a loss near 0 that keeps
# creeping down by millionths would otherwise never stop).
MIN_IMPROVEMENT = 1e-4


def _build_network(in_channels: int, n_classes: int, channels: Sequence[int], dropout: float):
    """The network as an nn.Sequential; per-channel input mean and std live in its first module's buffers."""
    import torch
    from torch import nn

    class Standardize(nn.Module):
        def __init__(self, c: int) -> None:
            super().__init__()
            self.register_buffer("mean", torch.zeros(1, c, 1, 1))
            self.register_buffer("std", torch.ones(1, c, 1, 1))

        def forward(self, x):
            return (x - self.mean) / self.std

    layers: list[nn.Module] = [Standardize(in_channels)]
    previous = in_channels
    for width in channels:
        layers += [
            nn.Conv2d(previous, width, kernel_size=3, padding=1, bias=False),
            nn.BatchNorm2d(width),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(2),
        ]
        previous = width
    layers += [
        # A fixed 4x4 grid keeps the linear layer independent of the input size (32 px is 4x4 as is).
        nn.AdaptiveAvgPool2d(4),
        nn.Flatten(),
        nn.Dropout(dropout),
        nn.Linear(previous * 16, n_classes),
    ]
    return nn.Sequential(*layers)


class ImageCNNBackend(Backend):
    """A small CNN; softmax with cross-entropy for single-label, sigmoids with BCE for multi-label."""

    name = "image_cnn"
    default_params = {
        "channels": [16, 32, 64],
        "dropout": 0.25,
        "lr": 3e-3,
        "weight_decay": 1e-4,
        "batch_size": 64,
        # None: batch_size // 2. A last chunk smaller than this joins the one before it; 1 keeps it alone.
        "min_batch_size": None,
        # None: enough epochs for about `target_steps` optimiser steps, within [min_epochs, max_epochs].
        # 250 steps whatever the labels: with a cap of 60 epochs a fit of 60 labels took 60 steps and
        # stopped undertrained (digits, 3 seeds, 60 typical labels: 0.943 capped, 0.958 with 250 steps;
        # 60 random labels 0.866 either way). From 64 × 250 / 60 ≈ 270 labels nothing changes.
        "epochs": None,
        "target_steps": 250,
        "min_epochs": 3,
        "max_epochs": 250,
        "shift": 2,  # augmentation: random shift of up to this many pixels each way; 0 turns it off
        "input_size": 32,  # the side the studio resizes images to (training/features.py image_arrays)
        # Early stopping on a seeded slice of the rows given to fit (the training side: inside an
        # evaluation fold it never sees that fold's held-out rows): the epochs above are the most,
        # the weights kept are the best epoch's by validation loss; off below early_stopping_min rows.
        # From 300 rows: below, 15-45 validation labels stop the network mid-schedule (from 100 rows
        # the digits simulation lost up to 15.5 points at 180 labels; bench/bench_early_stopping.py:
        # -2.0 points at 150 labels, -0.65 at 400, +0.23 at 1,000 with 300).
        "early_stopping": True,
        "validation_share": 0.15,
        "patience": 5,
        "early_stopping_min": 300,
        "device": None,  # None: "cuda" when available, else "cpu"
        "predict_batch_size": 512,
        # Given the project's unlabeled items, a fit with fewer than this many labels per class also
        # trains on their pseudo-labels (training/backends/pseudo_labels.py); 0 turns it off. 20 is
        # tuned on the digits simulation (bench/README.md): with 10, margin's accuracy dipped where
        # they switched off (100 labels) and it needed 112 labels to 99% of full data; with 20, 80.
        "pseudo_labels_below": 20,
    }

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        self._params["channels"] = [int(c) for c in self._params["channels"]]
        self.input_shape: tuple[int, int, int] | None = None
        self.network = None
        self._start: dict | None = None  # start_from's weights, for every later fit

    @property
    def is_fitted(self) -> bool:
        return self.network is not None

    def start_from(self, state: dict, *, source: str, input_shape: Sequence[int] | None = None) -> Self:
        """Start every later fit from these weights (a network's state: name -> array or tensor, as
        `weights()` gives), except the head, which is trained anew. `source` names them in fit_info;
        with `input_shape`, a fit on images of another shape is refused."""
        arrays = {
            name: np.array(value.detach().cpu() if hasattr(value, "detach") else value, copy=True)
            for name, value in state.items()
        }
        shape = None if input_shape is None else tuple(int(s) for s in input_shape)
        self._start = {"state": arrays, "source": str(source), "input_shape": shape}
        return self

    def weights(self) -> dict[str, np.ndarray]:
        """The fitted network's tensors by name, as NumPy copies (what `start_from` takes)."""
        self._require_fitted()
        return {
            name: value.detach().cpu().numpy().copy() for name, value in self.network.state_dict().items()
        }

    @property
    def device(self) -> str:
        """The torch device this model trains and predicts on."""
        import torch

        return self._params["device"] or ("cuda" if torch.cuda.is_available() else "cpu")

    def epochs_for(self, n: int) -> int:
        """Epochs for n samples: `epochs` when set, else enough for about `target_steps` optimiser steps."""
        p = self._params
        if p["epochs"] is not None:
            return max(1, int(p["epochs"]))
        steps_per_epoch = len(minibatch_bounds(n, int(p["batch_size"]), self.min_batch_size))
        return int(min(p["max_epochs"], max(p["min_epochs"], math.ceil(p["target_steps"] / steps_per_epoch))))

    @property
    def min_batch_size(self) -> int:
        """The stated smallest minibatch: `min_batch_size`, or half of `batch_size` when unset."""
        p = self._params
        stated = p["min_batch_size"] if p["min_batch_size"] is not None else int(p["batch_size"]) // 2
        return max(1, min(int(stated), int(p["batch_size"])))

    def learns_from_unlabeled(self, *, n_labels: int, n_classes: int, multi_label: bool) -> bool:
        return not multi_label and n_labels < int(self._params["pseudo_labels_below"] or 0) * n_classes

    def fit(
        self,
        X: np.ndarray,
        Y: np.ndarray,
        *,
        classes: list[str],
        multi_label: bool,
        seed: int = 0,
        unlabeled: np.ndarray | None = None,
    ) -> dict:
        import torch
        from torch import nn

        started = time.perf_counter()
        self.network = None  # a fit that fails leaves no half-fitted model behind
        X = self._check_images(X, fitted=False)
        Y = self._set_targets(Y, classes=classes, multi_label=multi_label, n=len(X))
        p = self._params
        labels_given = len(X)
        device = torch.device(self.device)
        torch.manual_seed(seed)
        rng = np.random.default_rng(seed)

        validation = None
        if p["early_stopping"] and len(X) >= int(p["early_stopping_min"]):
            order = rng.permutation(len(X))
            n_validation = max(1, round(len(X) * float(p["validation_share"])))
            held, kept = np.sort(order[:n_validation]), np.sort(order[n_validation:])
            validation = (X[held], Y[held])
            X, Y = X[kept], Y[kept]
        n_labels, pseudo, repeat = len(X), 0, 1
        wanted = self.learns_from_unlabeled(
            n_labels=labels_given, n_classes=len(self.classes), multi_label=multi_label
        )
        if unlabeled is not None and len(unlabeled) and wanted:
            from training.backends.pseudo_labels import pseudo_labels

            U = self._check_images(unlabeled, fitted=False)
            if tuple(U.shape[1:]) != tuple(X.shape[1:]):
                raise ValueError(f"unlabeled images have shape {U.shape[1:]}, the labeled ones {X.shape[1:]}")
            rows, spread = pseudo_labels(X, Y, U)
            # The labels are repeated until they are as many as the pseudo-labels: an epoch then sees
            # them as often as all the pseudo-labels together. Without it 80 labels among 680
            # pseudo-labels were each seen 20 times, not 250 (digits, 80 random labels, 2 splits:
            # 0.936 and 0.908 without the repeat, 0.939 and 0.922 with it; the labels alone 0.933, 0.950).
            repeat = max(1, math.ceil(len(rows) / max(n_labels, 1)))
            X = np.concatenate([np.tile(X, (repeat, 1, 1, 1)), U[rows]])
            Y = np.concatenate([np.tile(Y, repeat), spread])
            pseudo = len(rows)

        self.input_shape = tuple(int(s) for s in X.shape[1:])
        network = _build_network(X.shape[1], len(self.classes), p["channels"], p["dropout"])
        mean, std = _channel_stats(X)
        network[0].mean.copy_(torch.from_numpy(mean).view(1, -1, 1, 1))
        network[0].std.copy_(torch.from_numpy(std).view(1, -1, 1, 1))
        started_from = self._load_start(network) if self._start is not None else None
        network.to(device)

        n = len(X)
        bounds = minibatch_bounds(n, int(p["batch_size"]), self.min_batch_size)
        # A set smaller than the stated size is one batch of everything: nothing larger can be fed.
        floor = min(self.min_batch_size, n)
        epochs = self.epochs_for(n)
        steps = epochs * len(bounds)
        optimizer = torch.optim.AdamW(network.parameters(), lr=p["lr"], weight_decay=p["weight_decay"])
        schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=p["lr"], total_steps=steps)
        loss_fn = nn.BCEWithLogitsLoss() if multi_label else nn.CrossEntropyLoss()
        targets = torch.from_numpy(Y.astype(np.float32) if multi_label else Y)

        network.train()
        epoch_loss = float("nan")
        smallest, largest, used_per_epoch = n, 0, n
        curve: dict[str, list[float]] = {"train": [], "validation": []}
        best = (float("inf"), 0, None)  # validation loss, epoch, weights
        for epoch in range(1, epochs + 1):
            order = rng.permutation(n)
            total = 0.0
            used = np.zeros(n, dtype=bool)
            for start, stop in bounds:
                index = order[start:stop]
                if len(index) < floor:  # the promise of min_batch_size, checked where the batch is fed
                    raise RuntimeError(f"minibatch of {len(index)} below the stated {floor}")
                smallest, largest = min(smallest, len(index)), max(largest, len(index))
                used[index] = True
                batch = torch.from_numpy(X[index]).to(device)
                if p["shift"]:
                    batch = _random_shift(batch, int(p["shift"]), rng)
                loss = loss_fn(network(batch), targets[index].to(device))
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                schedule.step()
                total += float(loss.detach()) * len(index)
            epoch_loss = total / n
            used_per_epoch = min(used_per_epoch, int(used.sum()))
            curve["train"].append(float(f"{epoch_loss:.6g}"))
            if validation is not None:
                loss = self._loss_on(network, *validation, loss_fn=loss_fn, device=device)
                curve["validation"].append(float(f"{loss:.6g}"))
                if loss < best[0] - MIN_IMPROVEMENT:
                    best = (loss, epoch, {k: v.detach().clone() for k, v in network.state_dict().items()})
                elif epoch - best[1] >= int(p["patience"]):
                    break
        epochs_run = len(curve["train"])
        if best[2] is not None:
            network.load_state_dict(best[2])
        network.eval()
        self.network = network
        self.fit_info = {
            "n_samples": int(n),
            "labels": int(n_labels),
            "pseudo_labels": int(pseudo),
            "label_repeats": int(repeat),
            "epochs": int(epochs),
            "steps": int(steps),
            "min_batch_size": int(floor),
            "smallest_batch": int(smallest),
            "largest_batch": int(largest),
            "examples_per_epoch": int(used_per_epoch),  # the fewest distinct examples any epoch used
            "train_loss": round(epoch_loss, 6) if math.isfinite(epoch_loss) else None,
            "epochs_run": epochs_run,
            "loss_curve": curve,
            "best_epoch": best[1] if best[2] is not None else epochs_run,
            "validation_rows": 0 if validation is None else len(validation[0]),
            "device": str(device),
            "seconds": round(time.perf_counter() - started, 3),
        }
        if started_from is not None:
            self.fit_info["start_from"] = started_from
        return dict(self.fit_info)

    def _load_start(self, network) -> dict:
        """Copy start_from's tensors into the new `network` where name and shape match, the head
        excepted; what was loaded, for fit_info. Refuses a source of another input shape or whose
        conv layers differ from this network's."""
        import torch
        from torch import nn

        start = self._start
        source, state = start["source"], start["state"]
        if start["input_shape"] is not None and start["input_shape"] != self.input_shape:
            raise ValueError(
                f"start_from: {source} read images of shape {start['input_shape']},"
                f" these are {self.input_shape}"
            )
        own = network.state_dict()
        convs = [f"{i}.weight" for i, module in enumerate(network) if isinstance(module, nn.Conv2d)]
        theirs = sorted(
            (name for name, v in state.items() if name.endswith(".weight") and v.ndim == 4),
            key=lambda n: int(n.split(".")[0]),
        )
        if theirs != convs or any(tuple(state[n].shape) != tuple(own[n].shape) for n in convs):
            widths = [int(state[n].shape[0]) for n in theirs]
            raise ValueError(
                f"start_from: the conv layers of {source} (channels {widths}, on"
                f" {int(state[theirs[0]].shape[1]) if theirs else '?'} input channel(s)) do not match this"
                f" network's (channels {list(self._params['channels'])}, on {self.input_shape[0]})"
            )
        head = str(max(i for i, module in enumerate(network) if isinstance(module, nn.Linear)))
        loaded = 0
        with torch.no_grad():
            for name, tensor in own.items():
                value = state.get(name)
                if name.split(".")[0] == head or value is None or tuple(value.shape) != tuple(tensor.shape):
                    continue
                tensor.copy_(torch.as_tensor(value).to(tensor.dtype))
                loaded += 1
        return {
            "source": source,
            "tensors_loaded": loaded,
            "head": "re-initialised",
            "standardize": "source's",
        }

    def _loss_on(self, network, X: np.ndarray, Y: np.ndarray, *, loss_fn, device) -> float:
        """The mean loss of `network` on (X, Y), in eval mode, without gradients."""
        import torch

        network.eval()
        targets = torch.from_numpy(Y.astype(np.float32) if self.multi_label else Y)
        total, chunk = 0.0, int(self._params["predict_batch_size"])
        with torch.no_grad():
            for start in range(0, len(X), chunk):
                batch = torch.from_numpy(X[start : start + chunk]).to(device)
                part = targets[start : start + chunk].to(device)
                total += float(loss_fn(network(batch), part)) * len(batch)
        network.train()
        return total / len(X)

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        import torch

        self._require_fitted()
        X = self._check_images(X, fitted=True)
        device = torch.device(self.device)
        network = self.network.to(device).eval()
        out = np.empty((len(X), len(self.classes)), dtype=np.float64)
        chunk = int(self._params["predict_batch_size"])
        with torch.inference_mode():
            for start in range(0, len(X), chunk):
                # Only one chunk is ever on the device, so memory stays bounded however many items are scored.
                logits = network(torch.from_numpy(np.ascontiguousarray(X[start : start + chunk])).to(device))
                proba = torch.sigmoid(logits) if self.multi_label else torch.softmax(logits.double(), dim=1)
                out[start : start + chunk] = proba.double().cpu().numpy()
        return out

    def save(self, directory: Path) -> list[str]:
        import torch

        self._require_fitted()
        directory = Path(directory)
        state = {key: value.detach().cpu() for key, value in self.network.state_dict().items()}
        atomic_write(directory / WEIGHTS, lambda fh: torch.save(state, fh))
        return self._write_manifest(directory, [WEIGHTS], input_shape=list(self.input_shape))

    @classmethod
    def load(cls, directory: Path) -> Self:
        import torch

        backend, manifest = cls._read_manifest(directory)
        backend.input_shape = tuple(int(s) for s in manifest["input_shape"])
        network = _build_network(
            backend.input_shape[0],
            len(backend.classes),
            backend._params["channels"],
            backend._params["dropout"],
        )
        with open(Path(directory) / WEIGHTS, "rb") as fh:
            state = torch.load(fh, map_location="cpu", weights_only=True)
        network.load_state_dict(state)
        backend.network = network.to(torch.device(backend.device)).eval()
        return backend

    def _check_images(self, X: np.ndarray, *, fitted: bool) -> np.ndarray:
        X = np.asarray(X, dtype=np.float32)
        if X.ndim == 3:  # (n, H, W): one channel
            X = X[:, None]
        if X.ndim != 4:
            raise ValueError(f"images must have shape (n, C, H, W), not {X.shape}")
        if fitted and tuple(X.shape[1:]) != self.input_shape:
            raise ValueError(f"images have shape {X.shape[1:]}, the model was trained on {self.input_shape}")
        return X


def minibatch_bounds(n: int, batch_size: int, min_size: int) -> list[tuple[int, int]]:
    """(start, stop) of each minibatch over n shuffled examples: `batch_size` chunks, and a remainder
    smaller than `min_size` merged into the chunk before it (so one batch holds up to
    batch_size + min_size - 1). Every example is in exactly one batch; a set of at most
    batch_size is one batch. The caller keeps min_size <= batch_size."""
    if n <= 0 or batch_size <= 0:
        raise ValueError("minibatches need n > 0 and batch_size > 0")
    starts = list(range(0, n, batch_size))
    if len(starts) > 1 and n - starts[-1] < min_size:
        starts.pop()
    return list(zip(starts, [*starts[1:], n], strict=True))


def _channel_stats(X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel mean and std over a sample of at most 4,096 images (enough, and bounded)."""
    sample = X[:: max(1, len(X) // 4096)]
    mean = sample.mean(axis=(0, 2, 3), dtype=np.float64)
    std = sample.std(axis=(0, 2, 3), dtype=np.float64)
    return mean.astype(np.float32), np.maximum(std, 1e-3).astype(np.float32)


def _random_shift(batch, shift: int, rng: np.random.Generator):
    """Move each image by up to `shift` pixels in each direction, repeating the edge pixels into the gap."""
    import torch
    import torch.nn.functional as F

    b, _, h, w = batch.shape
    padded = F.pad(batch, (shift, shift, shift, shift), mode="replicate")
    offsets = torch.from_numpy(rng.integers(0, 2 * shift + 1, size=(b, 2))).to(batch.device)
    rows = offsets[:, :1] + torch.arange(h, device=batch.device)  # (b, h)
    cols = offsets[:, 1:] + torch.arange(w, device=batch.device)  # (b, w)
    picked = padded[
        torch.arange(b, device=batch.device)[:, None, None], :, rows[:, :, None], cols[:, None, :]
    ]
    return picked.permute(0, 3, 1, 2).contiguous()  # advanced indexing put the channel axis last
