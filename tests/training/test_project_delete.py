"""A trained project is deleted whole (issue 17, item 6's first part): through the API and the admin,
with its model versions, their snapshots, predictions, runs and the versions' files in the storage
(a version's snapshot used to be PROTECTed, so the deletion was a 500). A snapshot stays undeletable
on its own while a version trained on it exists. Any path under /api/ that no route takes answers
a JSON 404, whatever DEBUG says."""

from urllib.parse import urlencode

import pytest
from django.core.files.storage import default_storage
from django.db.models import RestrictedError
from django.test import override_settings
from django.urls import reverse
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from annotate.models import Project
from tests.training.projects import reviews_project
from training.models import DatasetSnapshot, ModelVersion, Prediction, TrainingRun
from training.runs import training_run_execute, training_run_request
from training.scoring import prediction_pool_score
from training.versions import model_version_train

pytestmark = pytest.mark.django_db(transaction=True)


def _trained():
    project = reviews_project(n=120, labeled=90)
    first = model_version_train(project=project, folds=0, diagnostics=False)
    prediction_pool_score(version=first)
    run, _ = training_run_request(project=project, trigger="test")
    assert training_run_execute(run_id=run.pk).status == "succeeded"
    versions = list(ModelVersion.objects.filter(project=project))
    assert len(versions) == 2 and Prediction.objects.filter(model_version__project=project).exists()
    for version in versions:
        _, files = default_storage.listdir(version.artifact_path)
        assert "model.json" in files
    return project, versions


def _gone(project, versions):
    assert not Project.objects.filter(pk=project.pk).exists()
    for model in (ModelVersion, DatasetSnapshot, TrainingRun):
        assert not model.objects.filter(project_id=project.pk).exists(), model
    assert not Prediction.objects.filter(model_version_id__in=[v.pk for v in versions]).exists()
    for version in versions:
        assert not default_storage.exists(f"{version.artifact_path}/model.json"), version


def test_a_trained_project_is_deleted_through_the_api_with_its_models_and_their_files():
    project, versions = _trained()
    client = APIClient()
    lead = project.memberships.get(role="manager").user
    client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=lead).key}")
    url = f"/api/projects/{project.pk}/"
    # Unconfirmed, or confirmed with another name: nothing goes, and the answer counts what would.
    for query in ("", "?confirm=", f"?confirm={project.name}x"):
        refused = client.delete(url + query)
        assert refused.status_code == 400, refused.content
        deletes = refused.json()["deletes"]
        assert deletes["items"] == 120 and deletes["model versions"] == 2, deletes
        assert deletes["predictions"] == Prediction.objects.filter(model_version__project=project).count()
        assert "confirm" in refused.json()["detail"]
    assert Project.objects.filter(pk=project.pk).exists()
    response = client.delete(f"{url}?{urlencode({'confirm': project.name})}")
    assert response.status_code == 204, response.content
    _gone(project, versions)


def test_a_trained_project_is_deleted_in_the_admin(client):
    project, versions = _trained()
    lead = project.memberships.get(role="manager").user
    lead.is_staff = lead.is_superuser = True
    lead.save()
    client.force_login(lead)
    url = reverse("admin:annotate_project_delete", args=[project.pk])
    assert client.get(url).status_code == 200
    response = client.post(url, {"post": "yes"})
    assert response.status_code == 302, response.content[:500]
    _gone(project, versions)


def test_a_snapshot_a_version_trained_on_cannot_be_deleted_alone():
    project, versions = _trained()
    with pytest.raises(RestrictedError):
        versions[0].dataset.delete()
    assert ModelVersion.objects.filter(pk=versions[0].pk).exists()


@pytest.mark.parametrize("debug", [False, True])
def test_a_path_under_api_that_no_route_takes_is_a_json_404(debug):
    with override_settings(DEBUG=debug):
        for path in ("/api/nope/", "/api/projects/1/nothing-here/", "/api/projects/x/"):
            response = APIClient().get(path)
            assert response.status_code == 404, path
            assert response["Content-Type"] == "application/json"
            assert response.json() == {"detail": f"No API endpoint at {path}."}


def test_a_confirmation_that_is_not_a_name_is_refused_with_what_goes(client):
    """Found by the API fuzz: a NUL in ?confirm= answered a serializer's error, not the schema's."""
    project = reviews_project(n=5, labeled=0)
    api = APIClient()
    api.force_authenticate(project.memberships.get(role="manager").user)
    response = api.delete(f"/api/projects/{project.pk}/?confirm=%00")
    assert response.status_code == 400 and response.json()["deletes"]["items"] == 5
    assert Project.objects.filter(pk=project.pk).exists()
