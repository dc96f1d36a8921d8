"""Hyper-parameters per project (Project.training_params, training/hyperparams.py): each one is seen
to change the model it trains (a setting that were ignored fails its test), the version records the
whole set, and a wrong type or a value out of range is refused naming the parameter, with nothing
saved, through the service, the settings page, the admin's validation and the API."""

import numpy as np
import pytest
from django.core.exceptions import ValidationError
from django.urls import reverse
from rest_framework.test import APIClient

from annotate.models import Project
from annotate.projects import project_update
from tests.annotate.test_members_pages import _settings_data
from tests.factories import UserFactory, make_project
from tests.training.projects import digits_project, reviews_project

# Train as the worker does: one torch thread (test_backends' autouse fixture, used here too).
from tests.training.test_backends import _one_torch_thread  # noqa: F401
from tests.training.test_span_training import spans_project
from training.backends.image import ImageCNNBackend
from training.hyperparams import SPECS, params_check
from training.versions import model_version_activate, model_version_backend, model_version_train

pytestmark = pytest.mark.django_db


def _train(project, **params):
    project_update(project=project, training_params=params)
    version = model_version_train(project=project, folds=0, diagnostics=False, activate=False)
    return version, model_version_backend(version)


# Text ------------------------------------------------------------------------------------------


@pytest.fixture
def reviews():
    return reviews_project(n=120)


def test_text_c_sets_how_closely_the_model_fits_and_the_project_page_shows_it(reviews, client):
    loose, loose_model = _train(reviews, C=0.01)
    close, close_model = _train(reviews, C=100.0)
    assert (loose.params["C"], close.params["C"]) == (0.01, 100.0)
    assert np.linalg.norm(loose_model.coef) < np.linalg.norm(close_model.coef) / 5
    assert loose.metrics["fit"]["train_loss"] > close.metrics["fit"]["train_loss"]

    model_version_activate(version=close)
    lead = reviews.memberships.get(role="manager").user
    client.force_login(lead)
    page = client.get(reverse("annotate:project", args=[reviews.pk])).text
    assert "Trained with (text_logreg; changed by the lead: C)" in page
    assert "<dt>C</dt><dd>100.0 <strong>(set)</strong></dd>" in page
    assert "<dt>max_iter</dt><dd>1000</dd>" in page


def test_text_ngram_ranges_and_feature_counts_set_the_features(reviews):
    default, default_model = _train(reviews)
    words, words_model = _train(reviews, word_ngrams=[1, 1], char_ngrams=[3, 3])
    assert (words.params["word_ngrams"], words.params["char_ngrams"]) == ([1, 1], [3, 3])
    assert words.metrics["fit"]["n_features_seen"] < default.metrics["fit"]["n_features_seen"] / 2
    small, small_model = _train(reviews, word_features=1024, char_features=2048)
    assert small_model.coef.shape == (2, 1024 + 2048)
    assert default_model.coef.shape == (2, 2**18 + 2**18)


# Images ----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def image_data():
    from tests.training.test_backends import _image_data

    return _image_data(n=64, size=16)


def _fit(image_data, **params):
    X, y = image_data
    backend = ImageCNNBackend(**{"device": "cpu", "channels": [4, 8], "epochs": 2, **params})
    info = backend.fit(X, y, classes=["h", "v", "sq"], multi_label=False, seed=0)
    return backend, info


def test_image_learning_rate_epochs_and_batch_size_drive_the_optimiser(image_data):
    still, _ = _fit(image_data, lr=1e-6)
    moving, _ = _fit(image_data, lr=1e-2)
    X, _ = image_data
    untrained = ImageCNNBackend(device="cpu", channels=[4, 8], epochs=1, lr=0.0)
    untrained.fit(X, image_data[1], classes=["h", "v", "sq"], multi_label=False, seed=0)
    drift = np.abs(still.predict_proba(X) - untrained.predict_proba(X)).max()
    moved = np.abs(moving.predict_proba(X) - untrained.predict_proba(X)).max()
    assert drift < moved / 10
    _, info = _fit(image_data, epochs=5, batch_size=16)
    assert (info["epochs"], info["steps"], info["largest_batch"]) == (5, 5 * 4, 16)


