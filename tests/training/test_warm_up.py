"""The warm-up (training/scoring.py): a single-label classification project samples its pool at
random until two consecutive versions' pool predictions agree κ ≥ KAPPA_WARM_UP; from then on
its strategy orders the pool, and the version's metrics["queue_order"] say which order it got."""

import numpy as np
import pytest
from django.urls import reverse

from annotate.models import Item
from tests.training.projects import reviews_project
from training import scoring
from training.models import DatasetSnapshot, ModelVersion, Prediction
from training.scoring import KAPPA_WARM_UP, prediction_pool_score, warm_up_over
from training.versions import model_version_activate, model_version_train

pytestmark = pytest.mark.django_db


def _pool(project, version):
    """The open items' priorities and stored uncertainties (margins), in id order."""
    pool = Item.objects.filter(project=project, is_complete=False).order_by("id")
    priority = dict(pool.values_list("id", "priority"))
    stored = dict(Prediction.objects.filter(model_version=version).values_list("item_id", "uncertainty"))
    ids = sorted(priority)
    return np.array([priority[i] for i in ids]), np.array([stored[i] for i in ids])


def test_the_first_version_of_a_margin_project_orders_its_pool_at_random():
    project = reviews_project(n=200, labeled=60)
    version = model_version_train(project=project)
    assert prediction_pool_score(version=version) == 140
    version.refresh_from_db()
    assert version.metrics["queue_order"] == {
        "strategy": "random", "warm_up": True, "kappa": None, "kappa_needed": KAPPA_WARM_UP,
    }  # fmt: skip
    priority, margin = _pool(project, version)
    # The margins are stored for the page and the proposals; the queue's order is not theirs.
    assert not np.allclose(priority, margin)
    assert abs(np.corrcoef(priority, margin)[0, 1]) < 0.3
    assert priority.min() >= 0 and priority.max() < 1


def test_a_version_that_agrees_with_the_previous_one_ends_the_warm_up_for_good():
    project = reviews_project(n=200, labeled=60)
    first = model_version_train(project=project)
    prediction_pool_score(version=first)
    # The same labels and seed: the same model, so its pool predictions agree κ = 1.
    second = model_version_train(project=project)
    prediction_pool_score(version=second)
    second.refresh_from_db()
    assert second.metrics["pool_agreement"]["kappa"] == 1.0
    assert second.metrics["queue_order"] == {"strategy": "margin", "warm_up": False}
    priority, margin = _pool(project, second)
    np.testing.assert_allclose(priority, margin)
    # A later version that agrees less does not start the warm-up again.
    third = model_version_train(project=project)
    assert warm_up_over(version=third, kappa=0.1)
    ModelVersion.objects.filter(pk=second.pk).update(
        metrics={**second.metrics, "pool_agreement": {"kappa": 0.79}}
    )
    assert not warm_up_over(version=third, kappa=0.1) and not warm_up_over(version=third, kappa=None)
    assert warm_up_over(version=third, kappa=KAPPA_WARM_UP)


def test_a_random_project_and_a_multi_label_one_have_no_warm_up():
    project = reviews_project(n=150, labeled=60)
    project.sampling_strategy = "random"
    project.save(update_fields=["sampling_strategy"])
    version = model_version_train(project=project)
    prediction_pool_score(version=version)
    version.refresh_from_db()
    assert version.metrics["queue_order"] == {"strategy": "random", "warm_up": False}

    # Multi-label predictions are sets of choices, which rarely agree whole: no warm-up there.
    project.sampling_strategy = "margin"
    snapshot = DatasetSnapshot(classes=["fresh", "rotten"], multi_label=True)
    multi = ModelVersion(project=project, number=2, dataset=snapshot)
    assert not scoring._warms_up(project=project, version=multi, strategy="margin")
    assert scoring._warms_up(project=project, version=version, strategy="margin")


def test_random_scores_draw_afresh_in_each_batch_of_the_pool(monkeypatch):
    monkeypatch.setattr(scoring, "KAPPA_WARM_UP", 0)  # random by strategy, not by warm-up
    project = reviews_project(n=160, labeled=60)
    project.sampling_strategy = "random"
    project.save(update_fields=["sampling_strategy"])
    version = model_version_train(project=project)
    assert prediction_pool_score(version=version, batch_size=50) == 100
    priority, _ = _pool(project, version)
    # One seed for every batch drew the same 50 numbers in each.
    assert not np.allclose(priority[:50], priority[50:])


def test_the_project_page_says_the_queue_is_random_while_the_model_settles(client):
    project = reviews_project(n=200, labeled=60)
    client.force_login(project.memberships.get(role="manager").user)
    url = reverse("annotate:project", args=[project.pk])
    first = model_version_train(project=project, activate=False)
    prediction_pool_score(version=first)
    model_version_activate(version=first)
    text = client.get(url).text
    assert "Queue order: <strong>random while the model settles</strong>: there is no version before" in text
    assert "margin orders the queue from the first version that agrees κ ≥ 0.80" in text
    second = model_version_train(project=project, activate=False)
    prediction_pool_score(version=second)
    model_version_activate(version=second)
    assert '<p id="queue-order">Queue order: margin.</p>' in client.get(url).text


def test_while_a_label_is_missing_the_queue_looks_for_it_warm_up_or_not():
    from annotate.models import Label

    project = reviews_project(n=200, labeled=60)
    Label.objects.create(project=project, name="neutral", order=9)  # no item carries it yet
    version = model_version_train(project=project)
    prediction_pool_score(version=version)
    version.refresh_from_db()
    assert version.metrics["queue_order"] == {"strategy": "margin_diversity", "warm_up": False}
    priority, _ = _pool(project, version)
    assert (priority > 1).sum() == 140  # all candidates (fewer than the prefilter), ranked in (1, 2]
