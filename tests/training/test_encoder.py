"""The sentence-encoder text model (training/backends/encoder.py): the installed all-MiniLM-L6-v2
checked before it loads, its embeddings, a project that trains on them (embedded once per item,
not again on re-scoring), and a project setting that is refused, naming why, where the encoder
is missing or its files differ."""

import json
import shutil
from unittest import mock

import numpy as np
import pytest
from django.core.exceptions import ValidationError
from django.urls import reverse

from annotate.models import Item, Project
from annotate.projects import project_update
from tests.annotate.test_members_pages import _settings_data
from tests.factories import UserFactory, make_project
from tests.training.projects import reviews_project
from training.backends import load_backend
from training.backends.encoder import (
    CONFIG,
    ENCODER_DIR_VARIABLE,
    WEIGHTS_FILE,
    EncoderUnavailable,
    SentenceEncoder,
    TextEncoderBackend,
    encoder_available,
    encoder_check,
    encoder_directory,
)
from training.backends.text import TextFeatures
from training.models import ModelVersion, Prediction
from training.scoring import prediction_pool_score
from training.versions import model_version_backend, model_version_train

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def encoder():
    return SentenceEncoder(device="cpu")


def test_the_installed_encoder_is_all_minilm_l6_v2(encoder):
    config = json.loads((encoder_directory() / "config.json").read_text())
    assert (config["hidden_size"], config["num_hidden_layers"], config["vocab_size"]) == (384, 6, 30522)
    assert encoder_available() is None
    vector = encoder.embed(["A fixed sentence gives a fixed embedding."])
    assert vector.shape == (1, 384) and vector.dtype == np.float32
    assert np.linalg.norm(vector[0]) == pytest.approx(1.0, abs=1e-5)
    again = encoder.embed(["A fixed sentence gives a fixed embedding.", "Something else entirely."])
    np.testing.assert_allclose(again[0], vector[0], atol=1e-5)


def test_embeddings_put_like_sentences_together(encoder):
    a, b, c = encoder.embed(
        ["The film was wonderful.", "A truly great movie.", "Copper conducts electricity."]
    )
    assert a @ b > a @ c + 0.2 and a @ b > b @ c + 0.2


def _copy_without_weights(tmp_path):
    """The encoder's small files copied, and a weights file that is not the encoder's."""
    target = tmp_path / "encoder"
    shutil.copytree(encoder_directory(), target, ignore=shutil.ignore_patterns(WEIGHTS_FILE))
    (target / WEIGHTS_FILE).write_bytes(b"not the weights")
    return target


def test_other_weights_or_another_config_are_refused_before_loading(tmp_path, monkeypatch):
    target = _copy_without_weights(tmp_path)
    with pytest.raises(
        EncoderUnavailable, match=r"model\.safetensors: sha256 [0-9a-f]{64}, expected 53aa5117"
    ):
        encoder_check(target)
    config = json.loads((target / "config.json").read_text())
    (target / "config.json").write_text(json.dumps({**config, "hidden_size": 768}))
    with pytest.raises(EncoderUnavailable, match="config.json has {'hidden_size': 768}"):
        encoder_check(target)
    monkeypatch.setenv(ENCODER_DIR_VARIABLE, str(tmp_path / "nowhere"))
    assert "is not a directory" in encoder_available()
    with pytest.raises(ValueError, match="text_encoder: .*is not a directory"):
        TextEncoderBackend()
    assert CONFIG["hidden_size"] == 384


@pytest.mark.django_db
def test_a_project_trains_on_embeddings_and_rescoring_embeds_nothing_again():
    project = reviews_project(n=120, labeled=90)
    project_update(project=project, text_model="encoder")
    embedded = []
    real = SentenceEncoder.embed

    def counting(self, texts, **kwargs):
        embedded.append(len(texts))
        return real(self, texts, **kwargs)

    with mock.patch.object(SentenceEncoder, "embed", counting):
        reported = []
        version = model_version_train(
            project=project, progress=lambda phase, pc: reported.append((phase, pc))
        )
        assert version.backend == "text_encoder"
        assert [pc for phase, pc in reported if phase == "load"] == [5, 8, 10]  # 64, then 90 of 90 embedded
        assert version.params["C"] == 1.0 and version.metrics["n_train"] == 90
        first = sum(embedded)
        saves = []
        real_save = TextFeatures.save_npz
        with mock.patch.object(
            TextFeatures, "save_npz", lambda self, path: saves.append(path) or real_save(self, path)
        ):
            assert prediction_pool_score(version=version, batch_size=10) == 30
        assert sum(embedded) == first + 30  # the pool, once
        assert len(saves) == 1  # three batches, one write of the cache
        assert prediction_pool_score(version=version) == 30
        assert model_version_train(project=project).backend == "text_encoder"
        assert sum(embedded) == first + 30  # neither a re-scoring nor a retrain embeds again
    assert first == 90
    backend = model_version_backend(version)
    proba = backend.predict_proba(["an utterly charming and funny film", "a dull, lifeless mess"])
    assert proba.shape == (2, 2) and np.allclose(proba.sum(axis=1), 1)
    assert Prediction.objects.filter(model_version=version).count() == 30


