import pytest
from django.core.management import CommandError, call_command
from django.urls import reverse

from tests.factories import UserFactory, make_project
from tests.training.projects import reviews_project
from training.models import ModelVersion, TrainingRun
from training.runs import training_run_execute, training_run_request
from training.versions import model_version_train

pytestmark = pytest.mark.django_db


@pytest.fixture
def trained():
    project = reviews_project(n=150)
    first = model_version_train(project=project)
    second = model_version_train(project=project, seed=1)
    return project, first, second


def test_the_lead_project_page_shows_metrics_confusion_matrix_and_history(client, trained):
    project, first, second = trained
    client.force_login(project.memberships.get(role="manager").user)
    response = client.get(reverse("annotate:project", args=[project.pk]))
    assert response.status_code == 200
    assert f"Active: <strong>v{second.number}</strong>" in response.text
    assert "Confusion matrix" in response.text and "Learning curve" in response.text
    assert f"{second.metrics['accuracy']:.3f}" in response.text
    assert response.text.count("data-model-card") == 2


def test_an_annotator_sees_no_model_section(client, trained):
    project, *_ = trained
    annotator = UserFactory()
    project.memberships.create(user=annotator, role="annotator")
    client.force_login(annotator)
    assert 'id="model"' not in client.get(reverse("annotate:project", args=[project.pk])).text


def test_activate_this_version_in_the_admin_rolls_back(client, trained, django_capture_on_commit_callbacks):
    project, first, second = trained
    lead = project.memberships.get(role="manager").user
    lead.is_staff = True
    lead.save()
    client.force_login(lead)
    with django_capture_on_commit_callbacks():
        response = client.post(
            reverse("admin:training_modelversion_changelist"),
            {"action": "activate", "_selected_action": [first.pk]},
            follow=True,
        )
    assert response.status_code == 200
    training_run_execute(run_id=TrainingRun.objects.get(project=project).pk)  # what the worker does
    first.refresh_from_db()
    second.refresh_from_db()
    assert first.is_active and not second.is_active


def _run_status(client, project):
    return client.get(reverse("training:run-status", args=[project.pk]), HTTP_HX_REQUEST="true")


@pytest.mark.parametrize("earlier", [0, 1], ids=["first-model", "second-model"])
def test_when_a_run_ends_its_status_brings_the_new_active_versions_metrics_and_charts(
    client, earlier, django_capture_on_commit_callbacks
):
    project = reviews_project(n=150)
    for seed in range(earlier):
        model_version_train(project=project, seed=seed)
    client.force_login(project.memberships.get(role="manager").user)
    with django_capture_on_commit_callbacks():
        run, _ = training_run_request(project=project, trigger="test")
    assert "hx-swap-oob" not in _run_status(client, project).text  # still polling: the card stays
    version = training_run_execute(run_id=run.pk).model_version

    page = _run_status(client, project).text
    # The run's line, and the Model card's active version swapped in out of band (htmx).
    assert f"v{version.number} is active" in page
    assert '<div id="model-version" hx-swap-oob="true">' in page
    assert f"Active: <strong>v{version.number}</strong>" in page
    assert f"{version.metrics['accuracy']:.3f}" in page
    assert version.confusion_svg in page and version.learning_curve_svg in page
    assert "No model yet" not in page
    assert page.count("data-model-card") == earlier + 1


def test_the_project_pages_model_card_is_the_partial_the_run_status_replaces(client, trained):
    project, _, second = trained
    client.force_login(project.memberships.get(role="manager").user)
    page = client.get(reverse("annotate:project", args=[project.pk])).text
    assert page.count('<div id="model-version">') == 1
    assert f"Active: <strong>v{second.number}</strong>" in page


def test_a_lead_sees_only_their_projects_versions_in_the_admin(client, trained):
    project, first, _ = trained
    other_lead = UserFactory(is_staff=True)
    make_project(name="Other", members=[(other_lead, "manager")])
    client.force_login(other_lead)
    response = client.get(reverse("admin:training_modelversion_changelist"))
    assert response.status_code == 200 and project.name not in response.text
    response = client.get(reverse("admin:training_modelversion_change", args=[first.pk]))
    assert project.name not in response.text


def test_the_train_command_trains_scores_the_pool_and_reports_accuracy(capsys):
    from annotate.models import Item
    from training.models import Prediction

    project = reviews_project(n=160, labeled=120)
    call_command("train", project.pk)
    out = capsys.readouterr().out
    assert "v1 (text_logreg) accuracy" in out and "40 items scored" in out
    # The first version: the queue samples at random until two versions agree (the warm-up).
    assert "queue order: random while the model settles (no version before it;" in out
    pool = Item.objects.filter(project=project, is_complete=False)
    first = ModelVersion.objects.get(project=project, is_active=True)
    uncertainty = dict(Prediction.objects.filter(model_version=first).values_list("item_id", "uncertainty"))
    assert len(uncertainty) == 40 and dict(pool.values_list("id", "priority")) != pytest.approx(uncertainty)
    # The same labels again: the same predictions (κ = 1), and margin orders the queue from here.
    call_command("train", project.pk)
    out = capsys.readouterr().out
    assert "v2 (text_logreg) accuracy" in out and "40 items scored, queue order: margin;" in out
    version = ModelVersion.objects.get(project=project, is_active=True)
    # The queue is ordered and proposals come from the new version, as after a training run.
    uncertainty = dict(Prediction.objects.filter(model_version=version).values_list("item_id", "uncertainty"))
    assert len(uncertainty) == 40 and dict(pool.values_list("id", "priority")) == pytest.approx(uncertainty)


def test_the_train_command_says_when_there_are_not_enough_labels(capsys):
    project = make_project(items=2)
    with pytest.raises(CommandError, match="could not be trained yet"):
        call_command("train", project.pk)
    assert "not enough labels yet" in capsys.readouterr().err
