import io
from pathlib import Path

import numpy as np
import pytest
from django.conf import settings
from sklearn.metrics import accuracy_score, confusion_matrix, f1_score

from annotate import importers
from annotate.demo import digit_png, digits_arrays, rotten_tomatoes_reviews
from annotate.queue import annotation_submit, assignment_next
from tests.factories import UserFactory, make_project
from training.datasets import NotEnoughLabels
from training.models import ModelVersion
from training.services import model_inputs, model_version_backend, model_version_train

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _one_torch_thread():
    import torch

    torch.set_num_threads(1)


def _label_everything(project, user, truth_of):
    while (lease := assignment_next(project=project, annotator=user)) is not None:
        annotation_submit(
            project=project, item_id=lease.item.pk, annotator=user, value={"choices": [truth_of(lease.item)]}
        )


def _reviews_project(n=300):
    user = UserFactory()
    project = make_project(labels=["fresh", "rotten"], members=[(user, "annotator")])
    reviews = rotten_tomatoes_reviews()[:n]
    rows = "id,text\n" + "".join(
        f'r{i},"{r.text.replace(chr(34), chr(39))}"\n' for i, r in enumerate(reviews)
    )
    importers.import_csv(
        project=project, file=io.BytesIO(rows.encode()), filename="rt.csv", text_column="text", id_column="id"
    )
    truth = {f"r{i}": r.category for i, r in enumerate(reviews)}
    _label_everything(project, user, lambda item: truth[item.external_id])
    return project


def _digits_project(n=250):
    user = UserFactory()
    project = make_project(
        task_type="image_classification", labels=[str(d) for d in range(10)], members=[(user, "annotator")]
    )
    pixels, targets = digits_arrays()
    files = [(f"d{i}.png", io.BytesIO(digit_png(pixels[i]))) for i in range(n)]
    importers.import_images(project=project, files=files)
    _label_everything(project, user, lambda item: str(targets[int(item.external_id[1:-4])]))
    return project


def test_a_text_version_is_trained_evaluated_stored_and_made_active():
    project = _reviews_project()
    version = model_version_train(project=project)
    assert version.is_active and version.number == 1 and version.backend == "text_logreg"
    assert version.metrics["n_train"] + version.metrics["n_validation"] == 300
    assert 0.5 < version.metrics["accuracy"] <= 1.0
    assert "<svg" in version.confusion_svg and "<svg" in version.learning_curve_svg
    assert set(version.timings) == {"snapshot", "load", "fit", "evaluate", "store"}
    files = {p.name for p in (Path(settings.MEDIA_ROOT) / version.artifact_path).iterdir()}
    assert "model.json" in files and not any(name.endswith((".pkl", ".pickle")) for name in files)


def test_the_stored_metrics_match_scikit_learns_on_the_same_predictions():
    project = _reviews_project()
    version = model_version_train(project=project)
    backend = model_version_backend(version)
    snapshot = version.dataset
    value_of = dict(zip(snapshot.item_ids, snapshot.values, strict=True))
    val_ids = list(snapshot.validation_ids)
    X = model_inputs(project=project, backend=backend, item_ids=val_ids)
    predicted = np.argmax(backend.predict_proba(X), axis=1)
    truth = np.asarray([snapshot.classes.index(value_of[i]["choices"][0]) for i in val_ids])
    assert version.metrics["accuracy"] == pytest.approx(accuracy_score(truth, predicted))
    assert version.metrics["macro_f1"] == pytest.approx(
        f1_score(truth, predicted, average="macro", labels=[0, 1])
    )
    assert version.metrics["confusion_matrix"] == confusion_matrix(truth, predicted, labels=[0, 1]).tolist()


def test_an_image_version_trains_on_the_digits():
    project = _digits_project()
    version = model_version_train(project=project, params={"device": "cpu"})
    assert version.backend == "image_cnn"
    assert version.metrics["accuracy"] > 0.6, version.metrics["accuracy"]
    assert len(version.metrics["confusion_matrix"]) == 10


def test_a_second_version_takes_over_and_the_learning_curve_shows_both():
    project = _reviews_project(n=200)
    first = model_version_train(project=project)
    second = model_version_train(project=project, seed=1)
    first.refresh_from_db()
    assert (first.is_active, second.is_active, second.number) == (False, True, 2)
    assert ">v1<" in second.learning_curve_svg and ">v2<" in second.learning_curve_svg


def test_a_failed_fit_stores_nothing_and_leaves_the_active_version(monkeypatch):
    from training.backends.text import TextLogRegBackend

    project = _reviews_project(n=120)
    active = model_version_train(project=project)

    def broken_fit(self, *args, **kwargs):
        raise RuntimeError("out of memory")

    monkeypatch.setattr(TextLogRegBackend, "fit", broken_fit)
    with pytest.raises(RuntimeError, match="out of memory"):
        model_version_train(project=project, seed=3)
    assert list(ModelVersion.objects.filter(project=project)) == [active]
    active.refresh_from_db()
    assert active.is_active
    staging = list((Path(settings.MEDIA_ROOT) / "models" / f"project-{project.pk}").glob(".staging-*"))
    assert staging == []


def test_too_few_labels_is_the_not_enough_labels_message():
    project = make_project(items=3, training_min_labels=1)
    with pytest.raises(NotEnoughLabels, match="not enough labels yet"):
        model_version_train(project=project)