def test_a_saved_encoder_model_reloads_with_the_same_probabilities(tmp_path, encoder):
    texts = ["great fun", "loved it", "a delight", "boring", "awful film", "a waste of time"]
    backend = TextEncoderBackend(device="cpu")
    backend.fit(texts, np.array([0, 0, 0, 1, 1, 1]), classes=["fresh", "rotten"], multi_label=False)
    backend.save(tmp_path / "model")
    again = load_backend(tmp_path / "model")
    assert isinstance(again, TextEncoderBackend)
    probe = ["what a joy", "dreadful"]
    np.testing.assert_allclose(again.predict_proba(probe), backend.predict_proba(probe), atol=1e-6)
    assert backend.predict_proba(probe).argmax(axis=1).tolist() == [0, 1]


@pytest.mark.django_db
def test_the_setting_is_refused_naming_why_where_the_encoder_is_missing(client, tmp_path, monkeypatch):
    lead = UserFactory()
    project = make_project(labels=["a", "b"], members=[])
    project.memberships.filter(role="manager").update(user=lead)
    monkeypatch.setenv(ENCODER_DIR_VARIABLE, str(tmp_path / "nowhere"))
    with pytest.raises(ValidationError) as refused:
        project_update(project=project, text_model="encoder")
    assert "sentence encoder is not available here" in refused.value.message_dict["text_model"][0]
    project.refresh_from_db()
    assert project.text_model == "ngrams"

    client.force_login(lead)
    page = client.get(reverse("annotate:settings", args=[project.pk]))
    assert 'value="encoder"' not in page.text and "Not offered: the sentence encoder" in page.text
    response = client.post(
        reverse("annotate:settings", args=[project.pk]), _settings_data(project, text_model="encoder")
    )
    assert response.status_code == 400
    project.refresh_from_db()
    assert project.text_model == "ngrams"


@pytest.mark.django_db
def test_the_text_model_applies_to_text_classification_only(client):
    project = make_project(labels=["a", "b"], task_type=Project.TaskType.IMAGE_CLASSIFICATION)
    with pytest.raises(ValidationError, match="text classification only"):
        project_update(project=project, text_model="encoder")
    lead = UserFactory()
    project.memberships.filter(role="manager").update(user=lead)
    client.force_login(lead)
    assert 'name="text_model"' not in client.get(reverse("annotate:settings", args=[project.pk])).text


@pytest.mark.django_db
def test_the_api_sets_the_text_model_and_names_a_wrong_value(client):
    from rest_framework.test import APIClient

    lead = UserFactory()
    project = make_project(labels=["a", "b"], members=[])
    project.memberships.filter(role="manager").update(user=lead)
    api = APIClient()
    api.force_authenticate(lead)
    url = f"/api/projects/{project.pk}/"
    wrong = api.patch(url, {"text_model": "bert-large"}, format="json")
    assert wrong.status_code == 400 and "text_model" in wrong.json()
    done = api.patch(url, {"text_model": "encoder"}, format="json")
    assert done.status_code == 200 and done.json()["text_model"] == "encoder"
    assert Project.objects.get(pk=project.pk).text_model == "encoder"
    assert not Item.objects.exists() and not ModelVersion.objects.exists()


@pytest.mark.django_db
def test_a_run_whose_encoder_went_missing_fails_with_the_reason_and_the_active_model_stays(
    tmp_path, monkeypatch, django_capture_on_commit_callbacks
):
    from training.runs import training_run_execute, training_run_request

    project = reviews_project(n=60)
    active = model_version_train(project=project)
    project_update(project=project, text_model="encoder")
    monkeypatch.setenv(ENCODER_DIR_VARIABLE, str(_copy_without_weights(tmp_path)))  # other weights
    with django_capture_on_commit_callbacks():
        run, _ = training_run_request(project=project, trigger="test")
    with pytest.raises(ValueError, match="sha256"):
        training_run_execute(run_id=run.pk)
    run.refresh_from_db()
    assert run.status == "failed" and "text_encoder: " in run.error and "sha256" in run.error
    active.refresh_from_db()
    assert active.is_active and ModelVersion.objects.filter(project=project).count() == 1
