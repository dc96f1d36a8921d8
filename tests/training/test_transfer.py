"""Transfer learning for images (training/transfer.py, ImageCNNBackend.start_from): the starting
weights are really loaded, every tensor but the head; every fit of a run starts from them and the
version names its source; a bad start_from (missing, another lead's, a text model's, another input
size, not a number) is refused naming start_from through the API, the settings page and the admin,
with nothing saved; a source gone by the time the run starts fails the run and leaves the active
version in place."""

import json

import factory
import numpy as np
import pytest
from django.urls import reverse
from rest_framework.test import APIClient

from annotate.models import Project
from annotate.projects import project_update
from tests.annotate.test_members_pages import _settings_data
from tests.factories import UserFactory, make_project
from tests.training.projects import digits_project

# Train as the worker does: one torch thread (test_backends' autouse fixture, used here too).
from tests.training.test_backends import _image_data, _one_torch_thread  # noqa: F401
from training.backends.image import ImageCNNBackend
from training.models import DatasetSnapshot, ModelVersion, TrainingRun
from training.versions import model_version_active, model_version_train

pytestmark = pytest.mark.django_db

SMALL = {"device": "cpu", "channels": [4, 8], "epochs": 2}  # a fast network for every fit here
CLASSES = ["h", "v", "sq"]


# The backend: arrays only --------------------------------------------------------------------


@pytest.fixture(scope="module")
def source():
    """A network fitted on the bars-and-squares patterns, and its data."""
    X, y = _image_data(n=64, size=16, seed=1)
    backend = ImageCNNBackend(**{**SMALL, "epochs": 4, "lr": 0.01})
    backend.fit(X, y, classes=CLASSES, multi_label=False, seed=1)
    return backend, X, y


def _conv_names(weights: dict) -> list[str]:
    return [name for name, value in weights.items() if name.endswith(".weight") and value.ndim == 4]


def _head_name(weights: dict) -> str:
    return [name for name, value in weights.items() if name.endswith(".weight") and value.ndim == 2][-1]


def _fit_still(X, y, *, start=None, seed=0):
    """A fit whose learning rate is too small to move any weight: what it ends with is where it started."""
    backend = ImageCNNBackend(**{**SMALL, "lr": 1e-9, "weight_decay": 0.0})
    if start is not None:
        backend.start_from(start.weights(), source="the source", input_shape=start.input_shape)
    info = backend.fit(X, y, classes=CLASSES, multi_label=False, seed=seed)
    return backend, info


def test_a_fit_started_from_a_network_begins_with_its_weights_but_a_fresh_head(source):
    model, X, y = source
    X_new, y_new = _image_data(n=48, size=16, seed=2)
    started, info = _fit_still(X_new, y_new, start=model)
    scratch, _ = _fit_still(X_new, y_new)
    theirs, ours, fresh = model.weights(), started.weights(), scratch.weights()

    for name in _conv_names(theirs):
        np.testing.assert_allclose(ours[name], theirs[name], atol=1e-6)
        assert np.abs(fresh[name] - theirs[name]).max() > 1e-2  # from scratch: elsewhere
    # The input standardisation is the source's, not this data's.
    np.testing.assert_array_equal(ours["0.mean"], theirs["0.mean"])
    np.testing.assert_array_equal(ours["0.std"], theirs["0.std"])
    assert not np.allclose(fresh["0.mean"], theirs["0.mean"])
    # The head is a fresh one: that of a network from scratch with the same seed, not the source's.
    head = _head_name(theirs)
    np.testing.assert_allclose(ours[head], fresh[head], atol=1e-6)
    assert np.abs(ours[head] - theirs[head]).max() > 1e-2
    conv_and_batchnorm = 2 + len(_conv_names(theirs)) * 6  # mean, std; conv + 5 batchnorm tensors each
    assert info["start_from"] == {
        "source": "the source",
        "tensors_loaded": conv_and_batchnorm,
        "head": "re-initialised",
        "standardize": "source's",
    }
    assert "start_from" not in scratch.fit_info


def test_a_source_whose_conv_layers_or_input_shape_differ_is_refused(source):
    model, X, y = source
    wider = ImageCNNBackend(**{**SMALL, "channels": [8, 8]})
    wider.start_from(model.weights(), source="v1 of digits")
    with pytest.raises(ValueError, match=r"start_from: the conv layers of v1 of digits \(channels \[4, 8\]"):
        wider.fit(X, y, classes=CLASSES, multi_label=False)
    assert not wider.is_fitted
    bigger = ImageCNNBackend(**SMALL).start_from(model.weights(), source="v1", input_shape=(1, 16, 16))
    X_big, y_big = _image_data(n=16, size=24)
    with pytest.raises(ValueError, match=r"start_from: v1 read images of shape \(1, 16, 16\), these are"):
        bigger.fit(X_big, y_big, classes=CLASSES, multi_label=False)


