"""Text spans in the training loop, on the real database: a run through the run service, the
pool's span proposals and priorities from the marginals, the queue API serving one, the model
card's per-label table, suspicious spans for review; and boxes refused with the message."""

import numpy as np
import pytest
from django.urls import reverse
from rest_framework.test import APIClient

from annotate.models import Item, PickKind, Project
from annotate.queue import annotation_submit, assignment_next
from tests.factories import UserFactory, make_project
from tests.training.span_data import LABELS, make_split
from training.artifact_store import artifact_local
from training.backends.spans import MODEL_FILE
from training.datasets import NotEnoughLabels
from training.models import ModelVersion, Prediction, TrainingRun
from training.random_curve import RANDOM_CURVE_FRACTIONS
from training.runs import training_auto_request, training_run_execute, training_run_request
from training.strategies import sequence_scores
from training.versions import (
    NO_BOX_MODEL,
    NoModelForTask,
    model_version_backend,
    model_version_train,
    span_documents,
)

pytestmark = pytest.mark.django_db


def spans_project(*, labeled: int, pool: int = 0, corrupt=None, **fields):
    """A text_spans project of Faker sentences: `labeled` labeled through the queue, `pool` more
    left unlabeled. `corrupt(i, spans)` may return a different labeled value for sentence i."""
    annotator = UserFactory()
    project = make_project(
        task_type=Project.TaskType.TEXT_SPANS, labels=LABELS, members=[(annotator, "annotator")], **fields
    )
    train, test = make_split(n_train=labeled, n_test=max(pool, 1), seed=11)
    from annotate.items import item_create_bulk

    rows = [{"external_id": f"s{i}", "text": s.text} for i, s in enumerate(train)]
    rows += [{"external_id": f"p{i}", "text": s.text} for i, s in enumerate(test[:pool])]
    item_create_bulk(project=project, rows=rows)
    truth = {f"s{i}": s.spans for i, s in enumerate(train)}
    for _ in range(labeled):
        lease = assignment_next(project=project, annotator=annotator)
        n = int(lease.item.external_id[1:])
        spans = truth[lease.item.external_id]
        if corrupt is not None:
            spans = corrupt(n, spans)
        annotation_submit(project=project, item_id=lease.item.pk, annotator=annotator, value={"spans": spans})
    return project


def _lead(project):
    return project.memberships.get(role="manager").user


@pytest.fixture
def trained(django_capture_on_commit_callbacks):
    """A spans project of 80 labeled and 30 unlabeled texts, trained by a real run."""
    project = spans_project(labeled=80, pool=30, sampling_strategy="least_confidence")
    with django_capture_on_commit_callbacks():
        run, created = training_run_request(project=project, trigger="test")
    assert created
    return project, training_run_execute(run_id=run.pk)


def test_a_spans_run_trains_a_span_crf_scores_the_pool_and_activates_it(trained):
    project, run = trained
    assert (run.status, run.progress, run.error) == ("succeeded", 100, "")
    version = run.model_version
    assert version.is_active and version.backend == "span_crf" and run.dataset_size == 80
    m = version.metrics
    assert m["task"] == "spans" and m["scheme"] == "IOB2 strict (seqeval)"
    assert m["f1"] >= 0.7 and set(m["per_class"]) == set(LABELS)
    assert m["cv"]["folds"] == 5 and len(m["cv"]["f1"]["per_fold"]) == 5
    assert m["fit"]["n_samples"] == 80 and version.confusion_svg == ""
    assert "entity F1" in version.learning_curve_svg
    assert run.items_scored == 30
    # The artifact is crfsuite's own file beside the manifest.
    folder = artifact_local(prefix=version.artifact_path)
    assert sorted(p.name for p in folder.iterdir() if not p.name.startswith(".")) == [
        MODEL_FILE,
        "model.json",
    ]