def test_image_dropout_and_augmentation_reach_the_network(image_data):
    import torch

    backend, _ = _fit(image_data, dropout=0.6)
    assert [m.p for m in backend.network.modules() if isinstance(m, torch.nn.Dropout)] == [0.6]
    X, _ = image_data
    plain_a, _ = _fit(image_data, shift=0)
    plain_b, _ = _fit(image_data, shift=0)
    shifted, _ = _fit(image_data, shift=4)
    np.testing.assert_allclose(plain_a.predict_proba(X), plain_b.predict_proba(X), atol=1e-6)
    assert np.abs(shifted.predict_proba(X) - plain_a.predict_proba(X)).max() > 1e-3


@pytest.mark.slow
def test_an_image_project_trains_at_its_input_size_with_its_learning_rate_and_epochs():
    project = digits_project(n=60)
    version, model = _train(project, input_size=16, epochs=2, lr=0.001)
    assert model.input_shape == (1, 16, 16)
    assert (version.params["input_size"], version.params["epochs"], version.params["lr"]) == (16, 2, 0.001)
    assert version.metrics["fit"]["epochs"] == 2
    assert version.params["batch_size"] == 64  # what the lead left alone is recorded too


# Spans -----------------------------------------------------------------------------------------


def test_span_regularisation_sets_how_much_the_crf_keeps():
    project = spans_project(labeled=60)
    light, light_model = _train(project, c1=0.0, c2=0.01)
    heavy, heavy_model = _train(project, c1=5.0, c2=0.01)
    assert (light.params["c1"], heavy.params["c1"]) == (0.0, 5.0)
    assert heavy_model.fit_info["active_features"] < light_model.fit_info["active_features"] / 2


# Bad input -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("backend", "params", "message"),
    [
        ("text_logreg", {"C": 0}, "C: 0 is outside 0.0001 to 10000"),
        ("text_logreg", {"C": "strong"}, "C: a number from 0.0001 to 10000 expected, got 'strong'"),
        ("text_logreg", {"word_ngrams": [2, 1]}, "word_ngrams: [2, 1] must have 1 ≤ shortest ≤ longest ≤ 3"),
        ("text_logreg", {"word_features": 10.5}, "word_features: a whole number expected"),
        ("image_cnn", {"epochs": True}, "epochs: a whole number from 1 to 500 expected, got True"),
        ("image_cnn", {"dropout": 0.95}, "dropout: 0.95 is outside 0 to 0.9"),
        ("image_cnn", {"momentum": 0.9}, "momentum: not a parameter of image_cnn"),
        ("text_encoder", {"word_ngrams": [1, 2]}, "word_ngrams: not a parameter of text_encoder"),
    ],
)
def test_params_check_names_what_is_wrong(backend, params, message):
    with pytest.raises(ValueError) as refused:
        params_check(backend, params)
    assert message in str(refused.value)


def test_every_settable_parameter_is_one_its_backend_knows():
    from training.backends import get_backend

    for backend, specs in SPECS.items():
        assert set(specs) <= set(get_backend(backend).default_params), backend


