from pathlib import Path

import numpy as np
import pytest
from django.conf import settings
from django.core.files.storage import default_storage
from sklearn.metrics import accuracy_score, confusion_matrix, f1_score

from annotate.models import PickKind
from tests.factories import make_project
from tests.training.projects import digits_project, reviews_project
from training.backends import get_backend
from training.datasets import NotEnoughLabels
from training.evaluation import fold_assignments
from training.models import ModelVersion
from training.random_curve import IMAGE_CURVE_FOLDS, IMAGE_CURVE_FRACTIONS
from training.versions import model_inputs, model_version_backend, model_version_train, out_of_fold_proba

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _one_torch_thread():
    import torch

    torch.set_num_threads(1)


def test_a_text_version_is_trained_evaluated_stored_and_made_active():
    project = reviews_project()
    version = model_version_train(project=project)
    assert version.is_active and version.number == 1 and version.backend == "text_logreg"
    # Cross-validated: every one of the 300 labels is predicted once, out of fold; the version's
    # model is then trained on all of them.
    assert version.metrics["n_train"] == version.metrics["n_validation"] == 300
    assert version.metrics["fit"]["n_samples"] == 300
    cv = version.metrics["cv"]
    assert cv["folds"] == 5 and sum(cv["n_per_fold"]) == 300 and len(cv["accuracy"]["per_fold"]) == 5
    assert 0.5 < version.metrics["accuracy"] <= 1.0
    assert "<svg" in version.confusion_svg and "<svg" in version.learning_curve_svg
    assert set(version.timings) == {
        "snapshot", "load", "cross-validate", "evaluate", "label issues", "fit", "store",
    }  # fmt: skip
    files = {p.name for p in (Path(settings.MEDIA_ROOT) / version.artifact_path).iterdir()}
    assert "model.json" in files and not any(name.endswith((".pkl", ".pickle")) for name in files)


def test_the_stored_metrics_match_scikit_learns_on_the_same_out_of_fold_predictions():
    project = reviews_project()
    version = model_version_train(project=project)
    snapshot = version.dataset
    backend = get_backend(version.backend)(**version.params)
    X = model_inputs(project=project, backend=backend, item_ids=snapshot.item_ids)
    truth = np.asarray([snapshot.classes.index(v["choices"][0]) for v in snapshot.values])
    # The same folds and fits again (seed 0, as the version was trained): logistic regression
    # is deterministic, so these are the predictions the stored metrics were computed from.
    fold_of = fold_assignments(truth, multi_label=False, seed=0)
    proba = out_of_fold_proba(
        make_backend=lambda: get_backend(version.backend)(**version.params), X=X, Y=truth,
        fold_of=fold_of, classes=snapshot.classes, multi_label=False,
    )  # fmt: skip
    predicted = np.argmax(proba, axis=1)
    assert version.metrics["accuracy"] == pytest.approx(accuracy_score(truth, predicted))
    assert version.metrics["macro_f1"] == pytest.approx(
        f1_score(truth, predicted, average="macro", labels=[0, 1])
    )
    assert version.metrics["confusion_matrix"] == confusion_matrix(truth, predicted, labels=[0, 1]).tolist()
    per_fold = [accuracy_score(truth[fold_of == f], predicted[fold_of == f]) for f in range(5)]
    cv = version.metrics["cv"]
    assert cv["accuracy"]["per_fold"] == pytest.approx(per_fold)
    assert cv["accuracy"]["std"] == pytest.approx(np.std(per_fold, ddof=1))


def test_an_image_version_trains_on_the_digits():
    project = digits_project()
    version = model_version_train(project=project, params={"device": "cpu"})
    assert version.backend == "image_cnn"
    assert version.metrics["accuracy"] > 0.6, version.metrics["accuracy"]
    assert len(version.metrics["confusion_matrix"]) == 10


def test_a_second_version_takes_over_and_the_learning_curve_shows_both():
    project = reviews_project(n=200)
    first = model_version_train(project=project)
    second = model_version_train(project=project, seed=1)
    first.refresh_from_db()
    assert (first.is_active, second.is_active, second.number) == (False, True, 2)
    assert ">v1<" in second.learning_curve_svg and ">v2<" in second.learning_curve_svg


def test_a_failed_fit_stores_nothing_and_leaves_the_active_version(monkeypatch):
    from training.backends.text import TextLogRegBackend

    project = reviews_project(n=120)
    active = model_version_train(project=project)

    def broken_fit(self, *args, **kwargs):
        raise RuntimeError("out of memory")

    monkeypatch.setattr(TextLogRegBackend, "fit", broken_fit)
    with pytest.raises(RuntimeError, match="out of memory"):
        model_version_train(project=project, seed=3)
    assert list(ModelVersion.objects.filter(project=project)) == [active]
    active.refresh_from_db()
    assert active.is_active
    _, stored = default_storage.listdir(f"models/project-{project.pk}")
    assert stored == [] and default_storage.listdir(f"models/project-{project.pk}")[0] == [
        active.artifact_path.rsplit("/", 1)[1]
    ]
    assert list((Path(settings.LABELLOOP_CACHE_DIR) / "models").glob(".staging-*")) == []