def test_the_pools_predictions_hold_span_values_and_priorities_come_from_the_marginals(trained):
    project, run = trained
    version = run.model_version
    pool = list(Item.objects.filter(project=project, is_complete=False).order_by("id"))
    predictions = {p.item_id: p for p in Prediction.objects.filter(model_version=version)}
    assert set(predictions) == {item.pk for item in pool}
    from annotate.values import annotation_value_validate

    with_spans = 0
    for item in pool:
        value = predictions[item.pk].value
        assert (
            annotation_value_validate(project=project, label_names=LABELS, value=value, text=item.text)
            == value
        )
        assert len(predictions[item.pk].probabilities) == len(value["spans"])
        with_spans += bool(value["spans"])
    assert with_spans >= 25
    marginals = [
        p.marginals
        for p in model_version_backend(version).predict_marginals(span_documents([i.text for i in pool]))
    ]
    expected = sequence_scores("least_confidence", marginals)
    np.testing.assert_allclose([item.priority for item in pool], expected, atol=1e-9)
    np.testing.assert_allclose([predictions[i.pk].score for i in pool], 1 - expected, atol=1e-9)
    assert len(set(np.round(expected, 6))) > 10  # an order, not a tie


def test_the_queue_api_serves_the_least_certain_text_first_with_its_span_proposal(trained):
    project, run = trained
    # The strategy's order alone: no random-slice draw (annotate/queue_order.py), none held out.
    project.items.filter(pick_kind="random").update(pick_kind="queue")
    Project.objects.filter(pk=project.pk).update(random_share=0, random_slice_open=False)
    annotator = UserFactory()
    project.memberships.create(user=annotator, role="annotator")
    api = APIClient()
    api.force_authenticate(annotator)
    shown = api.post(f"/api/projects/{project.pk}/next/", {"exclude": []}, format="json").json()["item"]
    top = Prediction.objects.filter(model_version=run.model_version).order_by("-uncertainty", "item_id")[0]
    assert shown["id"] == top.item_id
    proposal = shown["proposal"]
    assert proposal["value"] == top.value and proposal["value"]["spans"]
    assert (proposal["model_version_id"], proposal["model_version_number"]) == (
        run.model_version.pk,
        run.model_version.number,
    )
    body = {"item": shown["id"], "value": proposal["value"], "proposal": proposal}
    assert api.post(f"/api/projects/{project.pk}/annotations/", body, format="json").status_code == 201


def test_the_model_card_shows_entity_metrics_per_label(client, trained):
    project, run = trained
    client.force_login(_lead(project))
    page = client.get(reverse("annotate:project", args=[project.pk]))
    assert page.status_code == 200
    assert 'id="span-metrics"' in page.text and "entity F1" in page.text
    for name in LABELS:
        assert f'<th scope="row">{name}</th>' in page.text
    api = APIClient()
    api.force_authenticate(_lead(project))
    versions = api.get(f"/api/projects/{project.pk}/model-versions/").json()
    assert versions[0]["metrics"]["per_class"]["PER"]["support"] > 0


def test_a_spans_project_with_too_few_labels_says_what_it_needs():
    project = spans_project(labeled=4)
    with pytest.raises(NotEnoughLabels, match="trains from 10 labeled texts with at least 2 spans"):
        model_version_train(project=project)
    assert not ModelVersion.objects.filter(project=project).exists()


def _to_place(n, spans):
    """Every 10th text's organisation labeled as a place instead (a disputed entity)."""
    if n % 10 or not any(s["label"] == "ORG" for s in spans):
        return spans
    return [{**s, "label": "LOC"} if s["label"] == "ORG" else s for s in spans]


def _drop_org(n, spans):
    """Every 10th text's organisation left unlabeled (an entity missing from the label)."""
    return spans if n % 10 else [s for s in spans if s["label"] != "ORG"]


@pytest.mark.parametrize("corrupt", [_to_place, _drop_org], ids=["relabeled", "missing"])
def test_labeled_spans_the_model_confidently_disputes_are_flagged_per_entity_for_review(corrupt):
    project = spans_project(labeled=160, corrupt=corrupt)
    version = model_version_train(project=project)
    train, _ = make_split(n_train=160, n_test=1, seed=11)
    changed = {f"s{n}" for n, s in enumerate(train) if corrupt(n, s.spans) != s.spans}
    assert len(changed) >= 8
    items = {item.external_id: item for item in Item.objects.filter(project=project)}
    flagged = {key for key, item in items.items() if item.suspicion is not None}
    found = flagged & changed
    assert len(found) >= 0.7 * len(changed), (len(found), len(changed))
    assert len(flagged - changed) <= len(changed)  # not every label is doubted
    for key in found:
        item = items[key]
        assert item.review_state == "queued"
        # The alternative puts the organisation back (the model's entity over the flagged tokens).
        assert any(s["label"] == "ORG" for s in item.suspect_value["spans"]), item.suspect_value
    assert min(items[k].review_priority for k in found) > np.median(
        [items[k].review_priority for k in items if k not in flagged]
    )
    issues = version.metrics["label_issues"]
    kind = "entities_disputed" if corrupt is _to_place else "entities_missing"
    assert issues["flagged"] == len(flagged) and issues[kind] >= len(found)


