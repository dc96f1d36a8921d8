"""The random slice's estimate of the model's accuracy (issue 15): the hidden prediction recorded
when a slice item is served, the per-version estimate with its Wilson interval, the learning
curve on the project page and the stopping advice."""

import pytest
from rest_framework.test import APIClient

from annotate import queue
from annotate.models import Assignment, Item, PickKind
from annotate.queue import random_slice_redraw
from tests.factories import AssignmentFactory, UserFactory, make_project
from training.evaluation import wilson_interval
from training.models import DatasetSnapshot, ModelVersion, Prediction
from training.proposals import random_slice_estimates, random_slice_report

pytestmark = pytest.mark.django_db

POS, NEG = {"choices": ["positive"]}, {"choices": ["negative"]}


class _Always:
    def __init__(self, value: float):
        self.value = value

    def random(self) -> float:
        return self.value


def _project(items=200):
    lead, annotator = UserFactory(), UserFactory()
    project = make_project(
        items=items, random_share=0.1, members=[(lead, "manager"), (annotator, "annotator")]
    )
    return project, lead, annotator


def _version(project, number, *, active=False, n_train=100):
    snapshot = DatasetSnapshot.objects.create(
        project=project, classes=["positive", "negative"], item_ids=[], values=[], validation_ids=[],
        fingerprint=f"t{number}",
    )  # fmt: skip
    metrics = {"n_train": n_train, "accuracy": 0.9, "accuracy_ci": [0.8, 0.95], "macro_f1": 0.9}
    return ModelVersion.objects.create(
        project=project, number=number, backend="test", dataset=snapshot, artifact_path="t",
        is_active=active, metrics=metrics,
    )  # fmt: skip


def _served(item, version, *, predicted, truth, annotator):
    """A slice item served under `version` (its hidden prediction recorded), then labeled `truth`."""
    Item.objects.filter(pk=item.pk).update(
        pick_kind=PickKind.RANDOM, final_value=truth, final_source="single", is_complete=True
    )
    AssignmentFactory(
        item=item, annotator=annotator, status=Assignment.Status.SUBMITTED, slice_value=predicted,
        slice_model_version_id=version.pk,
    )  # fmt: skip


def _predict(version, items, value_of):
    Prediction.objects.bulk_create(
        Prediction(item=i, model_version=version, value=value_of(i), probabilities=[0.5, 0.5], score=0.5,
                   uncertainty=0.5)
        for i in items
    )  # fmt: skip


def test_the_estimate_is_the_hand_count_with_its_wilson_interval():
    project, _, annotator = _project(items=40)
    v1, v2 = _version(project, 1, n_train=50), _version(project, 2, active=True, n_train=90)
    items = list(project.items.order_by("id"))
    for i, item in enumerate(items[:10]):  # v1: 7 of 10 right
        _served(item, v1, predicted=POS, truth=POS if i < 7 else NEG, annotator=annotator)
    for item in items[10:15]:  # v2: 5 of 5 right
        _served(item, v2, predicted=NEG, truth=NEG, annotator=annotator)
    # Served first under v1 (right), again under v2 (wrong): it counts once, for v1.
    _served(items[15], v1, predicted=POS, truth=POS, annotator=annotator)
    AssignmentFactory(item=items[15], annotator=UserFactory(), status="submitted", slice_value=NEG,
                      slice_model_version_id=v2.pk)  # fmt: skip
    # Served but not labeled yet: not counted.
    Item.objects.filter(pk=items[16].pk).update(pick_kind=PickKind.RANDOM)
    AssignmentFactory(item=items[16], annotator=annotator, slice_value=POS, slice_model_version_id=v2.pk)
    first, second = random_slice_estimates(project=project)
    assert (first.number, first.n, first.correct, first.n_labels) == (1, 11, 8, 50)
    assert (first.low, first.high) == pytest.approx(wilson_interval(8, 11))
    assert (second.number, second.n, second.correct, second.accuracy) == (2, 5, 5, 1.0)


def test_serving_a_slice_item_records_the_active_versions_prediction_once(monkeypatch):
    project, _, annotator = _project(items=60)
    version = _version(project, 1, active=True)
    _predict(version, project.items.all(), lambda i: NEG)
    random_slice_redraw(project_id=project.pk)
    monkeypatch.setattr(queue, "_random", _Always(0.0))
    api = APIClient()
    api.force_authenticate(annotator)
    body = api.post(f"/api/projects/{project.pk}/next/", {}, format="json").json()
    assert body["item"]["random_slice"] and body["item"]["proposal"] is None
    lease = Assignment.objects.get(item_id=body["item"]["id"])
    assert (lease.slice_value, lease.slice_model_version_id) == (NEG, version.pk)
    # A new version active before the page reloads: the first serve's prediction stands.
    ModelVersion.objects.filter(pk=version.pk).update(is_active=False)
    later = _version(project, 2, active=True)
    _predict(later, project.items.all(), lambda i: POS)
    again = api.post(f"/api/projects/{project.pk}/next/", {}, format="json").json()
    assert again["item"]["id"] == body["item"]["id"]
    lease.refresh_from_db()
    assert (lease.slice_value, lease.slice_model_version_id) == (NEG, version.pk)


