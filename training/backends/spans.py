"""Text spans (named entities): a linear-chain CRF (crfsuite) on token features, BIO tags.

Documents in, spans out; no Django and no app imports (tests/training/test_backends.py). A
document is a (text, token offsets) pair: the caller tokenizes, with the stated tokenizer
(annotate/tokens.py `tokens`, code-point offsets; training/versions.py `span_documents`), so the
span editor, the CoNLL export and this model share one tokenizer and their offsets agree. The
manifest records the tokenizer the caller names (`tokenizer`, "annotate.tokens").

- Tags: IOB2 over the tokens, `["O", "B-<label>", "I-<label>", …]` in the classes' order. A span
  tags every token it overlaps (a span cut inside a token widens to it); a span that overlaps an
  earlier one cannot be written in BIO and is left out of training (counted in fit_info).
- Decoding: a predicted `I-X` that does not continue an `X` entity starts one (conlleval's
  repair), so every predicted tag sequence is valid IOB2; evaluation and proposals read the same
  repaired tags.
- Features per token: its lower form, shape ("Xxxx", "dd"), prefixes and suffixes of 1–3
  characters, capitalisation, digit and punctuation flags, and the same (lower form, shape,
  capitalisation) of the tokens up to `window` either side, with begin/end-of-text markers.
- Saved as crfsuite's own model file (`model.crfsuite`, what `pycrfsuite.Trainer` writes) and
  model.json; loaded with `pycrfsuite.Tagger`. Never pickled.

The interface differs from the classification backends' where sequences need it: `fit(documents,
spans)`, `predict(documents)` (spans per text), and `predict_marginals(documents)` (spans, tags
and the per-token marginals, (n_tokens, n_tags) rows that sum to 1), which `predict_proba`
returns as a list of arrays, one per text.
"""

import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Self

import numpy as np

from training.backends.artifacts import atomic_write_bytes
from training.backends.base import Backend

MODEL_FILE = "model.crfsuite"
OUTSIDE = "O"
TOKENIZER = "annotate.tokens"
Offsets = Sequence[tuple[int, int]]
Document = tuple[str, Offsets]


def tag_names(classes: Sequence[str]) -> list[str]:
    """The IOB2 tags of `classes`, in their fixed order: O, then B- and I- of each label."""
    return [OUTSIDE, *[f"{prefix}-{name}" for name in classes for prefix in ("B", "I")]]


def spans_exact_key(spans: Sequence[dict]) -> tuple:
    """What exact match of a text's spans compares: their (start, end, label)s, sorted."""
    return tuple(sorted((s.get("start"), s.get("end"), s.get("label")) for s in spans))


def spans_to_tags(offsets: Sequence[tuple[int, int]], spans: Sequence[dict]) -> tuple[list[str], int]:
    """IOB2 tags of the tokens at `offsets` for `spans`; also the number of spans left out
    (overlapping an earlier one, or covering no token)."""
    tags = [OUTSIDE] * len(offsets)
    dropped = 0
    for span in sorted(spans, key=lambda s: (s["start"], s["end"])):
        covered = [i for i, (s, e) in enumerate(offsets) if s < span["end"] and e > span["start"]]
        if not covered or any(tags[i] != OUTSIDE for i in covered):
            dropped += 1
            continue
        tags[covered[0]] = f"B-{span['label']}"
        for i in covered[1:]:
            tags[i] = f"I-{span['label']}"
    return tags, dropped


def repair_tags(tags: Sequence[str]) -> list[str]:
    """Valid IOB2: an `I-X` that does not follow `B-X` or `I-X` becomes `B-X`."""
    out: list[str] = []
    for tag in tags:
        if tag.startswith("I-") and (not out or out[-1] == OUTSIDE or out[-1][2:] != tag[2:]):
            tag = "B-" + tag[2:]
        out.append(tag)
    return out


def entities(tags: Sequence[str]) -> list[tuple[str, int, int]]:
    """(label, first token, last token + 1) of each entity in (repaired) IOB2 `tags`."""
    found: list[list] = []
    for i, tag in enumerate(repair_tags(tags)):
        if tag.startswith("B-"):
            found.append([tag[2:], i, i + 1])
        elif tag.startswith("I-"):
            found[-1][2] = i + 1
    return [(label, first, end) for label, first, end in found]


def tags_to_spans(offsets: Sequence[tuple[int, int]], tags: Sequence[str]) -> list[dict]:
    """The spans of (repaired) IOB2 `tags` over the tokens at `offsets`, in text order."""
    return [
        {"start": offsets[first][0], "end": offsets[end - 1][1], "label": label}
        for label, first, end in entities(tags)
    ]


