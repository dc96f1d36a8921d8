"""How many labels random sampling would have needed (issue 15): the curve a − b·n^(−c) fitted
and inverted (training/random_curve.py), the training run that measures it on the random-slice
labels, and the project page that shows the estimate or why there is none."""

import math

import numpy as np
import pytest
from django.urls import reverse

from annotate.models import Assignment, Item, PickKind
from tests.factories import AssignmentFactory
from tests.training.projects import digits_project, reviews_project
from training.proposals import random_slice_report
from training.random_curve import (
    IMAGE_SLICE_MAX,
    MIN_SLICE_LABELS,
    RANDOM_CURVE_FRACTIONS,
    curve_fit_power,
    labels_needed,
    nested_fold_points,
    random_curve_estimate,
    random_curve_for_page,
    random_curve_measure,
)
from training.versions import model_version_train

A, B, C = 0.9, 2.0, 0.7


def _exact(ns, a=A, b=B, c=C):
    return [{"n": float(n), "accuracy": a - b * n ** (-c)} for n in ns]


# The fit and its inversion (no database) ---------------------------------------------------------


def test_the_fit_recovers_the_parameters_of_exact_points():
    fit = curve_fit_power(_exact([10, 20, 40, 80, 160]))
    assert fit["kind"] == "power"
    assert fit["a"] == pytest.approx(A, abs=1e-4)
    assert fit["b"] == pytest.approx(B, rel=1e-3)
    assert fit["c"] == pytest.approx(C, rel=1e-3)


def test_the_fit_keeps_to_its_bounds_on_a_curve_above_one():
    fit = curve_fit_power(_exact([10, 20, 40, 80], a=1.2, b=3.0, c=0.5))
    assert fit["kind"] == "power" and 0 < fit["a"] <= 1.0 and fit["b"] >= 0 and 0 < fit["c"] <= 2.0


def test_the_inversion_is_the_n_where_the_curve_reaches_the_target():
    fit = {"kind": "power", "a": A, "b": B, "c": C}
    assert labels_needed(fit, 0.85) == pytest.approx((B / (A - 0.85)) ** (1 / C))
    assert A - B * labels_needed(fit, 0.8) ** (-C) == pytest.approx(0.8)
    assert labels_needed(fit, 0.9) is None  # the plateau itself is never reached
    assert labels_needed({"kind": "log", "p": 0.2, "q": 0.1}, 0.6) == pytest.approx(math.exp(4))


def test_the_estimate_rounds_up_and_says_when_it_extrapolates_past_three_times_the_largest_n():
    points = _exact([10, 20, 40, 80])
    fit = {"kind": "power", "a": A, "b": B, "c": C}
    inside = random_curve_estimate(points=points, fit=fit, target=0.85, target_source="cross-validated")
    assert inside["status"] == "estimated"
    assert inside["labels_needed"] == math.ceil((B / (A - 0.85)) ** (1 / C)) == 195
    far = random_curve_estimate(points=points, fit=fit, target=0.89, target_source="cross-validated")
    assert far["status"] == "beyond the fitted range" and far["labels_needed"] > 3 * 80
    never = random_curve_estimate(points=points, fit=fit, target=0.95, target_source="random slice")
    assert never["status"] == "unreachable" and never["labels_needed"] is None


def test_one_label_count_is_not_enough_points():
    fit = curve_fit_power([{"n": 12.0, "accuracy": 0.6}, {"n": 12.0, "accuracy": 0.7}])
    assert fit["kind"] == "none" and "not enough points" in fit["reason"]
    estimate = random_curve_estimate(points=[], fit=fit, target=0.8, target_source="cross-validated")
    assert estimate["status"] == "no fit" and estimate["labels_needed"] is None


def test_a_curve_that_does_not_rise_cannot_be_inverted():
    fit = curve_fit_power([{"n": n, "accuracy": acc} for n, acc in [(10, 0.7), (20, 0.65), (40, 0.6)]])
    assert fit["kind"] == "none"


def test_two_label_counts_fall_back_to_a_log_fit():
    fit = curve_fit_power([{"n": 10.0, "accuracy": 0.6}, {"n": 100.0, "accuracy": 0.8}])
    assert fit["kind"] == "log"
    assert labels_needed(fit, 0.7) == pytest.approx(math.sqrt(10 * 100), rel=1e-6)


def test_the_page_re_inverts_at_the_slice_estimate_when_there_is_one():
    points = _exact([10, 20, 40, 80])
    stored = {"points": points, "fit": {"kind": "power", "a": A, "b": B, "c": C}, "slice_labels": 60,
              **random_curve_estimate(points=points, fit={"kind": "power", "a": A, "b": B, "c": C},
                                      target=0.8, target_source="cross-validated")}  # fmt: skip
    assert random_curve_for_page(metrics={"random_curve": stored}, slice_accuracy=None) == stored
    page = random_curve_for_page(metrics={"random_curve": stored}, slice_accuracy=0.85)
    assert page["target_source"] == "random slice" and page["labels_needed"] == 195
    assert random_curve_for_page(metrics={}, slice_accuracy=0.85) is None


# A training run on a real project -----------------------------------------------------------------


@pytest.fixture
def sliced(db):
    """300 labeled review snippets, 80 of them random-slice items (every third by id)."""
    project = reviews_project(n=300)
    ids = list(project.items.order_by("id").values_list("pk", flat=True))[::3][:80]
    Item.objects.filter(pk__in=ids).update(pick_kind=PickKind.RANDOM)
    return project, ids