def _three_flat_versions(project, annotator, *, agree: bool):
    versions = [_version(project, n, active=n == 3, n_train=100 * n) for n in (1, 2, 3)]
    items = list(project.items.order_by("id"))
    for k, version in enumerate(versions):  # 34 of 40 right under each version: flat
        for i, item in enumerate(items[40 * k : 40 * k + 40]):
            _served(item, version, predicted=POS, truth=POS if i < 34 else NEG, annotator=annotator)
    pool = items[120:]
    _predict(versions[1], pool, lambda i: POS if i.pk % 2 else NEG)
    _predict(versions[2], pool, lambda i: (POS if i.pk % 2 else NEG) if agree else (NEG if i.pk % 3 else POS))
    return versions


def test_the_page_shows_the_slice_curve_and_the_stopping_advice_when_predictions_agree_and_accuracy_is_flat(
    client,
):
    project, lead, annotator = _project(items=200)
    _three_flat_versions(project, annotator, agree=True)
    report = random_slice_report(project=project, active=ModelVersion.objects.get(project=project, number=3))
    assert report.kappa == pytest.approx(1.0) and report.advice is not None
    client.force_login(lead)
    page = client.get(f"/projects/{project.pk}/").content.decode()
    assert 'id="random-slice-curve"' in page and "Random-slice accuracy" in page
    assert 'id="stopping-advice"' in page
    assert "predictions agree κ = 1.00 with the previous version; estimated accuracy 0.85 ±" in page
    assert "flat over the last 3 versions" in page and f"/projects/{project.pk}/export/" in page


def test_no_stopping_advice_while_the_predictions_still_change(client):
    project, lead, annotator = _project(items=200)
    _three_flat_versions(project, annotator, agree=False)
    client.force_login(lead)
    page = client.get(f"/projects/{project.pk}/").content.decode()
    assert 'id="random-slice-curve"' in page and 'id="random-slice-estimate"' in page
    assert 'id="stopping-advice"' not in page


def test_no_stopping_advice_while_the_estimate_still_climbs():
    project, _, annotator = _project(items=200)
    versions = _three_flat_versions(project, annotator, agree=True)
    # v3 now right on all 40 of its items: 1.0 lies outside v1's interval around 0.85.
    Item.objects.filter(assignments__slice_model_version_id=versions[2].pk).update(final_value=POS)
    report = random_slice_report(project=project, active=versions[2])
    assert report.active.accuracy == 1.0 and report.advice is None


def test_no_slice_figures_before_any_slice_item_is_labeled(client):
    project, lead, _ = _project(items=20)
    _version(project, 1, active=True)
    client.force_login(lead)
    page = client.get(f"/projects/{project.pk}/").content.decode()
    assert 'id="random-slice-curve"' not in page and "No random-slice estimate for this version yet" in page


def test_the_kappa_is_measured_once_when_the_pool_is_scored_and_read_back_by_the_page():
    from training.proposals import pool_agreement, pool_agreement_store

    project, _, annotator = _project(items=200)
    versions = _three_flat_versions(project, annotator, agree=False)
    measured = pool_agreement(version=versions[2])
    assert measured is not None and measured < 0.95
    assert pool_agreement_store(version=versions[2]) == measured
    assert pool_agreement_store(version=versions[0]) is None  # no version before the first
    # The page reads the stored figure: predictions that changed since do not move it.
    Prediction.objects.filter(model_version=versions[2]).update(value=POS)
    versions[2].refresh_from_db()
    assert versions[2].metrics["pool_agreement"] == {"previous_id": versions[1].pk, "kappa": measured}
    assert random_slice_report(project=project, active=versions[2]).kappa == measured
    # Measured against another previous version, it is measured afresh.
    versions[1].delete()
    assert pool_agreement(version=versions[2]) != measured


def test_a_spans_project_is_estimated_by_exact_match_of_each_texts_spans(client):
    lead, annotator = UserFactory(), UserFactory()
    project = make_project(
        task_type="text_spans", labels=["PER", "LOC"], items=20, random_share=0.1,
        members=[(lead, "manager"), (annotator, "annotator")],
    )  # fmt: skip
    version = _version(project, 1, active=True, n_train=30)
    version.metrics = {**version.metrics, "task": "spans", "f1": 0.8, "per_class": {}, "exact_match": 0.6}
    version.save(update_fields=["metrics"])
    ann = {"start": 0, "end": 3, "label": "PER"}
    other = {"start": 5, "end": 9, "label": "LOC"}
    cases = [
        ({"spans": [ann, other]}, {"spans": [other, ann]}, True),  # the same spans, in another order
        ({"spans": [ann]}, {"spans": [ann]}, True),
        ({"spans": []}, {"spans": []}, True),  # nothing to find, nothing found
        ({"spans": [ann]}, {"spans": [{**ann, "label": "LOC"}]}, False),  # wrong label
        ({"spans": [ann]}, {"spans": [{**ann, "end": 4}]}, False),  # wrong end
        ({"spans": [ann, other]}, {"spans": [ann]}, False),  # one missed
    ]
    for item, (predicted, truth, _) in zip(project.items.order_by("id"), cases, strict=False):
        _served(item, version, predicted=predicted, truth=truth, annotator=annotator)
    (estimate,) = random_slice_estimates(project=project)
    assert (estimate.n, estimate.correct) == (6, sum(right for *_, right in cases))
    report = random_slice_report(project=project, active=version)
    client.force_login(lead)
    page = client.get(f"/projects/{project.pk}/").content.decode()
    assert f"Estimated on the random slice: {report.measure} <strong>0.500</strong>" in page
    assert "texts with every span right 0.600" in page  # the cross-validated figure beside it
    assert "texts whose spans are all right" in report.measure