def _shape(word: str) -> str:
    """ "Xxxx" → "Xx", "1999" → "d", "R2" → "Xd": character classes with repeats collapsed."""
    out = []
    for ch in word:
        c = "X" if ch.isupper() else "x" if ch.islower() else "d" if ch.isdigit() else ch
        if not out or out[-1] != c:
            out.append(c)
    return "".join(out)


def token_features(text: str, offsets: Sequence[tuple[int, int]], *, window: int, affix: int) -> list[dict]:
    """One feature dict per token (crfsuite's item format: string values are one-hot features)."""
    words = [text[s:e] for s, e in offsets]
    own = [
        {"lower": w.lower(), "shape": _shape(w), "title": w[:1].isupper(), "upper": w.isupper()}
        for w in words
    ]
    items = []
    for i, word in enumerate(words):
        feats: dict[str, Any] = {"bias": 1.0, **own[i]}
        feats["digit"] = word.isdigit()
        feats["alpha"] = word.isalpha()
        feats["len"] = str(min(len(word), 8))
        for n in range(1, affix + 1):
            feats[f"pre{n}"] = word[:n].lower()
            feats[f"suf{n}"] = word[-n:].lower()
        for d in range(1, window + 1):
            for side, j in ((f"-{d}", i - d), (f"+{d}", i + d)):
                if 0 <= j < len(words):
                    for key, value in own[j].items():
                        feats[f"{side}:{key}"] = value
                elif j == -1:
                    feats["BOS"] = True
                elif j == len(words):
                    feats["EOS"] = True
        items.append(feats)
    return items


@dataclass(frozen=True)
class SpanPrediction:
    """One text's prediction: its spans, each span's confidence (the mean marginal of its tokens'
    tags), its tokens' offsets and repaired tags, and the token marginals (n_tokens, n_tags) in
    `SpanCRFBackend.tags` order."""

    spans: list[dict]
    confidence: list[float]
    offsets: list[tuple[int, int]]
    tags: list[str]
    marginals: np.ndarray