# Boxes: no model in this issue --------------------------------------------------------------


@pytest.fixture
def boxes_project():
    return make_project(task_type=Project.TaskType.IMAGE_BOXES, labels=["cat", "dog"], retrain_every=1)


def test_a_boxes_training_request_is_refused_with_the_message_and_nothing_stored(
    boxes_project, client, django_capture_on_commit_callbacks
):
    lead = _lead(boxes_project)
    with django_capture_on_commit_callbacks() as callbacks, pytest.raises(NoModelForTask) as refused:
        training_run_request(project=boxes_project, trigger="test")
    assert (
        str(refused.value)
        == NO_BOX_MODEL
        == ("no box model yet: boxes get proposals from imported predictions (pre-annotations)")
    )
    api = APIClient()
    api.force_authenticate(lead)
    response = api.post(f"/api/projects/{boxes_project.pk}/training-runs/")
    assert (response.status_code, response.json()) == (409, {"detail": NO_BOX_MODEL})
    client.force_login(lead)
    page = client.post(reverse("training:run-request", args=[boxes_project.pk]), HTTP_HX_REQUEST="true")
    assert page.status_code == 200 and NO_BOX_MODEL in page.text and "Retrain now" not in page.text
    lead.is_staff = True
    lead.save()
    admin = client.post(
        reverse("admin:annotate_project_changelist"),
        {"action": "retrain_now", "_selected_action": [boxes_project.pk]},
        follow=True,
    )
    assert admin.status_code == 200 and NO_BOX_MODEL in admin.text
    assert training_auto_request(project=boxes_project) is None
    assert not TrainingRun.objects.filter(project=boxes_project).exists()
    assert not ModelVersion.objects.exists() and callbacks == []


def test_a_boxes_project_page_says_there_is_no_box_model_and_offers_no_retrain(boxes_project, client):
    client.force_login(_lead(boxes_project))
    page = client.get(reverse("annotate:project", args=[boxes_project.pk]))
    assert page.status_code == 200
    assert 'id="no-box-model"' in page.text and "pre-annotations" in page.text
    assert "Retrain now" not in page.text


def test_a_spans_project_request_queues_a_run_as_a_text_projects_does(django_capture_on_commit_callbacks):
    project = spans_project(labeled=12)
    with django_capture_on_commit_callbacks() as callbacks:
        run, created = training_run_request(project=project, trigger="test")
    assert created and run.status == "queued" and len(callbacks) == 1


def test_a_spans_run_measures_the_random_curve_by_exact_match_on_the_slice_texts():
    project = spans_project(labeled=80)
    ids = list(project.items.order_by("id").values_list("pk", flat=True))[::2]  # 40 slice texts
    Item.objects.filter(pk__in=ids).update(pick_kind=PickKind.RANDOM)
    version = model_version_train(project=project)
    m = version.metrics
    assert 0.5 <= m["exact_match"] <= 1.0  # templated sentences: most texts come out whole
    curve = m["random_curve"]
    assert curve["slice_labels"] == 40 and curve["model_labels"] == 80
    # Nested subsets of each fold's 32 training texts.
    assert [p["n"] for p in curve["points"]] == [round(f * 32, 1) for f in RANDOM_CURVE_FRACTIONS]
    assert curve["points"][-1]["accuracy"] > curve["points"][0]["accuracy"]
    assert curve["target"] == m["exact_match"] and curve["target_source"] == "cross-validated"
    assert curve["status"] in {"estimated", "beyond the fitted range", "unreachable"}