# Through the studio --------------------------------------------------------------------------


def _lead_of(project: Project):
    return project.memberships.get(role="manager").user


def _source_version(*, input_size: int = 16) -> ModelVersion:
    project = digits_project(n=40)
    return model_version_train(
        project=project, params={**SMALL, "input_size": input_size}, folds=0, diagnostics=False
    )


def test_a_project_trains_from_another_projects_version_and_its_page_says_so(monkeypatch, client):
    source_version = _source_version()
    target = digits_project(n=40)
    project_update(project=target, training_params={"input_size": 16, "start_from": source_version.pk})
    fits = []
    fit = ImageCNNBackend.fit

    def recorded(self, *args, **kwargs):
        info = fit(self, *args, **kwargs)
        fits.append(info)
        return info

    monkeypatch.setattr(ImageCNNBackend, "fit", recorded)
    version = model_version_train(project=target, params={"channels": [4, 8], "epochs": 2}, diagnostics=False)

    assert version.metrics["transfer"] == {
        "version_id": source_version.pk,
        "project_id": source_version.project_id,
        "project": source_version.project.name,
        "number": 1,
    }
    assert version.metrics["fit"]["start_from"]["tensors_loaded"] == 2 + 2 * 6
    assert version.metrics["fit"]["start_from"]["source"] == f"v1 of {source_version.project.name}"
    # Every fit of the run (each fold's, then the final one) started from the source.
    assert len(fits) == version.metrics["cv"]["folds"] + 1 >= 3
    assert all(info["start_from"]["tensors_loaded"] == 14 for info in fits)
    assert "start_from" not in version.params  # not a backend parameter
    client.force_login(_lead_of(target))
    page = client.get(reverse("annotate:project", args=[target.pk])).text
    assert f"The network started from v1 of {source_version.project.name}" in page


def test_a_run_whose_source_was_deleted_fails_with_the_reason_and_the_active_version_stays(
    django_capture_on_commit_callbacks,
):
    from training.runs import training_run_execute, training_run_request

    source_version = _source_version()
    target = digits_project(n=40)
    project_update(project=target, training_params={"input_size": 16})
    active = model_version_train(project=target, params=SMALL, folds=0, diagnostics=False)
    project_update(project=target, training_params={"input_size": 16, "start_from": source_version.pk})
    gone = source_version.pk
    source_version.delete()

    with django_capture_on_commit_callbacks():
        run, _ = training_run_request(project=target, trigger="test")
    with pytest.raises(ValueError, match=f"start_from: no model version {gone}"):
        training_run_execute(run_id=run.pk)
    run.refresh_from_db()
    assert run.status == TrainingRun.Status.FAILED and f"start_from: no model version {gone}" in run.error
    assert model_version_active(project=target) == active
    assert ModelVersion.objects.filter(project=target).count() == 1


# Bad input: the API, the settings page, the admin ------------------------------------------------


class SnapshotFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = DatasetSnapshot

    classes = ["a", "b"]
    item_ids = []
    values = []
    validation_ids = []
    fingerprint = "0" * 64


class VersionFactory(factory.django.DjangoModelFactory):
    """A version row only (no artifacts): what the checks read before any training."""

    class Meta:
        model = ModelVersion

    number = factory.Sequence(lambda n: n + 1)
    backend = "image_cnn"
    params = factory.LazyFunction(lambda: {"input_size": 32})
    dataset = factory.SubFactory(SnapshotFactory, project=factory.SelfAttribute("..project"))
    artifact_path = "nowhere/"


@pytest.fixture
def world():
    """A lead's image project to set start_from on, and versions to try: of another image project
    they manage (fine), of a project they do not manage, of a text project they manage, of an image
    project trained at 16 px, and of the project itself."""
    lead = UserFactory(is_staff=True)

    def managed(**fields):
        project = make_project(labels=["a", "b"], **fields)
        project.memberships.filter(role="manager").update(user=lead)
        return project

    image = Project.TaskType.IMAGE_CLASSIFICATION
    target = managed(task_type=image)
    return {
        "lead": lead,
        "target": target,
        "fine": VersionFactory(project=managed(task_type=image)),
        "stranger": VersionFactory(project=make_project(labels=["a", "b"], task_type=image)),
        "text": VersionFactory(project=managed(), backend="text_logreg", params={"C": 10.0}),
        "small": VersionFactory(project=managed(task_type=image), params={"input_size": 16}),
        "own": VersionFactory(project=target),
    }


BAD = [
    ("missing", "start_from: no model version {missing} among the projects you manage"),
    ("stranger", "start_from: no model version {stranger} among the projects you manage"),
    ("text", "start_from: model version {text} ("),
    ("text", "is a text_logreg model, not an image network (image_cnn)"),
    ("small", "read 16-pixel images and this project trains on 32; set input_size to 16"),
    ("own", "start_from: model version {own} is this project's own"),
    ("string", "start_from: a model version id (a whole number) or null expected, got"),
]