class SpanCRFBackend(Backend):
    """A linear-chain CRF (L-BFGS with L1 `c1` and L2 `c2`) over IOB2 tags of the stated tokens."""

    name = "span_crf"
    default_params = {
        "c1": 0.05,
        "c2": 0.05,
        "max_iterations": 100,
        "all_possible_transitions": True,
        "window": 2,
        "affix": 3,
    }

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        self._model: bytes | None = None
        self._tagger = None

    @property
    def tags(self) -> list[str]:
        return tag_names(self.classes)

    @property
    def is_fitted(self) -> bool:
        return self._tagger is not None

    def featurize(self, text: str, offsets: Offsets) -> list[dict]:
        """The feature dicts of the text's tokens at `offsets`."""
        window, affix = int(self._params["window"]), int(self._params["affix"])
        return token_features(text, offsets, window=window, affix=affix)

    def fit(self, X: Any, Y: Any, *, classes: list[str], multi_label: bool = False, seed: int = 0) -> dict:
        """Learn from documents `X` ((text, token offsets) pairs) and their spans `Y` (a list of
        spans, or a {"spans": […]} value, per text). `seed` is accepted for the interface:
        crfsuite's L-BFGS is deterministic."""
        import pycrfsuite

        started = time.perf_counter()
        self._model = self._tagger = None  # a fit that fails leaves no half-fitted model behind
        documents, values = _documents(X), list(Y)
        if multi_label:
            raise ValueError("span labels are not multi-label")
        if len(documents) != len(values) or not documents:
            raise ValueError("fit needs one list of spans per text, and at least one text")
        classes = [str(c) for c in classes]
        if not classes or len(set(classes)) != len(classes):
            raise ValueError("classes must be unique and not empty")
        known = set(classes)
        trainer = pycrfsuite.Trainer(verbose=False)
        dropped = n_tokens = n_spans = 0
        for (text, offsets), value in zip(documents, values, strict=True):
            spans = value["spans"] if isinstance(value, dict) else value
            unknown = {s["label"] for s in spans} - known
            if unknown:
                raise ValueError(f"span label(s) {sorted(unknown)} are not among the classes")
            features = self.featurize(text, offsets)
            tags, lost = spans_to_tags(offsets, spans)
            dropped, n_tokens, n_spans = dropped + lost, n_tokens + len(offsets), n_spans + len(spans)
            if offsets:
                trainer.append(features, tags)
        p = self._params
        trainer.set_params(
            {
                "c1": float(p["c1"]),
                "c2": float(p["c2"]),
                "max_iterations": int(p["max_iterations"]),
                "feature.possible_transitions": bool(p["all_possible_transitions"]),
            }
        )
        with tempfile.TemporaryDirectory(prefix="span-crf-") as folder:
            path = Path(folder) / MODEL_FILE
            trainer.train(str(path))
            model = path.read_bytes()
        self.classes, self.multi_label = classes, False
        self._open(model)
        last = trainer.logparser.last_iteration or {}
        self.fit_info = {
            "n_samples": len(documents),
            "n_tokens": n_tokens,
            "n_spans": n_spans,
            "spans_left_out": dropped,
            "n_iter": int(last.get("num", 0)),
            "train_loss": float(last.get("loss", 0.0)),
            "active_features": int(last.get("active_features", 0)),
            "seconds": round(time.perf_counter() - started, 3),
        }
        return dict(self.fit_info)

    def _open(self, model: bytes) -> None:
        import pycrfsuite

        tagger = pycrfsuite.Tagger()
        tagger.open_inmemory(model)  # the tagger reads the bytes in place: keep them alive with it
        self._model, self._tagger = model, tagger

    def predict(self, X: Sequence[Document]) -> list[list[dict]]:
        """The predicted spans of each text ({"start", "end", "label"}, text order)."""
        self._require_fitted()
        out = []
        for text, offsets in _documents(X):
            features = self.featurize(text, offsets)
            out.append(tags_to_spans(offsets, self._tagger.tag(features)) if offsets else [])
        return out

    def predict_marginals(self, X: Sequence[Document]) -> list[SpanPrediction]:
        """Each text's spans with their confidence, repaired tags and token marginals."""
        self._require_fitted()
        tags = self.tags
        seen = set(self._tagger.labels())
        columns = [(j, tag) for j, tag in enumerate(tags) if tag in seen]
        out = []
        for text, offsets in _documents(X):
            features = self.featurize(text, offsets)
            marginals = np.zeros((len(offsets), len(tags)), dtype=np.float64)
            if not offsets:
                out.append(SpanPrediction(spans=[], confidence=[], offsets=[], tags=[], marginals=marginals))
                continue
            self._tagger.set(features)
            best = repair_tags(self._tagger.tag())
            for j, tag in columns:
                marginals[:, j] = [self._tagger.marginal(tag, t) for t in range(len(offsets))]
            column = {tag: j for j, tag in enumerate(tags)}
            found = entities(best)
            confidence = [
                float(np.mean([marginals[t, column[best[t]]] for t in range(first, end)]))
                for _, first, end in found
            ]
            spans = [
                {"start": offsets[first][0], "end": offsets[end - 1][1], "label": label}
                for label, first, end in found
            ]
            out.append(
                SpanPrediction(
                    spans=spans, confidence=confidence, offsets=offsets, tags=best, marginals=marginals
                )
            )
        return out

    def predict_proba(self, X: Sequence[Document]) -> list[np.ndarray]:
        """Per text, the token marginals (n_tokens, len(self.tags)); rows sum to 1."""
        return [p.marginals for p in self.predict_marginals(X)]

    def save(self, directory: Path) -> list[str]:
        self._require_fitted()
        atomic_write_bytes(Path(directory) / MODEL_FILE, self._model)
        return self._write_manifest(directory, [MODEL_FILE], tags=self.tags, tokenizer=TOKENIZER)

    @classmethod
    def load(cls, directory: Path) -> Self:
        import pycrfsuite

        backend, manifest = cls._read_manifest(directory)
        path = Path(directory) / MODEL_FILE
        tagger = pycrfsuite.Tagger()
        tagger.open(str(path))
        unknown = set(tagger.labels()) - set(backend.tags)
        if manifest.get("tags") != backend.tags or unknown:
            raise ValueError(f"{directory}: the model's tags do not match its classes")
        backend._model, backend._tagger = path.read_bytes(), tagger
        return backend


def _documents(X: Sequence[Document]) -> list[tuple[str, list[tuple[int, int]]]]:
    """`X` as (text, offsets) pairs, refusing bare texts (the caller tokenizes)."""
    documents = []
    for document in [X] if isinstance(X, str) else X:
        if isinstance(document, str) or len(document) != 2 or not isinstance(document[0], str):
            raise TypeError(f"pass (text, token offsets) pairs: the offsets of {TOKENIZER}.tokens(text)")
        text, offsets = document
        documents.append((text, [(int(s), int(e)) for s, e in offsets]))
    return documents