@pytest.mark.django_db
def test_a_run_with_enough_slice_labels_stores_the_curve_and_the_page_shows_the_estimate(client, sliced):
    project, slice_ids = sliced
    version = model_version_train(project=project)
    curve = version.metrics["random_curve"]
    assert curve["slice_labels"] == 80 and curve["model_labels"] == 300
    # Nested subsets of each fold's 64 training items: 16, 32, 48, 64.
    assert [p["n"] for p in curve["points"]] == [round(f * 64, 1) for f in RANDOM_CURVE_FRACTIONS]
    assert all(0.0 <= p["accuracy"] <= 1.0 for p in curve["points"])
    # A quality floor: the slice labels alone learn something (two balanced classes).
    assert curve["points"][-1]["accuracy"] > 0.55
    assert curve["target"] == pytest.approx(version.metrics["accuracy"], abs=1e-4)
    assert curve["target_source"] == "cross-validated"
    assert curve["fit"]["kind"] in {"power", "log"}
    if curve["status"] in {"estimated", "beyond the fitted range"}:
        assert curve["labels_needed"] >= 1
    else:
        assert curve["status"] == "unreachable" and curve["reason"]

    client.force_login(project.memberships.get(role="manager").user)
    page = client.get(reverse("annotate:project", args=[project.pk])).text
    assert 'id="random-curve-estimate"' in page
    if curve["labels_needed"]:
        assert f"would have needed about <strong>{curve['labels_needed']}</strong> labels" in page
        assert "fitted on the 80 random-slice labels; the model used 300" in page
    else:
        assert curve["reason"] in page


@pytest.mark.django_db
def test_the_page_inverts_at_the_active_versions_slice_estimate(sliced):
    project, slice_ids = sliced
    version = model_version_train(project=project)
    annotator = project.memberships.get(role="annotator").user
    # 20 slice items served under the version before their label, 15 predicted right.
    for n, item in enumerate(Item.objects.filter(pk__in=slice_ids).order_by("id")[:20]):
        wrong = {"choices": ["rotten" if item.final_value["choices"] == ["fresh"] else "fresh"]}
        AssignmentFactory(
            item=item, annotator=annotator, status=Assignment.Status.SUBMITTED,
            slice_value=item.final_value if n < 15 else wrong, slice_model_version_id=version.pk,
        )  # fmt: skip
    report = random_slice_report(project=project, active=version)
    assert report.active.accuracy == pytest.approx(0.75)
    assert report.random_curve["target_source"] == "random slice"
    assert report.random_curve["target"] == pytest.approx(0.75)
    assert report.random_curve["fit"] == version.metrics["random_curve"]["fit"]


@pytest.mark.django_db
def test_without_slice_labels_there_is_no_estimate_and_the_page_says_why(client):
    project = reviews_project(n=150)
    version = model_version_train(project=project)
    curve = version.metrics["random_curve"]
    assert curve["status"] == "too few" and curve["slice_labels"] == 0 and "points" not in curve
    assert curve.get("labels_needed") is None
    client.force_login(project.memberships.get(role="manager").user)
    page = client.get(reverse("annotate:project", args=[project.pk])).text
    assert (
        "No estimate of the labels random sampling would have needed: 0 labeled random-slice items,"
        f" {MIN_SLICE_LABELS} needed" in page
    )


@pytest.mark.django_db
def test_a_few_slice_labels_are_not_enough(sliced):
    project, slice_ids = sliced
    Item.objects.filter(pk__in=slice_ids[MIN_SLICE_LABELS - 1 :]).update(pick_kind=PickKind.QUEUE)
    curve = model_version_train(project=project).metrics["random_curve"]
    assert curve["status"] == "too few" and curve["slice_labels"] == MIN_SLICE_LABELS - 1


@pytest.mark.django_db
def test_an_image_project_gets_a_smaller_curve_on_at_most_150_slice_labels():
    import torch

    from training.backends.image import ImageCNNBackend
    from training.datasets import dataset_snapshot_create
    from training.versions import _targets, model_inputs

    torch.set_num_threads(1)
    project = digits_project(n=240)
    ids = list(project.items.order_by("id").values_list("pk", flat=True))[:180]
    Item.objects.filter(pk__in=ids).update(pick_kind=PickKind.RANDOM)
    snapshot = dataset_snapshot_create(project=project)
    params = {
        "epochs": 4,
        "device": "cpu",
        "early_stopping": False,
    }  # a quick CNN: the schedule is under test
    X = model_inputs(project=project, backend=ImageCNNBackend(**params), item_ids=list(snapshot.item_ids))
    Y = _targets(snapshot.values, snapshot.classes, snapshot.multi_label)
    curve = random_curve_measure(
        project=project, snapshot=snapshot, X=X, Y=Y, make_backend=lambda: ImageCNNBackend(**params),
        target=0.9,
    )  # fmt: skip
    assert curve["slice_labels"] == 180 and curve["slice_labels_used"] == IMAGE_SLICE_MAX == 150
    # 3 folds of 150: nested thirds of each fold's 100 training images.
    assert [p["n"] for p in curve["points"]] == [33.0, 67.0, 100.0]
    assert curve["points"][-1]["accuracy"] > 0.3  # ten classes: far above chance even so
    assert curve["status"] in {"estimated", "beyond the fitted range", "unreachable", "no fit"}


def test_a_trained_only_row_trains_every_fold_of_the_curve_and_is_judged_by_none():
    fold_of = np.asarray([0, 1, 0, 1, -1])
    calls = []

    def right_count(rows, held_out):
        calls.append((rows.tolist(), held_out.tolist()))
        return len(held_out)  # every judged row right

    points = nested_fold_points(fold_of=fold_of, fractions=[1.0], seed=0, right_count=right_count)
    assert points == [{"n": 3.0, "accuracy": 1.0}]  # 4 judged rows, not 5
    assert all(4 in rows and 4 not in held_out for rows, held_out in calls)
