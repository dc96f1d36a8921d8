import io
from datetime import timedelta
from unittest import mock

import numpy as np
import pytest
from django.db import transaction
from django.urls import reverse
from django.utils import timezone
from rest_framework.test import APIClient

from annotate.models import Annotation, Item, Project
from annotate.queue import annotation_submit, assignment_next
from annotate.signals import annotations_stored
from tests.factories import UserFactory
from tests.training.projects import reviews_project
from training import tasks
from training.models import ModelVersion, Prediction, TrainingRun
from training.proposals import proposal_for
from training.runs import (
    training_auto_request,
    training_run_cancel,
    training_run_execute,
    training_run_request,
    training_run_request_activation,
    training_runs_sweep,
)
from training.scoring import prediction_pool_score
from training.strategies import entropy, least_confidence, margin
from training.versions import model_version_train

pytestmark = pytest.mark.django_db


@pytest.fixture
def project():
    """A Rotten Tomatoes project: 160 items labeled, 140 still in the queue."""
    from annotate import importing
    from tests.training.data import reviews as rotten_tomatoes_reviews

    project = reviews_project(n=160)
    reviews = rotten_tomatoes_reviews()[160:300]
    rows = "id,text\n" + "".join(
        f'p{i},"{r.text.replace(chr(34), chr(39))}"\n' for i, r in enumerate(reviews)
    )
    importing.import_csv(
        project=project, file=io.BytesIO(rows.encode()), filename="pool.csv", text_column="text",
        id_column="id",
    )  # fmt: skip
    return project


def _lead(project):
    return project.memberships.get(role="manager").user


def test_a_request_queues_a_run_and_dispatches_it_on_commit(project, django_capture_on_commit_callbacks):
    with (
        mock.patch.object(tasks.training_run_execute, "delay") as delay,
        django_capture_on_commit_callbacks(execute=True) as callbacks,
    ):
        run, created = training_run_request(project=project, trigger="test")
    assert created and run.status == "queued"
    assert len(callbacks) == 1
    delay.assert_called_once_with(run.pk)