def test_a_version_that_fails_to_be_recorded_leaves_no_files_in_storage_or_cache(monkeypatch):
    project = reviews_project(n=120)
    active = model_version_train(project=project)
    import training.pictures

    def broken_curve(*args, **kwargs):
        raise RuntimeError("disk full")

    # Fails after the artifacts were uploaded, inside the transaction that records the version.
    monkeypatch.setattr(training.pictures, "learning_curve_svg", broken_curve)
    with pytest.raises(RuntimeError, match="disk full"):
        model_version_train(project=project, seed=3)
    assert list(ModelVersion.objects.filter(project=project)) == [active]
    folders, _ = default_storage.listdir(f"models/project-{project.pk}")
    # Local storage keeps an emptied folder; an object store has none. Files are what count.
    holding = [f for f in folders if default_storage.listdir(f"models/project-{project.pk}/{f}")[1]]
    assert holding == [active.artifact_path.rsplit("/", 1)[1]]
    cached = [p.name for p in (Path(settings.LABELLOOP_CACHE_DIR) / "models").iterdir()]
    assert cached == [active.artifact_path.replace("/", "--")]


def test_too_few_labels_is_the_not_enough_labels_message():
    project = make_project(items=3, training_min_labels=1)
    with pytest.raises(NotEnoughLabels, match="not enough labels yet"):
        model_version_train(project=project)


def test_a_run_without_diagnostics_writes_no_label_issues_and_folds_0_fits_the_same_model_once():
    project = reviews_project(n=120)
    full = model_version_train(project=project, activate=False)
    assert len(set(project.items.values_list("review_priority", flat=True))) > 1  # written by the run
    project.items.update(review_priority=-1.0)
    quiet = model_version_train(project=project, activate=False, diagnostics=False)
    assert quiet.metrics["label_issues"]["status"] == "skipped"
    assert quiet.metrics["random_curve"]["status"] == "skipped"
    assert quiet.metrics["accuracy"] == full.metrics["accuracy"]  # the k-fold metrics still run
    once = model_version_train(project=project, activate=False, diagnostics=False, folds=0)
    # Neither run wrote the items' review columns.
    assert set(project.items.values_list("review_priority", flat=True)) == {-1.0}
    assert once.metrics["cv"]["folds"] == 0 and "accuracy" not in once.metrics
    assert "cross-validate" not in once.timings
    # The same final fit on all labels: the models predict the same.
    X = model_inputs(project=project, backend=get_backend("text_logreg")(), item_ids=full.dataset.item_ids)
    np.testing.assert_array_equal(
        model_version_backend(once).predict_proba(X), model_version_backend(full).predict_proba(X)
    )
    with pytest.raises(ValueError, match="folds=0 needs diagnostics=False"):
        model_version_train(project=project, folds=0)


def test_a_digits_version_with_few_labels_also_learns_from_the_unlabeled_items(monkeypatch):
    from training.backends.image import ImageCNNBackend

    project = digits_project(n=200, labeled=60)
    # The 60 labeled items as the random slice: the run also measures the random curve.
    project.items.filter(annotation_count__gt=0).update(pick_kind=PickKind.RANDOM)
    fits, real_fit = [], ImageCNNBackend.fit

    def recording_fit(self, X, Y, **kwargs):
        fits.append((len(X), kwargs.get("unlabeled")))
        return real_fit(self, X, Y, **kwargs)

    monkeypatch.setattr(ImageCNNBackend, "fit", recording_fit)
    version = model_version_train(project=project, params={"device": "cpu", "epochs": 3})
    fit, labeled = version.metrics["fit"], version.dataset.item_ids
    # 140 items carry no label; label spreading reaches them and each class's most confident half
    # is kept.
    assert fit["labels"] == len(labeled) == 60 and 50 <= fit["pseudo_labels"] <= 90, fit
    assert fit["n_samples"] == 60 * fit["label_repeats"] + fit["pseudo_labels"] and fit["label_repeats"] == 2
    # Every fit, the k-fold ones too, gets the images of the items outside the training set, only theirs.
    outside = sorted(set(project.items.values_list("id", flat=True)) - set(labeled))
    assert len(outside) == 140
    expected = model_inputs(project=project, backend=ImageCNNBackend(), item_ids=outside)
    folds, curve = version.metrics["cv"]["folds"], version.metrics["random_curve"]
    curve_fits = IMAGE_CURVE_FOLDS * len(IMAGE_CURVE_FRACTIONS)
    assert curve["slice_labels"] == 60 and len(curve["points"]) == len(IMAGE_CURVE_FRACTIONS), curve
    assert len(fits) == folds + curve_fits + 1 and fits[-1][0] == 60 and all(n < 60 for n, _ in fits[:-1])
    # The random curve's fits learn from the same unlabeled images: the curve is the same learner's.
    for _, unlabeled in fits:
        np.testing.assert_array_equal(unlabeled, expected)


def test_a_digits_version_with_enough_labels_trains_on_the_labels_alone():
    # 200 labels of 10 classes is 20 per class, the bound: the 60 unlabeled items stay out of the fit.
    project = digits_project(n=260, labeled=200)
    version = model_version_train(project=project, params={"device": "cpu", "epochs": 3})
    assert version.metrics["fit"]["pseudo_labels"] == 0 and version.metrics["fit"]["labels"] == 200


def test_no_pseudo_labels_while_a_label_of_the_project_has_too_few_labels_to_train():
    from annotate.projects import label_create

    project = digits_project(n=200, labeled=60)
    label_create(project=project, name="smudge")  # no item carries it: the version cannot know it
    version = model_version_train(project=project, params={"device": "cpu", "epochs": 3})
    assert "smudge" not in version.dataset.classes
    assert version.metrics["fit"]["pseudo_labels"] == 0 and version.metrics["fit"]["n_samples"] == 60