def _case(world, case: str):
    """(the start_from to send, the message's ids filled in)."""
    ids = {name: v.pk for name, v in world.items() if isinstance(v, ModelVersion)}
    ids["missing"] = max(ids.values()) + 1000
    value = str(ids["fine"]) if case == "string" else ids[case]
    return value, ids


def _unchanged(project: Project) -> bool:
    return Project.objects.get(pk=project.pk).training_params == {}


@pytest.mark.parametrize(("case", "message"), BAD)
def test_the_api_refuses_a_bad_start_from_naming_it_and_saves_nothing(world, case, message):
    value, ids = _case(world, case)
    api = APIClient()
    api.force_authenticate(world["lead"])
    url = f"/api/projects/{world['target'].pk}/"
    response = api.patch(url, {"training_params": {"start_from": value}}, format="json")
    assert response.status_code == 400
    assert message.format(**ids) in " ".join(response.json()["training_params"])
    assert _unchanged(world["target"])


@pytest.mark.parametrize(("case", "message"), BAD)
def test_the_settings_page_refuses_a_bad_start_from_under_its_field(world, case, message, client):
    from django.utils.html import escape

    value, ids = _case(world, case)
    client.force_login(world["lead"])
    url = reverse("annotate:settings", args=[world["target"].pk])
    page = client.post(
        url, _settings_data(world["target"], training_params=json.dumps({"start_from": value}))
    )
    assert page.status_code == 400
    assert escape(message.format(**ids)) in page.text
    assert page.context["form"].errors["training_params"]
    assert _unchanged(world["target"])


@pytest.mark.parametrize(("case", "message"), BAD)
def test_the_admin_refuses_a_bad_start_from_under_its_field(world, case, message, client):
    from django.utils.html import escape

    from tests.annotate.test_admin import _form_data

    value, ids = _case(world, case)
    client.force_login(world["lead"])
    url = reverse("admin:annotate_project_change", args=[world["target"].pk])
    data = _form_data(client.get(url))
    data["training_params"] = json.dumps({"start_from": value})
    page = client.post(url, data)
    assert page.status_code == 200
    assert escape(message.format(**ids)) in page.text
    assert page.context["adminform"].form.errors["training_params"]
    assert _unchanged(world["target"])


def test_a_version_of_another_leads_project_reads_exactly_like_a_missing_one(world):
    api = APIClient()
    api.force_authenticate(world["lead"])
    url = f"/api/projects/{world['target'].pk}/"
    _, ids = _case(world, "missing")
    answers = [
        api.patch(url, {"training_params": {"start_from": ids[case]}}, format="json").json()
        for case in ("stranger", "missing")
    ]
    assert [
        json.dumps(answer).replace(str(ids[case]), "N")
        for answer, case in zip(answers, ("stranger", "missing"), strict=True)
    ] == [
        json.dumps({"training_params": ["start_from: no model version N among the projects you manage"]})
    ] * 2


def test_a_good_start_from_is_saved_everywhere_and_a_co_manager_may_keep_it(world, client):
    from annotate.projects import membership_add
    from tests.annotate.test_admin import _form_data

    target, fine = world["target"], world["fine"]
    api = APIClient()
    api.force_authenticate(world["lead"])
    url = f"/api/projects/{target.pk}/"
    saved = api.patch(url, {"training_params": {"start_from": fine.pk}}, format="json")
    assert saved.status_code == 200 and saved.json()["training_params"] == {"start_from": fine.pk}

    # Another manager of the target who does not manage the source's project may change other
    # settings (start_from as it was), not set it anew.
    other = UserFactory(is_staff=True)
    membership_add(project=target, user=other, role="manager")
    api.force_authenticate(other)
    kept = api.patch(url, {"overlap": 2, "training_params": {"start_from": fine.pk}}, format="json")
    assert kept.status_code == 200 and Project.objects.get(pk=target.pk).overlap == 2
    project_update(project=target, training_params={})
    again = api.patch(url, {"training_params": {"start_from": fine.pk}}, format="json")
    assert again.status_code == 400 and _unchanged(target)

    client.force_login(world["lead"])
    settings_url = reverse("annotate:settings", args=[target.pk])
    data = _settings_data(target, training_params=json.dumps({"start_from": fine.pk}))
    assert client.post(settings_url, data).status_code == 302
    project_update(project=target, training_params={})
    admin_url = reverse("admin:annotate_project_change", args=[target.pk])
    form = _form_data(client.get(admin_url))
    form["training_params"] = json.dumps({"start_from": fine.pk, "input_size": 32})
    assert client.post(admin_url, form).status_code == 302
    assert Project.objects.get(pk=target.pk).training_params == {"start_from": fine.pk, "input_size": 32}
