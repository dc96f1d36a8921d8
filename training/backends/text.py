"""Text classification: hashed word and character n-grams, then logistic regression (scikit-learn).

The featurizer is stateless (feature hashing, no vocabulary), so an item's features depend only on its
text and the featurizer settings: the caller computes them once, keeps them in a `TextFeatures` file,
and a retrain refits the classifier, not the features.

Learned state is two plain arrays, `coef` (k, n_features) and `intercept` (k,), for every task type:
single-label scores are softmax(X @ coef.T + intercept) and multi-label ones sigmoid(…) per class.
scikit-learn is imported inside the functions that need it.
"""

import hashlib
import json
import time
import warnings
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Self

import numpy as np
import scipy.sparse as sp

from training.backends.artifacts import atomic_write_npz, read_npz
from training.backends.base import Backend, sigmoid, softmax

WEIGHTS = "weights.npz"
# Logit of a class that no training sample carries: its softmax probability is 0 to double precision.
ABSENT_LOGIT = -1e3
# Rows featurized at a time, so the hashing and normalising copies stay small.
FEATURIZE_CHUNK = 8192
WORD_TOKENS = r"(?u)\b\w+\b"  # keeps one-letter words ("I", "a"), which scikit-learn's default drops


@dataclass(frozen=True)
class TextFeaturizer:
    """Hashed word n-grams and character n-grams (inside word boundaries), each block sublinear tf + l2."""

    word_ngrams: tuple[int, int] = (1, 2)
    char_ngrams: tuple[int, int] = (3, 5)
    word_features: int = 2**18
    char_features: int = 2**18
    lowercase: bool = True
    sublinear_tf: bool = True

    @classmethod
    def from_settings(cls, settings: dict[str, Any]) -> Self:
        return cls(
            word_ngrams=tuple(settings["word_ngrams"]),
            char_ngrams=tuple(settings["char_ngrams"]),
            word_features=int(settings["word_features"]),
            char_features=int(settings["char_features"]),
            lowercase=bool(settings["lowercase"]),
            sublinear_tf=bool(settings["sublinear_tf"]),
        )

    def settings(self) -> dict[str, Any]:
        """The settings as JSON-safe values (tuples become lists)."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    @property
    def n_features(self) -> int:
        return self.word_features + self.char_features

    @property
    def fingerprint(self) -> str:
        """Changes whenever a setting changes what `featurize` returns; stored with cached features."""
        text = json.dumps({"featurizer": 1, **self.settings()}, sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def featurize(self, texts: Sequence[str], *, progress=None) -> sp.csr_matrix:
        """float32 CSR of shape (len(texts), n_features); rows have unit l2 norm unless the text is empty.
        `progress(done, total)` after each chunk of FEATURIZE_CHUNK texts."""
        from sklearn.feature_extraction.text import HashingVectorizer

        if isinstance(texts, str):
            raise TypeError("featurize takes a list of texts, not one string")
        common = {"alternate_sign": False, "norm": None, "lowercase": self.lowercase, "dtype": np.float32}
        vectorizers = [
            HashingVectorizer(
                analyzer="word",
                ngram_range=self.word_ngrams,
                token_pattern=WORD_TOKENS,
                n_features=self.word_features,
                **common,
            ),
            HashingVectorizer(
                analyzer="char_wb", ngram_range=self.char_ngrams, n_features=self.char_features, **common
            ),
        ]
        texts = list(texts)
        chunks = []
        for start in range(0, len(texts), FEATURIZE_CHUNK):
            part = texts[start : start + FEATURIZE_CHUNK]
            blocks = [self._block(v.transform(part)) for v in vectorizers]
            chunks.append(sp.hstack(blocks, format="csr", dtype=np.float32))
            if progress is not None:
                progress(start + len(part), len(texts))
        if not chunks:
            return sp.csr_matrix((0, self.n_features), dtype=np.float32)
        matrix = chunks[0] if len(chunks) == 1 else sp.vstack(chunks, format="csr", dtype=np.float32)
        # Each block has norm 1, so scaling by 1/sqrt(2) gives the whole row norm 1 and both blocks equal say.
        matrix.data *= np.float32(1 / np.sqrt(2))
        matrix.sort_indices()
        return matrix

    def _block(self, counts: sp.spmatrix) -> sp.csr_matrix:
        from sklearn.preprocessing import normalize

        block = sp.csr_matrix(counts, dtype=np.float32)
        block.sum_duplicates()
        if self.sublinear_tf:
            np.log(block.data, out=block.data)
            block.data += 1
        return normalize(block, norm="l2", copy=False)


@dataclass
class TextFeatures:
    """Per-item features with their item ids, kept as a plain `.npz` (no pickle) across retrains."""

    item_ids: np.ndarray
    matrix: sp.csr_matrix
    fingerprint: str

    @classmethod
    def build(
        cls, item_ids: Sequence, texts: Sequence[str], featurizer: TextFeaturizer | None = None, progress=None
    ) -> Self:
        """`progress(done, total)` as the texts are featurized."""
        featurizer = featurizer or TextFeaturizer()
        ids = _id_array(item_ids)
        if len(ids) != len(texts):
            raise ValueError("one item id per text")
        matrix = featurizer.featurize(texts, progress=progress)
        return cls(item_ids=ids, matrix=matrix, fingerprint=featurizer.fingerprint)

    @classmethod
    def concat(cls, parts: Sequence["TextFeatures"]) -> Self:
        """Join feature sets made with the same featurizer (e.g. the cache and newly imported items)."""
        if not parts or len({p.fingerprint for p in parts}) != 1:
            raise ValueError("concat needs at least one part, all from the same featurizer")
        ids = np.concatenate([p.item_ids for p in parts])
        return cls(
            item_ids=ids,
            matrix=sp.vstack([p.matrix for p in parts], format="csr", dtype=np.float32),
            fingerprint=parts[0].fingerprint,
        )

    def rows(self, item_ids: Sequence) -> sp.csr_matrix:
        """The feature rows of `item_ids`, in that order; KeyError for an id not in the set."""
        wanted = _id_array(item_ids)
        order = np.argsort(self.item_ids, kind="stable")
        known = self.item_ids[order]
        at = np.searchsorted(known, wanted)
        found = at < len(known)
        found[found] = known[at[found]] == wanted[found]
        if not found.all():
            raise KeyError(f"no features for item id(s) {wanted[~found][:5].tolist()}")
        return self.matrix[order[at]]

    def save_npz(self, path: Path) -> Path:
        """Write the ids and the CSR arrays to `path` atomically."""
        m = self.matrix
        return atomic_write_npz(
            Path(path),
            item_ids=self.item_ids,
            data=m.data,
            indices=m.indices,
            indptr=m.indptr,
            shape=np.asarray(m.shape, dtype=np.int64),
            fingerprint=np.asarray(self.fingerprint),
        )

    @classmethod
    def load_npz(cls, path: Path, featurizer: TextFeaturizer | None = None) -> Self:
        """Read a file `save_npz` wrote; with `featurizer`, refuse features that another featurizer made."""
        arrays = read_npz(Path(path))
        fingerprint = str(arrays["fingerprint"])
        if featurizer is not None and featurizer.fingerprint != fingerprint:
            raise ValueError(f"{path}: features were made with other featurizer settings")
        matrix = sp.csr_matrix(
            (arrays["data"], arrays["indices"], arrays["indptr"]), shape=tuple(arrays["shape"].tolist())
        )
        return cls(item_ids=arrays["item_ids"], matrix=matrix, fingerprint=fingerprint)


def _id_array(item_ids: Sequence) -> np.ndarray:
    """Item ids as int64 when they are all integers, else as fixed-width unicode (never object)."""
    ids = np.asarray(list(item_ids))
    if ids.size == 0:
        return np.zeros(0, dtype=np.int64)
    if np.issubdtype(ids.dtype, np.integer):
        return ids.astype(np.int64)
    return ids.astype(str)


class TextLogRegBackend(Backend):
    """Logistic regression on hashed n-grams: multinomial for single-label, one-vs-rest for multi-label."""

    name = "text_logreg"
    default_params = {
        "C": 10.0,
        # With C_search, each fit chooses C among C_grid by a stratified 3-fold cross-validation
        # of its own training labels (lowest held-out log loss): inside an evaluation fold it
        # never sees that fold's held-out labels. fit_info["c_search"] reports the scores.
        "C_search": False,
        "C_grid": [0.1, 1.0, 10.0, 100.0],
        "class_weight": "balanced",
        "max_iter": 1000,
        "tol": 1e-4,
        **TextFeaturizer().settings(),
    }

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        if self._params["class_weight"] not in (None, "balanced"):
            raise ValueError("class_weight must be None or 'balanced'")
        self.featurizer = TextFeaturizer.from_settings(self._params)
        self._params.update(self.featurizer.settings())
        self.coef: np.ndarray | None = None
        self.intercept: np.ndarray | None = None

    def featurize(self, texts: Sequence[str]) -> sp.csr_matrix:
        return self.featurizer.featurize(texts)

    @property
    def is_fitted(self) -> bool:
        return self.coef is not None

    def fit(self, X: Any, Y: np.ndarray, *, classes: list[str], multi_label: bool, seed: int = 0) -> dict:
        started = time.perf_counter()
        self.coef = self.intercept = None  # a fit that fails leaves no half-fitted model behind
        self._coef_t = None
        X = self._as_features(X)
        Y = self._set_targets(Y, classes=classes, multi_label=multi_label, n=X.shape[0])
        search = self._c_search(X, Y, seed) if self._params["C_search"] else None
        self._C = search["chosen"] if search and "chosen" in search else float(self._params["C"])
        k, d = len(self.classes), X.shape[1]
        # Fit only the features some training text has: the rest would get weight 0 under the L2 penalty
        # anyway, and lbfgs iterates over every weight, so this is what keeps a fit fast.
        columns = np.unique(X.indices)
        seen = sp.csr_matrix(
            (X.data, np.searchsorted(columns, X.indices), X.indptr), shape=(X.shape[0], len(columns))
        )
        coef = np.zeros((k, len(columns)), dtype=np.float64)
        intercept = np.zeros(k, dtype=np.float64)
        if multi_label:
            fits = [self._fit_column(seen, Y[:, j], coef[j], intercept[j : j + 1], seed) for j in range(k)]
        else:
            fits = [self._fit_single(seen, Y, coef, intercept, seed)]
        self.coef = np.zeros((k, d), dtype=np.float64)
        self.coef[:, columns] = coef
        self.intercept = intercept
        proba = self.predict_proba(X)
        self.fit_info = {
            "n_samples": int(X.shape[0]),
            "n_features_seen": len(columns),
            "n_iter": max(f["n_iter"] for f in fits),
            "converged": all(f["converged"] for f in fits),
            "train_loss": round(_log_loss(proba, Y, multi_label), 6),
            "C": self._C,
            "seconds": round(time.perf_counter() - started, 3),
        }
        if search is not None:
            self.fit_info["c_search"] = search
        return dict(self.fit_info)

    def _c_search(self, X: sp.csr_matrix, Y: np.ndarray, seed: int) -> dict:
        """C_grid's held-out log loss by stratified 3-fold cross-validation of these labels; the
        chosen C is the lowest's. Single-label with 3 labels of every class present only (else
        the reason, and the stated C is used)."""
        from sklearn.model_selection import StratifiedKFold

        if self.multi_label:
            return {"skipped": "multi-label: the stated C is used"}
        present, counts = np.unique(Y, return_counts=True)
        if len(present) < 2 or counts.min() < 3:
            return {"skipped": "fewer than 3 labels of a class: the stated C is used"}
        grid = [float(c) for c in self._params["C_grid"]]
        losses = []
        for c in grid:
            total = 0.0
            for train, test in StratifiedKFold(3, shuffle=True, random_state=seed).split(np.zeros(len(Y)), Y):
                inner = type(self)(**{**self._params, "C": c, "C_search": False})
                inner.fit(X[train], Y[train], classes=self.classes, multi_label=False, seed=seed)
                total += _log_loss(inner.predict_proba(X[test]), Y[test], False) * len(test)
            losses.append(round(total / len(Y), 6))
        return {"grid": grid, "log_loss": losses, "chosen": grid[int(np.argmin(losses))], "folds": 3}

    def _fit_single(
        self, X: sp.csr_matrix, y: np.ndarray, coef: np.ndarray, intercept: np.ndarray, seed: int
    ):
        """Fill coef (k, d) and intercept (k,) in place for single-label targets."""
        present = np.unique(y)
        intercept[:] = ABSENT_LOGIT
        if len(present) == 1:
            intercept[present[0]] = 0.0
            return {"n_iter": 0, "converged": True}
        clf, converged = self._logreg(X, y, seed)
        if len(present) == 2:
            # scikit-learn keeps one vector for two classes: sigmoid(w.x + b) = softmax([0, w.x + b])[1].
            coef[present[1]] = clf.coef_[0]
            intercept[present[0]] = 0.0
            intercept[present[1]] = clf.intercept_[0]
        else:
            coef[present] = clf.coef_
            intercept[present] = clf.intercept_
        return {"n_iter": int(np.max(clf.n_iter_)), "converged": converged}

    def _fit_column(
        self, X: sp.csr_matrix, y: np.ndarray, coef: np.ndarray, intercept: np.ndarray, seed: int
    ):
        """Fill one class's coef (d,) and intercept (1,) in place, as a binary problem."""
        positives = int(y.sum())
        if positives in (0, len(y)):
            # One value only: predict a smoothed prior instead of failing (logistic regression needs both).
            prior = (positives + 0.5) / (len(y) + 1.0)
            intercept[0] = np.log(prior / (1 - prior))
            return {"n_iter": 0, "converged": True}
        clf, converged = self._logreg(X, y, seed)
        coef[:] = clf.coef_[0]
        intercept[0] = clf.intercept_[0]
        return {"n_iter": int(np.max(clf.n_iter_)), "converged": converged}

    def _logreg(self, X: sp.csr_matrix, y: np.ndarray, seed: int):
        from sklearn.exceptions import ConvergenceWarning
        from sklearn.linear_model import LogisticRegression

        p = self._params
        clf = LogisticRegression(
            C=getattr(self, "_C", float(p["C"])),
            class_weight=p["class_weight"],
            max_iter=int(p["max_iter"]),
            tol=float(p["tol"]),
            random_state=seed,
        )
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", ConvergenceWarning)
            clf.fit(X, y)
        converged = not any(issubclass(w.category, ConvergenceWarning) for w in caught)
        return clf, converged

    def decision_function(self, X: Any) -> np.ndarray:
        """Logits (n, k) before softmax or sigmoid."""
        self._require_fitted()
        X = self._as_features(X)
        if getattr(self, "_coef_t", None) is None:
            # A C-ordered copy of coef.T, made once: scipy copies a transposed view on every product
            # (2.7 ms of a one-text prediction with 2**19 features).
            self._coef_t = np.ascontiguousarray(self.coef.T)
        return np.asarray(X @ self._coef_t) + self.intercept

    def predict_proba(self, X: Any) -> np.ndarray:
        logits = self.decision_function(X)
        return sigmoid(logits) if self.multi_label else softmax(logits)

    def save(self, directory: Path) -> list[str]:
        self._require_fitted()
        directory = Path(directory)
        # Only columns with a weight are stored: a few tens of thousands of the 2**19 hashed features.
        columns = np.flatnonzero(np.any(self.coef != 0, axis=0))
        atomic_write_npz(
            directory / WEIGHTS, columns=columns, coef=self.coef[:, columns], intercept=self.intercept
        )
        return self._write_manifest(directory, [WEIGHTS], featurizer_fingerprint=self.featurizer.fingerprint)

    @classmethod
    def load(cls, directory: Path) -> Self:
        backend, manifest = cls._read_manifest(directory)
        if manifest.get("featurizer_fingerprint") != backend.featurizer.fingerprint:
            raise ValueError(f"{directory}: featurizer settings do not match the saved fingerprint")
        arrays = read_npz(Path(directory) / WEIGHTS)
        k, d = len(backend.classes), backend.featurizer.n_features
        columns = arrays["columns"]
        if arrays["coef"].shape != (k, len(columns)) or arrays["intercept"].shape != (k,):
            raise ValueError(f"{directory}: weights do not match {k} classes")
        if len(columns) and (columns.min() < 0 or columns.max() >= d):
            raise ValueError(f"{directory}: weight columns outside the featurizer's {d} features")
        backend.coef = np.zeros((k, d), dtype=np.float64)
        backend.coef[:, columns] = arrays["coef"]
        backend.intercept = arrays["intercept"]
        backend._coef_t = None
        return backend

    def _as_features(self, X: Any) -> sp.csr_matrix:
        """Raw texts are featurized; a precomputed matrix is checked for the featurizer's width."""
        if sp.issparse(X):
            X = sp.csr_matrix(X)
        elif isinstance(X, str):
            raise TypeError("pass a list of texts, not one string")
        elif isinstance(X, np.ndarray) and X.ndim == 2:
            X = sp.csr_matrix(X)
        else:
            X = self.featurize(X)
        if X.shape[1] != self.featurizer.n_features:
            raise ValueError(
                f"features have {X.shape[1]} columns, this featurizer makes {self.featurizer.n_features}"
            )
        return X


def _log_loss(proba: np.ndarray, Y: np.ndarray, multi_label: bool) -> float:
    p = np.clip(proba, 1e-12, 1 - 1e-12)
    if multi_label:
        return float(-np.mean(Y * np.log(p) + (1 - Y) * np.log(1 - p)))
    return float(-np.mean(np.log(p[np.arange(len(Y)), Y])))