def test_a_wrong_parameter_is_refused_everywhere_and_nothing_is_saved(client):
    lead = UserFactory()
    project = make_project(labels=["a", "b"], members=[])
    project.memberships.filter(role="manager").update(user=lead)
    with pytest.raises(ValidationError) as refused:
        project_update(project=project, training_params={"C": -1})
    assert "C: -1 is outside" in refused.value.message_dict["training_params"][0]

    client.force_login(lead)
    url = reverse("annotate:settings", args=[project.pk])
    shown = client.get(url).text
    assert "text_logreg: C (inverse regularisation strength" in shown and "default 10.0" in shown
    page = client.post(url, _settings_data(project, training_params='{"C": "x"}'))
    assert page.status_code == 400 and "C: a number from" in page.text
    page = client.post(url, _settings_data(project, training_params="{not json"))
    assert page.status_code == 400 and "Enter a valid JSON" in page.text

    api = APIClient()
    api.force_authenticate(lead)
    response = api.patch(f"/api/projects/{project.pk}/", {"training_params": {"max_iter": 5}}, format="json")
    assert response.status_code == 400
    assert "max_iter: not a parameter of text_logreg" in str(response.json()["training_params"])
    assert Project.objects.get(pk=project.pk).training_params == {}

    good = api.patch(f"/api/projects/{project.pk}/", {"training_params": {"C": 2}}, format="json")
    assert good.status_code == 200 and good.json()["training_params"] == {"C": 2}
    assert client.post(url, _settings_data(project, training_params='{"C": 3.5}')).status_code == 302
    assert Project.objects.get(pk=project.pk).training_params == {"C": 3.5}


def test_a_box_project_has_no_parameters_to_set():
    project = make_project(labels=["a"], task_type=Project.TaskType.IMAGE_BOXES)
    with pytest.raises(ValidationError, match="no parameters to set"):
        project_update(project=project, training_params={"lr": 0.1})


def test_a_lead_sets_a_learning_rate_and_epochs_in_the_admin_and_the_next_version_uses_them(client):
    from tests.annotate.test_admin import _form_data

    lead = UserFactory(is_staff=True)
    project = digits_project(n=40)
    project.memberships.filter(role="manager").update(user=lead)
    client.force_login(lead)
    url = reverse("admin:annotate_project_change", args=[project.pk])
    data = _form_data(client.get(url))
    data["training_params"] = '{"lr": 0.001, "epochs": "many"}'
    refused = client.post(url, data)
    assert refused.status_code == 200 and "epochs: a whole number from 1 to 500 expected" in refused.text
    assert Project.objects.get(pk=project.pk).training_params == {}

    data["training_params"] = '{"lr": 0.001, "epochs": 3}'
    assert client.post(url, data).status_code == 302
    project.refresh_from_db()
    version = model_version_train(project=project, folds=0, diagnostics=False, activate=False)
    assert (version.params["lr"], version.params["epochs"], version.metrics["fit"]["epochs"]) == (0.001, 3, 3)


def test_the_c_search_chooses_c_on_the_training_labels_and_the_page_reports_it(reviews, client):
    version, model = _train(reviews, C_search=True)
    search = version.metrics["fit"]["c_search"]
    assert search["grid"] == [0.1, 1.0, 10.0, 100.0] and len(search["log_loss"]) == 4
    chosen = search["chosen"]
    assert chosen == search["grid"][int(np.argmin(search["log_loss"]))]
    assert version.metrics["fit"]["C"] == chosen
    # The final model is the one fitted with the chosen C, not the stated one.
    same, same_model = _train(reviews, C=chosen)
    np.testing.assert_allclose(model.coef, same_model.coef, atol=1e-8)
    # Inside each evaluation fold the search ran on that fold's training labels alone.
    project_update(project=reviews, training_params={"C_search": True})
    folded = model_version_train(project=reviews, activate=True)
    assert folded.metrics["fit"]["c_search"]["chosen"] in search["grid"]
    assert folded.metrics["cv"]["folds"] >= 2
    client.force_login(reviews.memberships.get(role="manager").user)
    page = client.get(reverse("annotate:project", args=[reviews.pk])).text
    assert "C chosen by 3-fold cross-validation of the training labels" in page
    assert f"<strong>C {folded.metrics['fit']['c_search']['chosen']}: log loss" in page