def test_a_second_request_is_coalesced_into_the_open_run(project, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks():
        first, _ = training_run_request(project=project, trigger="admin")
        second, created = training_run_request(project=project, trigger="api")
    assert not created and second.pk == first.pk
    assert TrainingRun.objects.filter(project=project).count() == 1


def test_a_run_trains_scores_the_pool_and_activates_the_new_version(
    project, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks():
        run, _ = training_run_request(project=project, trigger="test")
    run = training_run_execute(run_id=run.pk)
    assert (run.status, run.progress, run.phase) == ("succeeded", 100, "done")
    assert run.model_version.is_active and run.dataset_size == 160
    pool = Item.objects.filter(project=project, is_complete=False)
    assert run.items_scored == pool.count() == 140
    assert Prediction.objects.filter(model_version=run.model_version).count() == 140
    assert pool.filter(priority=0).count() == 0


def test_the_queue_serves_the_least_certain_item_first_after_scoring(project, no_warm_up):
    version = model_version_train(project=project)
    prediction_pool_score(version=version)
    ordered = list(
        Prediction.objects.filter(model_version=version)
        .order_by("-uncertainty")
        .values_list("item_id", "probabilities")
    )
    most_uncertain = ordered[0][0]
    probabilities = np.asarray([p for _, p in ordered])
    assert np.all(np.diff(margin(probabilities)) <= 1e-9)  # stored in uncertainty order
    annotator = UserFactory()
    project.memberships.create(user=annotator, role="annotator")
    assert assignment_next(project=project, annotator=annotator).item.pk == most_uncertain


def test_scoring_retires_bookmarks_so_the_queue_follows_the_new_order(project, no_warm_up):
    Project.objects.filter(pk=project.pk).update(random_share=0)  # no random-slice draws
    project.refresh_from_db()
    annotator = UserFactory()
    project.memberships.create(user=annotator, role="annotator")
    api = APIClient()
    api.force_authenticate(annotator)
    url = f"/api/projects/{project.pk}"
    for _ in range(5):  # label in import order: the annotator's bookmark moves on
        item_id = api.post(f"{url}/next/", {"exclude": []}, format="json").json()["item"]["id"]
        body = {"item": item_id, "value": {"choices": ["fresh"]}}
        assert api.post(f"{url}/annotations/", body, format="json").status_code == 201
    membership = project.memberships.get(user=annotator)
    assert membership.queue_mark_item_id is not None
    epoch = Project.objects.get(pk=project.pk).queue_epoch
    version = model_version_train(project=project)
    prediction_pool_score(version=version)
    project.refresh_from_db()
    assert (project.queue_epoch, project.queue_reordering) == (epoch + 2, False)
    # Scoring may put an item ahead of the old bookmark: the queue serves it all the same.
    done = Annotation.objects.filter(annotator=annotator).values("item_id")
    most_uncertain = (
        Prediction.objects.filter(model_version=version)
        .exclude(item_id__in=done)
        .order_by("-uncertainty", "item_id")
    )[0].item_id
    assert api.post(f"{url}/next/", {"exclude": []}, format="json").json()["item"]["id"] == most_uncertain


def test_the_sweeper_ends_a_reordering_left_by_a_lost_worker(project, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks():
        run, _ = training_run_request(project=project, trigger="test")
    now = timezone.now()
    TrainingRun.objects.filter(pk=run.pk).update(status="running", heartbeat_at=now - timedelta(seconds=600))
    # The worker died while rewriting priorities, inside queue_reordering.
    Project.objects.filter(pk=project.pk).update(queue_reordering=True)
    assert training_runs_sweep(now=now) == [run.pk]
    assert not Project.objects.get(pk=project.pk).queue_reordering


def test_a_failed_run_leaves_the_active_version_in_place(
    project, monkeypatch, django_capture_on_commit_callbacks
):
    from training.backends.text import TextLogRegBackend

    active = model_version_train(project=project)
    with django_capture_on_commit_callbacks():
        run, _ = training_run_request(project=project, trigger="test")

    def broken(self, *args, **kwargs):
        raise MemoryError("the worker ran out of memory")

    monkeypatch.setattr(TextLogRegBackend, "fit", broken)
    with pytest.raises(MemoryError):
        training_run_execute(run_id=run.pk)
    run.refresh_from_db()
    assert run.status == "failed" and "out of memory" in run.error
    active.refresh_from_db()
    assert active.is_active and ModelVersion.objects.filter(project=project).count() == 1


def test_cancel_stops_a_queued_run_at_once_and_a_running_run_at_its_next_step(
    project, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks():
        queued, _ = training_run_request(project=project, trigger="test")
    assert training_run_cancel(run=queued).status == "cancelled"
    assert training_run_execute(run_id=queued.pk).status == "cancelled"  # the task finds it ended

    with django_capture_on_commit_callbacks():
        running, _ = training_run_request(project=project, trigger="test")
    TrainingRun.objects.filter(pk=running.pk).update(status="running")
    running.refresh_from_db()
    assert training_run_cancel(run=running).cancel_requested
    TrainingRun.objects.filter(pk=running.pk).update(status="queued")  # let execute claim it
    assert training_run_execute(run_id=running.pk).status == "cancelled"
    assert not ModelVersion.objects.filter(project=project, is_active=True).exists()


def test_the_sweeper_fails_runs_whose_heartbeat_went_silent(project, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks():
        run, _ = training_run_request(project=project, trigger="test")
    now = timezone.now()
    TrainingRun.objects.filter(pk=run.pk).update(status="running", heartbeat_at=now - timedelta(seconds=60))
    assert training_runs_sweep(now=now) == []
    assert training_runs_sweep(now=now + timedelta(seconds=61)) == [run.pk]
    run.refresh_from_db()
    assert (run.status, run.error) == ("failed", "worker lost")


def _retraining_every(project, n, capture):
    """Make `project` retrain every `n` labels after a finished run; return (that run, an annotator)."""
    project.retrain_every = n
    project.save()
    with capture():
        baseline, _ = training_run_request(project=project, trigger="admin")
    TrainingRun.objects.filter(pk=baseline.pk).update(status="succeeded")
    annotator = UserFactory()
    project.memberships.create(user=annotator, role="annotator")
    return baseline, annotator


def test_retraining_every_n_labels_requests_a_run_once_n_new_labels_came(
    project, django_capture_on_commit_callbacks
):
    baseline, annotator = _retraining_every(project, 5, django_capture_on_commit_callbacks)
    for _ in range(4):
        lease = assignment_next(project=project, annotator=annotator)
        annotation_submit(
            project=project, item_id=lease.item.pk, annotator=annotator, value={"choices": ["fresh"]}
        )
        assert training_auto_request(project=project) is None
    lease = assignment_next(project=project, annotator=annotator)
    annotation_submit(
        project=project, item_id=lease.item.pk, annotator=annotator, value={"choices": ["fresh"]}
    )
    with django_capture_on_commit_callbacks() as callbacks:
        run = training_auto_request(project=project)
    assert run is not None and run.trigger == "auto: 5 new labels" and len(callbacks) == 1


def test_a_submit_through_the_service_queues_a_run_once_n_new_labels_came(
    project, django_capture_on_commit_callbacks
):
    # No API view involved: annotation_submit announces the stored annotation on commit
    # (annotate.signals.annotations_stored) and training's receiver counts.
    baseline, annotator = _retraining_every(project, 3, django_capture_on_commit_callbacks)
    with mock.patch.object(tasks.training_run_execute, "delay") as delay:
        for n in range(3):
            lease = assignment_next(project=project, annotator=annotator)
            with django_capture_on_commit_callbacks(execute=True):
                annotation_submit(
                    project=project, item_id=lease.item.pk, annotator=annotator, value={"choices": ["fresh"]}
                )
            if n < 2:
                assert TrainingRun.objects.filter(project=project).count() == 1
    run = TrainingRun.objects.filter(project=project).exclude(pk=baseline.pk).get()
    assert (run.trigger, run.status) == ("auto: 3 new labels", "queued")
    delay.assert_called_once_with(run.pk)


def test_a_submit_rolled_back_announces_nothing(project, django_capture_on_commit_callbacks):
    heard = []
    annotations_stored.connect(lambda **kwargs: heard.append(kwargs["project"]), weak=False, dispatch_uid="t")
    try:
        annotator = UserFactory()
        project.memberships.create(user=annotator, role="annotator")
        lease = assignment_next(project=project, annotator=annotator)
        submit = {"project": project, "item_id": lease.item.pk, "annotator": annotator}
        with (
            django_capture_on_commit_callbacks(execute=True),
            pytest.raises(RuntimeError),
            transaction.atomic(),
        ):
            annotation_submit(**submit, value={"choices": ["fresh"]})
            raise RuntimeError("the caller's transaction fails")
        assert heard == []
        with django_capture_on_commit_callbacks(execute=True):
            annotation_submit(**submit, value={"choices": ["fresh"]})
    finally:
        annotations_stored.disconnect(dispatch_uid="t")
    assert heard == [project]


def test_activating_an_older_version_rescores_the_pool_with_it_before_it_becomes_active(
    client, project, django_capture_on_commit_callbacks, no_warm_up
):
    # v1 as the train command leaves it (active, the pool never scored with it); then a run
    # trains v2, orders the queue and proposes with it. The lead rolls back to v1.
    first = model_version_train(project=project, params={"C": 0.05})
    with django_capture_on_commit_callbacks():
        run, _ = training_run_request(project=project, trigger="test")
    second = training_run_execute(run_id=run.pk).model_version
    lead = _lead(project)
    lead.is_staff = True
    lead.save()
    client.force_login(lead)
    epoch = Project.objects.get(pk=project.pk).queue_epoch
    with (
        mock.patch.object(tasks.training_run_execute, "delay") as delay,
        django_capture_on_commit_callbacks(execute=True),
    ):
        response = client.post(
            reverse("admin:training_modelversion_changelist"),
            {"action": "activate", "_selected_action": [first.pk]},
            follow=True,
        )
    assert response.status_code == 200 and "once the pool is re-scored" in response.text
    rollback = TrainingRun.objects.get(project=project, kind=TrainingRun.Kind.ACTIVATE)
    assert (rollback.trigger, rollback.model_version, rollback.status) == ("activate v1", first, "queued")
    delay.assert_called_once_with(rollback.pk)
    second.refresh_from_db()
    assert second.is_active  # until the pool is scored with v1

    rollback = training_run_execute(run_id=rollback.pk)
    assert (rollback.status, rollback.phase, rollback.progress) == ("succeeded", "done", 100)
    assert rollback.items_scored == 140
    first.refresh_from_db()
    second.refresh_from_db()
    assert first.is_active and not second.is_active
    pool = Item.objects.filter(project=project, is_complete=False)
    uncertainty = dict(Prediction.objects.filter(model_version=first).values_list("item_id", "uncertainty"))
    assert dict(pool.values_list("id", "priority")) == pytest.approx(uncertainty)
    assert proposal_for(item=pool.first())["model_version_id"] == first.pk
    project.refresh_from_db()
    assert project.queue_epoch == epoch + 2 and not project.queue_reordering


def test_an_activation_waits_for_the_open_run_rather_than_joining_it(
    project, django_capture_on_commit_callbacks
):
    version = model_version_train(project=project)
    with django_capture_on_commit_callbacks() as callbacks:
        training, _ = training_run_request(project=project, trigger="test")
        run, created = training_run_request_activation(version=version)
    assert not created and run == training and run.kind == TrainingRun.Kind.TRAIN
    assert len(callbacks) == 1


def test_an_activation_run_of_a_deleted_version_fails_and_trains_nothing(
    project, django_capture_on_commit_callbacks
):
    version = model_version_train(project=project)
    with django_capture_on_commit_callbacks():
        run, _ = training_run_request_activation(version=version)
    TrainingRun.objects.filter(pk=run.pk).update(model_version=None)
    run = training_run_execute(run_id=run.pk)
    assert (run.status, run.error) == ("failed", "the version to activate no longer exists")
    assert ModelVersion.objects.filter(project=project).count() == 1


def test_retraining_every_n_labels_counts_from_the_last_training_not_an_activation(
    project, django_capture_on_commit_callbacks
):
    project.retrain_every = 5
    project.save()
    version = model_version_train(project=project)
    with django_capture_on_commit_callbacks():
        trained, _ = training_run_request(project=project, trigger="admin")
    TrainingRun.objects.filter(pk=trained.pk).update(status="succeeded")
    with django_capture_on_commit_callbacks():
        activation, _ = training_run_request_activation(version=version)
    TrainingRun.objects.filter(pk=activation.pk).update(status="succeeded")
    # A rollback brings no new labels: nothing to retrain on yet.
    assert training_auto_request(project=project) is None


def test_retraining_every_n_labels_is_off_by_default(project):
    assert project.retrain_every == 0
    assert training_auto_request(project=project) is None


def test_the_admin_retrain_now_action_starts_a_run(client, project, django_capture_on_commit_callbacks):
    lead = _lead(project)
    lead.is_staff = True
    lead.save()
    client.force_login(lead)
    with django_capture_on_commit_callbacks() as callbacks:
        response = client.post(
            reverse("admin:annotate_project_changelist"),
            {"action": "retrain_now", "_selected_action": [project.pk]},
            follow=True,
        )
    assert response.status_code == 200 and "training run" in response.text
    run = TrainingRun.objects.get(project=project)
    assert (run.trigger, run.requested_by, run.status) == ("admin", lead, "queued")
    assert len(callbacks) == 1


def test_the_project_page_button_and_the_api_request_runs_and_coalesce(
    client, project, django_capture_on_commit_callbacks
):
    lead = _lead(project)
    client.force_login(lead)
    with django_capture_on_commit_callbacks():
        page = client.post(reverse("training:run-request", args=[project.pk]), HTTP_HX_REQUEST="true")
    assert page.status_code == 200 and 'data-run-status="queued"' in page.text and "hx-trigger" in page.text
    api = APIClient()
    api.force_authenticate(lead)
    response = api.post(f"/api/projects/{project.pk}/training-runs/")
    assert response.status_code == 200 and response.json()["coalesced"] is True
    cancel = api.post(f"/api/projects/{project.pk}/training-runs/{response.json()['id']}/cancel/")
    assert cancel.json()["status"] == "cancelled"
    annotator = UserFactory()
    project.memberships.create(user=annotator, role="annotator")
    api.force_authenticate(annotator)
    assert api.post(f"/api/projects/{project.pk}/training-runs/").status_code == 403


def test_next_carries_the_active_models_proposal_and_the_submit_records_if_it_was_accepted(project):
    version = model_version_train(project=project)
    prediction_pool_score(version=version)
    annotator = UserFactory()
    project.memberships.create(user=annotator, role="annotator")
    api = APIClient()
    api.force_authenticate(annotator)
    shown = api.post(f"/api/projects/{project.pk}/next/", {"exclude": []}, format="json").json()
    proposal = shown["item"]["proposal"]
    assert (proposal["model_version_id"], proposal["model_version_number"]) == (version.pk, version.number)
    assert 0.5 <= proposal["score"] <= 1.0
    other = "rotten" if proposal["value"]["choices"] == ["fresh"] else "fresh"
    body = {
        "item": shown["item"]["id"],
        "value": {"choices": [other]},
        "active_ms": 900,
        "proposal": proposal,
    }
    assert api.post(f"/api/projects/{project.pk}/annotations/", body, format="json").status_code == 201
    annotation = Annotation.objects.get(item_id=shown["item"]["id"], annotator=annotator)
    assert (annotation.proposal_model_version_id, annotation.proposal_accepted) == (version.pk, False)


def test_the_celery_task_runs_the_service_in_eager_mode(
    project, settings, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks():
        run, _ = training_run_request(project=project, trigger="test")
    tasks.training_run_execute.apply(args=[run.pk])
    run.refresh_from_db()
    assert run.status == "succeeded"


@pytest.mark.parametrize("strategy", [margin, least_confidence, entropy])
def test_strategies_score_the_coin_flip_above_the_sure_thing(strategy):
    proba = np.asarray([[0.98, 0.02], [0.5, 0.5], [0.7, 0.3]])
    s = strategy(proba)
    assert s[1] > s[2] > s[0]
    multi = strategy(np.asarray([[0.99, 0.01], [0.5, 0.6]]), multi_label=True)
    assert multi[1] > multi[0]


def test_an_import_of_labels_counts_toward_retraining_every_n_labels(django_capture_on_commit_callbacks):
    from annotate import importing
    from tests.factories import make_project

    project = make_project(labels=["fresh", "rotten"], retrain_every=3)
    rows = "id,text,label\n" + "".join(f"r{i},review {i},fresh\n" for i in range(4))
    with (
        mock.patch.object(tasks.training_run_execute, "delay") as delay,
        django_capture_on_commit_callbacks(execute=True),
    ):
        importing.import_csv(
            project=project, file=io.BytesIO(rows.encode()), filename="labels.csv",
            text_column="text", id_column="id", label_column="label",
        )  # fmt: skip
    run = TrainingRun.objects.get(project=project)
    assert (run.trigger, run.status) == ("auto: 4 new labels", "queued")
    delay.assert_called_once_with(run.pk)
