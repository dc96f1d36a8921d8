"""The backends' contract: shapes, save/load round trips without pickle, atomic files, light imports."""

import ast
import hashlib
import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from training.backends import BACKENDS, get_backend, load_backend
from training.backends.artifacts import atomic_open, atomic_write_bytes, atomic_write_npz, read_npz
from training.backends.image import ImageCNNBackend, images_to_array
from training.backends.text import TextFeatures, TextFeaturizer, TextLogRegBackend

BACKENDS_DIR = Path(__file__).resolve().parents[2] / "training" / "backends"
TEXTS = [
    "A three-hour cinema master class.",
    "Dull, plodding and far too long.",
    "A joyous, funny and warm film.",
    "The plot makes no sense at all.",
    "",
    "Ünïcödé títlé — 映画 review!",
]
CLASSES = ["good", "bad", "meh"]


@pytest.fixture(autouse=True, scope="module")
def _one_torch_thread():
    """Train as the worker does: one torch thread (it sets this once per process)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _text_data(n: int = 90, seed: int = 0) -> tuple[list[str], np.ndarray]:
    """Three classes told apart by their words, with shared filler words."""
    rng = np.random.default_rng(seed)
    words = [["superb", "moving", "brilliant"], ["awful", "boring", "mess"], ["fine", "average", "okay"]]
    filler = ["the", "film", "plot", "actor", "scene", "camera"]
    y = rng.integers(0, 3, size=n)
    texts = [" ".join([*rng.choice(words[c], 2), *rng.choice(filler, 4)]) for c in y]
    return texts, y


def _image_data(n: int = 60, size: int = 16, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Single-label 16×16 patterns: a horizontal bar, a vertical bar or a square, with noise."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, size=n)
    X = rng.normal(0.5, 0.05, size=(n, 1, size, size)).astype(np.float32)
    for i, c in enumerate(y):
        r, q = rng.integers(3, size - 5, size=2)
        if c == 0:
            X[i, 0, r, 2:-2] = 1.0
        elif c == 1:
            X[i, 0, 2:-2, q] = 1.0
        else:
            X[i, 0, r : r + 3, q : q + 3] = 0.0
    return np.clip(X, 0, 1), y


def _fitted_text(multi_label: bool = False) -> tuple[TextLogRegBackend, list[str], np.ndarray]:
    texts, y = _text_data()
    backend = TextLogRegBackend()
    Y = np.eye(3, dtype=np.int8)[y] if multi_label else y
    backend.fit(texts, Y, classes=CLASSES, multi_label=multi_label, seed=0)
    return backend, texts, Y


def _fitted_image(multi_label: bool = False) -> tuple[ImageCNNBackend, np.ndarray, np.ndarray]:
    X, y = _image_data()
    backend = ImageCNNBackend(device="cpu", epochs=2, channels=[4, 8, 8])
    Y = np.eye(3, dtype=np.int8)[y] if multi_label else y
    backend.fit(X, Y, classes=CLASSES, multi_label=multi_label, seed=0)
    return backend, X, Y


# Registry and imports


def test_registry_returns_each_backend_class_by_its_name():
    assert get_backend("text_logreg") is TextLogRegBackend
    assert get_backend("image_cnn") is ImageCNNBackend
    assert {cls.name for cls in map(get_backend, BACKENDS)} == set(BACKENDS)


def test_registry_rejects_an_unknown_name():
    with pytest.raises(KeyError, match="text_logreg"):
        get_backend("bert")


def test_importing_the_backends_loads_neither_torch_nor_django():
    code = (
        "import sys, training.backends, training.backends.image, training.backends.text,"
        " training.backends.artifacts; "
        "print(sorted(m for m in ('torch', 'django', 'celery', 'sklearn') if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=BACKENDS_DIR.parents[1]
    )
    assert out.stdout.strip() == "[]"


def test_backend_sources_never_import_django_celery_or_the_apps():
    forbidden = ("django", "celery", "rest_framework", "annotate", "config")
    # The stated tokenizer is the one module of the apps they may import (inputs.py, for spans):
    # itself Django-free, it ships in a model's download beside them (training/download.py).
    allowed = {"annotate.tokens"}
    tokens = (BACKENDS_DIR.parents[1] / "annotate" / "tokens.py").read_text()
    assert not re.search(r"^\s*(import|from) (django|rest_framework|celery|annotate|training)", tokens, re.M)
    for path in BACKENDS_DIR.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            else:
                continue
            for name in names:
                assert name in allowed or name.split(".")[0] not in forbidden, f"{path.name} imports {name}"
            if any(name.split(".")[0] == "torch" for name in names):
                assert node.col_offset > 0, f"{path.name} imports torch at module level"


# Atomic files


def test_atomic_writes_leave_only_the_final_files(tmp_path):
    atomic_write_bytes(tmp_path / "a.bin", b"one")
    atomic_write_bytes(tmp_path / "a.bin", b"two")
    atomic_write_npz(tmp_path / "b.npz", x=np.arange(3))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.bin", "b.npz"]
    assert (tmp_path / "a.bin").read_bytes() == b"two"


def test_a_failed_write_keeps_the_old_file_and_no_temp_file(tmp_path):
    target = tmp_path / "weights.npz"
    atomic_write_bytes(target, b"old")
    with pytest.raises(RuntimeError), atomic_open(target) as fh:
        fh.write(b"half of the new")
        raise RuntimeError("disk full")
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["weights.npz"]


def test_npz_writer_refuses_arrays_that_need_pickle(tmp_path):
    with pytest.raises(TypeError, match="pickle"):
        atomic_write_npz(tmp_path / "x.npz", ids=np.array([1, "a", None], dtype=object))
    assert list(tmp_path.iterdir()) == []


# Text features


def test_text_featurize_is_deterministic_within_and_across_processes():
    featurizer = TextFeaturizer()
    first, second = featurizer.featurize(TEXTS), featurizer.featurize(list(TEXTS))
    assert (first != second).nnz == 0
    code = (
        "import hashlib, json, sys; from training.backends.text import TextFeaturizer; "
        "m = TextFeaturizer().featurize(json.loads(sys.stdin.read())); "
        "print(hashlib.sha256(m.data.tobytes() + m.indices.tobytes() + m.indptr.tobytes()).hexdigest())"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        input=json.dumps(TEXTS),
        capture_output=True,
        text=True,
        check=True,
        env={"PYTHONHASHSEED": "12345", "PATH": ""},
        cwd=BACKENDS_DIR.parents[1],
    )
    here = hashlib.sha256(first.data.tobytes() + first.indices.tobytes() + first.indptr.tobytes()).hexdigest()
    assert out.stdout.strip() == here


def test_text_features_have_unit_rows_and_the_featurizer_width():
    featurizer = TextFeaturizer()
    matrix = featurizer.featurize(TEXTS)
    assert matrix.shape == (len(TEXTS), featurizer.n_features) and matrix.dtype == np.float32
    norms = np.sqrt(np.asarray(matrix.multiply(matrix).sum(axis=1))).ravel()
    assert np.allclose(norms, [1, 1, 1, 1, 0, 1], atol=1e-6)  # the empty text has no features


def test_text_features_round_trip_through_npz_without_pickle(tmp_path):
    features = TextFeatures.build([11, 12, 13, 14, 15, 16], TEXTS)
    path = features.save_npz(tmp_path / "features.npz")
    loaded = TextFeatures.load_npz(path, featurizer=TextFeaturizer())
    assert np.array_equal(loaded.item_ids, [11, 12, 13, 14, 15, 16])
    assert (loaded.matrix != features.matrix).nnz == 0
    assert (loaded.rows([13, 11]) != features.matrix[[2, 0]]).nnz == 0
    with pytest.raises(KeyError):
        loaded.rows([99])
    with pytest.raises(ValueError, match="featurizer"):
        TextFeatures.load_npz(path, featurizer=TextFeaturizer(char_ngrams=(2, 4)))


def test_cached_features_give_the_same_model_as_raw_texts():
    texts, y = _text_data()
    from_texts, from_matrix = TextLogRegBackend(), TextLogRegBackend()
    from_texts.fit(texts, y, classes=CLASSES, multi_label=False)
    matrix = TextFeatures.build(range(len(texts)), texts).matrix
    from_matrix.fit(matrix, y, classes=CLASSES, multi_label=False)
    assert np.allclose(from_texts.predict_proba(texts[:10]), from_matrix.predict_proba(matrix[:10]))


# Text backend


@pytest.mark.parametrize("multi_label", [False, True])
def test_text_backend_probabilities_have_one_column_per_class(multi_label):
    backend, texts, _ = _fitted_text(multi_label)
    proba = backend.predict_proba(TEXTS)
    assert proba.shape == (len(TEXTS), 3) and proba.dtype == np.float64
    assert ((proba >= 0) & (proba <= 1)).all()
    if not multi_label:
        assert np.allclose(proba.sum(axis=1), 1)


@pytest.mark.parametrize("multi_label", [False, True])
def test_text_backend_saves_loads_and_predicts_the_same_without_pickle(tmp_path, multi_label):
    backend, texts, _ = _fitted_text(multi_label)
    files = backend.save(tmp_path / "model")
    assert sorted(files) == ["model.json", "weights.npz"]
    assert sorted(p.name for p in (tmp_path / "model").iterdir()) == sorted(files)
    read_npz(tmp_path / "model" / "weights.npz")  # allow_pickle=False
    loaded = load_backend(tmp_path / "model")
    assert isinstance(loaded, TextLogRegBackend)
    assert loaded.classes == CLASSES and loaded.multi_label == multi_label and loaded.params == backend.params
    assert np.allclose(loaded.predict_proba(texts), backend.predict_proba(texts))


def test_text_backend_gives_a_class_no_sample_carries_no_probability():
    texts, y = _text_data()
    backend = TextLogRegBackend()
    backend.fit(texts, np.where(y == 2, 0, y), classes=CLASSES, multi_label=False)
    proba = backend.predict_proba(texts)
    assert np.allclose(proba.sum(axis=1), 1) and proba[:, 2].max() < 1e-12


def test_text_backend_multi_label_tolerates_a_label_nobody_used():
    texts, y = _text_data()
    Y = np.eye(3, dtype=np.int8)[y]
    Y[:, 2] = 0
    backend = TextLogRegBackend()
    backend.fit(texts, Y, classes=CLASSES, multi_label=True)
    assert backend.predict_proba(texts)[:, 2].max() < 0.05


def test_backends_reject_targets_that_do_not_match_the_classes():
    texts, y = _text_data()
    with pytest.raises(ValueError, match="class indices"):
        TextLogRegBackend().fit(texts, y + 1, classes=CLASSES, multi_label=False)
    with pytest.raises(ValueError, match="shape"):
        TextLogRegBackend().fit(texts, np.eye(2)[y % 2], classes=CLASSES, multi_label=True)
    with pytest.raises(ValueError, match="unknown parameter"):
        TextLogRegBackend(learning_rate=1)


def test_a_failed_refit_leaves_no_half_fitted_model():
    backend, texts, y = _fitted_text()
    with pytest.raises(ValueError):
        backend.fit(texts, y + 5, classes=CLASSES, multi_label=False)
    with pytest.raises(RuntimeError, match="fit or load"):
        backend.predict_proba(texts)


# Image backend


def test_images_to_array_makes_grayscale_squares_in_unit_range():
    white_on_alpha = Image.new("RGBA", (40, 20), (0, 0, 0, 0))
    red = Image.new("RGB", (64, 64), (255, 0, 0))
    array = images_to_array([white_on_alpha, red], size=32)
    assert array.shape == (2, 1, 32, 32) and array.dtype == np.float32
    assert np.allclose(array[0], 1.0)  # transparent reads as the white page behind it
    assert np.allclose(array[1], 76 / 255, atol=1 / 255)  # ITU-R 601 luma of pure red
    assert images_to_array([red], size=8, rgb=True)[0, :, 0, 0].tolist() == [1.0, 0.0, 0.0]


@pytest.mark.parametrize("multi_label", [False, True])
def test_image_backend_trains_and_predicts_on_cpu(multi_label):
    backend, X, _ = _fitted_image(multi_label)
    proba = backend.predict_proba(X[:7])
    assert backend.fit_info["device"] == "cpu" and backend.fit_info["epochs"] == 2
    assert proba.shape == (7, 3) and proba.dtype == np.float64
    assert ((proba >= 0) & (proba <= 1)).all()
    if not multi_label:
        assert np.allclose(proba.sum(axis=1), 1)


def test_image_backend_predicts_the_same_in_small_chunks():
    backend, X, _ = _fitted_image()
    whole = backend.predict_proba(X)
    backend._params["predict_batch_size"] = 7
    assert np.allclose(backend.predict_proba(X), whole, atol=1e-6)


def test_image_backend_with_the_same_seed_learns_the_same_model():
    first, X, _ = _fitted_image()
    second, _, _ = _fitted_image()
    assert np.allclose(first.predict_proba(X), second.predict_proba(X))


@pytest.mark.parametrize("multi_label", [False, True])
def test_image_backend_saves_a_state_dict_loads_and_predicts_the_same(tmp_path, multi_label):
    import torch

    backend, X, _ = _fitted_image(multi_label)
    files = backend.save(tmp_path / "model")
    assert sorted(files) == ["model.json", "weights.pt"]
    assert sorted(p.name for p in (tmp_path / "model").iterdir()) == sorted(files)
    state = torch.load(tmp_path / "model" / "weights.pt", weights_only=True)
    assert all(isinstance(v, torch.Tensor) for v in state.values())
    manifest = json.loads((tmp_path / "model" / "model.json").read_text())
    assert manifest["backend"] == "image_cnn" and manifest["input_shape"] == [1, 16, 16]
    loaded = load_backend(tmp_path / "model")
    assert isinstance(loaded, ImageCNNBackend) and loaded.multi_label == multi_label
    assert np.allclose(loaded.predict_proba(X), backend.predict_proba(X), atol=1e-6)


def test_image_backend_refuses_images_of_another_size():
    backend, _, _ = _fitted_image()
    with pytest.raises(ValueError, match="trained on"):
        backend.predict_proba(np.zeros((2, 1, 32, 32), dtype=np.float32))


def test_a_directory_without_its_manifest_does_not_load(tmp_path):
    backend, _, _ = _fitted_text()
    backend.save(tmp_path)
    (tmp_path / "model.json").unlink()
    with pytest.raises(FileNotFoundError):
        load_backend(tmp_path)


def test_no_saved_model_contains_a_pickle_file(tmp_path):
    _fitted_text()[0].save(tmp_path / "text")
    _fitted_image()[0].save(tmp_path / "image")
    suffixes = {p.suffix for p in tmp_path.rglob("*") if p.is_file()}
    assert suffixes == {".json", ".npz", ".pt"}


def test_image_backend_trains_on_pseudo_labels_only_below_its_bound_and_single_label():
    X, y = _image_data(n=90)
    labeled, unlabeled = X[:12], X[12:]
    backend = ImageCNNBackend(device="cpu", epochs=2, channels=[4, 8, 8])
    info = backend.fit(labeled, y[:12], classes=CLASSES, multi_label=False, seed=0, unlabeled=unlabeled)
    assert info["labels"] == 12 and info["pseudo_labels"] > 0
    assert info["n_samples"] == 12 * info["label_repeats"] + info["pseudo_labels"]
    # 12 labels of 3 classes is under 20 per class; 60 is not, and 0 turns it off.
    assert backend.learns_from_unlabeled(n_labels=59, n_classes=3, multi_label=False)
    assert not backend.learns_from_unlabeled(n_labels=60, n_classes=3, multi_label=False)
    assert not backend.learns_from_unlabeled(n_labels=12, n_classes=3, multi_label=True)
    off = ImageCNNBackend(device="cpu", epochs=2, channels=[4, 8, 8], pseudo_labels_below=0)
    info = off.fit(labeled, y[:12], classes=CLASSES, multi_label=False, seed=0, unlabeled=unlabeled)
    assert (info["pseudo_labels"], info["n_samples"]) == (0, 12)
    with pytest.raises(ValueError, match="unlabeled images have shape"):
        backend.fit(labeled, y[:12], classes=CLASSES, multi_label=False, unlabeled=unlabeled[:, :, :8, :8])


def test_text_backends_do_not_ask_for_unlabeled_items():
    assert not TextLogRegBackend().learns_from_unlabeled(n_labels=5, n_classes=3, multi_label=False)