def test_the_c_search_says_why_it_did_not_run():
    from tests.training.test_backends import _text_data
    from training.backends.text import TextLogRegBackend

    texts, y = _text_data(n=8)
    y[:] = [0, 0, 0, 0, 0, 0, 1, 1]  # a class with 2 labels: no 3-fold search
    backend = TextLogRegBackend(C_search=True)
    info = backend.fit(texts, y, classes=["a", "b", "c"], multi_label=False)
    assert info["c_search"] == {"skipped": "fewer than 3 labels of a class: the stated C is used"}
    assert info["C"] == 10.0


# Early stopping (the image network) -----------------------------------------------------------


def test_the_network_stops_on_its_validation_slice_and_keeps_the_best_epochs_weights():
    from tests.training.test_backends import _image_data

    X, y = _image_data(n=160, size=16)
    backend = ImageCNNBackend(
        device="cpu",
        channels=[4, 8],
        epochs=40,
        patience=2,
        lr=0.03,
        early_stopping=True,
        early_stopping_min=100,
    )
    info = backend.fit(X, y, classes=["h", "v", "sq"], multi_label=False, seed=0)
    curve = info["loss_curve"]
    assert info["validation_rows"] == 24  # 15% of 160, never trained on
    assert len(curve["train"]) == len(curve["validation"]) == info["epochs_run"]
    best = curve["validation"][info["best_epoch"] - 1]
    assert best <= min(curve["validation"]) + 1e-4  # later epochs improved by less than that
    assert all(v > best - 1e-4 for v in curve["validation"][info["best_epoch"] :])
    assert info["epochs_run"] < 40 and info["epochs_run"] - info["best_epoch"] == 2  # patience
    # The weights kept are the best epoch's: their loss on the held-out slice (the fit's first
    # seeded draw) is that epoch's, not the last one's.
    held = np.sort(np.random.default_rng(0).permutation(160)[:24])
    proba = backend.predict_proba(X[held])
    kept = float(-np.mean(np.log(proba[np.arange(24), y[held]])))
    assert kept == pytest.approx(best, rel=1e-3, abs=1e-7)
    off = ImageCNNBackend(device="cpu", channels=[4, 8], epochs=3, early_stopping=False)
    info = off.fit(X, y, classes=["h", "v", "sq"], multi_label=False, seed=0)
    assert (info["validation_rows"], info["epochs_run"], info["loss_curve"]["validation"]) == (0, 3, [])


def test_early_stopping_is_on_by_default_from_300_labels_given_to_a_fit():
    from tests.training.test_backends import _image_data

    for n, held_out in ((299, 0), (300, 45)):
        X, y = _image_data(n=n, size=16)
        info = ImageCNNBackend(device="cpu", channels=[4, 8], epochs=2).fit(
            X, y, classes=["h", "v", "sq"], multi_label=False, seed=0
        )
        assert info["validation_rows"] == held_out
        assert len(info["loss_curve"]["validation"]) == (2 if held_out else 0)


@pytest.mark.slow
def test_the_refit_on_all_labels_trains_the_folds_best_epoch_count_and_the_page_plots_the_losses(client):
    project = digits_project(n=200)
    project_update(
        project=project,
        training_params={"early_stopping": True, "early_stopping_min": 100, "epochs": 30, "patience": 2},
    )
    version = model_version_train(project=project, diagnostics=False)
    refit = version.metrics["refit"]
    assert len(refit["best_epochs_of_folds"]) == version.metrics["cv"]["folds"]
    assert refit["epochs"] == int(np.median(refit["best_epochs_of_folds"]))
    fit = version.metrics["fit"]
    assert (fit["epochs_run"], fit["validation_rows"]) == (refit["epochs"], 0)  # all labels, no slice
    client.force_login(project.memberships.get(role="manager").user)
    page = client.get(reverse("annotate:project", args=[project.pk])).text
    assert 'id="loss-curve"' in page and "Loss per epoch" in page
    assert f"the final fit then trained {refit['epochs']} epochs on all labels" in page
    assert f"best epoch {refit['best_epoch_of_fold_1']}" in page
