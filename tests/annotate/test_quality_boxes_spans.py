"""Label quality for boxes and spans through the real database: agreement from the tallies on
hand-computed cases (and against the krippendorff package), the consensus and final label for
1, 2 and 3 voters, the tallies equal to a recount after every kind of change, gold per entity,
offsets checked against the item's text, and the dashboards."""

import io
import random

import krippendorff
import pytest
from django.core.exceptions import ValidationError

from annotate import queue
from annotate.dashboards import CHARTS, dashboard_read
from annotate.gold import item_gold_clear, item_gold_set
from annotate.importing.images import import_images
from annotate.items import item_create_bulk
from annotate.models import Item, Membership, Project
from annotate.quality.agreement import project_agreement
from annotate.quality.consensus import disagree, final_of
from annotate.quality.votes import OVERLAP_SCOPE
from annotate.queue import annotation_submit, assignment_next
from annotate.review import review_decide
from tests.annotate.test_review import assert_kept_right
from tests.annotate.uploads import image
from tests.factories import UserFactory, make_project

LABELS = ("PER", "ORG", "LOC")
TEXT = "Ada Lovelace met Charles Babbage in London."  # 43 code points


def box(x, y, w, h, label="PER"):
    return {"x": x, "y": y, "w": w, "h": h, "label": label}


def span(start, end, label="PER"):
    return {"start": start, "end": end, "label": label}


def _project(task_type, *, overlap=2, annotators=2, items=2, **fields):
    users = [UserFactory() for _ in range(annotators)]
    reviewer = UserFactory()
    project = make_project(
        labels=LABELS,
        task_type=task_type,
        overlap=overlap,
        members=[(u, "annotator") for u in users] + [(reviewer, "reviewer")],
        **fields,
    )
    if task_type == Project.TaskType.IMAGE_BOXES:
        import_images(
            project=project, files=[(f"d{i}.png", io.BytesIO(image(size=(40, 30)))) for i in range(items)]
        )
    else:
        item_create_bulk(project=project, rows=[{"external_id": f"d{i}", "text": TEXT} for i in range(items)])
    return project, users, reviewer


def _label(project, user, value, item_id=None):
    lease = assignment_next(project=project, annotator=user)
    return annotation_submit(project=project, item_id=item_id or lease.item.pk, annotator=user, value=value)


# --- agreement, by hand and against krippendorff -------------------------------------------


@pytest.mark.django_db
def test_box_agreement_counts_matched_pairs_and_missing_boxes():
    project, (a, b), _ = _project(Project.TaskType.IMAGE_BOXES, items=1)
    # a and b agree on two PER boxes (IoU 1 and 0.14 / 0.18 = 0.78); a's ORG box and b's ORG
    # box do not overlap at all, so each is missing for the other: four clusters,
    #   (PER, PER), (PER, PER), (ORG, missing), (missing, ORG).
    _label(
        project, a, {"boxes": [box(0, 0, 0.4, 0.4), box(0.5, 0.5, 0.2, 0.2), box(0.8, 0, 0.1, 0.1, "ORG")]}
    )
    _label(
        project, b, {"boxes": [box(0.05, 0, 0.4, 0.4), box(0.5, 0.5, 0.2, 0.2), box(0, 0.8, 0.1, 0.1, "ORG")]}
    )
    whole = project_agreement(project=project).scope("")
    # Ordered pairs: (PER, PER) 4, (ORG, -) 2, (-, ORG) 2: n = 8; n_PER 4, n_ORG 2, n_- 2.
    # Percent: 4 / 8. Alpha: 1 - (n - 1) D_o / D_e = 1 - 7 × 4 / (64 - 16 - 4 - 4) = 0.3.
    assert whole.items == 4 and whole.pairs == 8
    assert whole.percent_agreement == pytest.approx(0.5)
    assert whole.krippendorff_alpha == pytest.approx(0.3)
    # Cohen: p_o = 2 / 4, p_e = (2 × 2 + 1 × 1 + 1 × 1) / 16: (0.5 - 0.375) / 0.625 = 0.2.
    (pair,) = whole.pair_figures
    assert (pair.items, pair.agreed) == (4, 2)
    assert pair.cohen_kappa == pytest.approx(0.2)
    # F1: 2 × 2 same-label pairs / (3 + 3 boxes).
    assert pair.f1 == pytest.approx(2 / 3)
    # The same units, "missing" a category of its own, through the reference implementation.
    reference = krippendorff.alpha(
        reliability_data=[[1, 1, 2, 0], [1, 1, 0, 2]], level_of_measurement="nominal"
    )
    assert whole.krippendorff_alpha == pytest.approx(reference)


@pytest.mark.django_db
def test_span_agreement_by_exact_and_by_overlapping_offsets():
    project, users, _ = _project(Project.TaskType.TEXT_SPANS, overlap=3, annotators=3, items=1)
    # "Ada Lovelace" [0, 12), "Charles Babbage" [17, 32), "London" [36, 42).
    values = [
        {"spans": [span(0, 12), span(17, 32), span(36, 42, "LOC")]},
        {"spans": [span(0, 12), span(17, 24), span(36, 42, "ORG")]},
        {"spans": [span(0, 3), span(17, 32), span(36, 42, "LOC")]},
    ]
    for user, value in zip(users, values, strict=True):
        _label(project, user, value)
    figures = project_agreement(project=project)
    # Exact clusters (voters 1, 2, 3): [0,12) P P -; [17,32) P - P; [36,42) L O L; [17,24) - P -;
    # [0,3) - - P. Reliability data with 0 for missing, 1 PER, 2 ORG, 3 LOC:
    exact = [[1, 1, 3, 0, 0], [1, 0, 2, 1, 0], [0, 1, 3, 0, 1]]
    assert figures.scope("").items == 5
    assert figures.scope("").krippendorff_alpha == pytest.approx(
        krippendorff.alpha(reliability_data=exact, level_of_measurement="nominal")
    )
    # Overlap clusters: [0,12)/[0,12)/[0,3) P P P; [17,32)/[17,24)/[17,32) P P P; London L O L.
    overlap = figures.scope(OVERLAP_SCOPE)
    assert overlap.items == 3
    # 3 items × 6 ordered pairs = 18, agreeing: 6 + 6 + 2 = 14.
    assert overlap.percent_agreement == pytest.approx(14 / 18)
    assert overlap.krippendorff_alpha == pytest.approx(
        krippendorff.alpha(reliability_data=[[1, 1, 3], [1, 1, 2], [1, 1, 3]], level_of_measurement="nominal")
    )
    assert overlap.fleiss_items == 3


# --- consensus and the final label ---------------------------------------------------------


def test_span_consensus_for_one_two_and_three_voters():
    one = {"spans": [span(0, 12), span(36, 42, "LOC")]}
    two = {"spans": [span(0, 12)]}
    three = {"spans": [span(0, 12, "ORG"), span(36, 42, "LOC")]}
    assert final_of(votes=[one], multi_label=False) == (one, "single")
    # Two voters: a span is in only when both marked it.
    assert final_of(votes=[one, two], multi_label=False) == ({"spans": [span(0, 12)]}, "consensus")
    # Three: [0, 12) PER by 2 of 3, LOC by 2 of 3, [0, 12) ORG by 1: out.
    assert final_of(votes=[one, two, three], multi_label=False, label_order=LABELS) == (
        {"spans": [span(0, 12), span(36, 42, "LOC")]},
        "consensus",
    )
    # Nothing in common: an empty consensus, never a tie, and a disagreement.
    assert final_of(votes=[two, three], multi_label=False) == ({"spans": []}, "consensus")
    assert disagree([two, three]) and not disagree([two, {"spans": [span(0, 12)]}])


def test_box_consensus_takes_the_median_edges_of_the_agreeing_boxes():
    one = {"boxes": [box(0.1, 0.1, 0.2, 0.2)]}
    two = {"boxes": [box(0.12, 0.1, 0.2, 0.2)]}
    three = {"boxes": [box(0.1, 0.12, 0.2, 0.2, "ORG"), box(0.7, 0.7, 0.2, 0.2)]}
    assert final_of(votes=[one], multi_label=False) == (one, "single")
    # Two voters, IoU 0.036 / 0.044 = 0.82, same label: in, edges the middle of the two.
    value, source = final_of(votes=[one, two], multi_label=False)
    assert source == "consensus"
    assert value["boxes"][0] == pytest.approx(box(0.11, 0.1, 0.2, 0.2))
    # Three: the cluster has PER twice and ORG once (PER in, from the two PER boxes); the far
    # box is one voter's of three: out.
    value, source = final_of(votes=[one, two, three], multi_label=False)
    assert source == "consensus" and len(value["boxes"]) == 1
    assert value["boxes"][0] == pytest.approx(box(0.11, 0.1, 0.2, 0.2))
    assert disagree([one, two, three])
    assert not disagree([one, two])  # matched, same label: equivalent
    # Two labels on one cluster between two voters: no majority, nothing in, no tie.
    assert final_of(votes=[one, {"boxes": [box(0.1, 0.1, 0.2, 0.2, "ORG")]}], multi_label=False) == (
        {"boxes": []},
        "consensus",
    )


# --- kept right after every kind of change -------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("task_type", "first", "second", "third"),
    [
        (
            Project.TaskType.TEXT_SPANS,
            {"spans": [span(0, 12), span(36, 42, "LOC")]},
            {"spans": [span(0, 12, "ORG")]},
            {"spans": [span(17, 32)]},
        ),
        (
            Project.TaskType.IMAGE_BOXES,
            {"boxes": [box(0.1, 0.1, 0.2, 0.2), box(0.6, 0.6, 0.3, 0.3, "LOC")]},
            {"boxes": [box(0.12, 0.1, 0.2, 0.2, "ORG")]},
            {"boxes": [box(0.0, 0.0, 0.5, 0.5)]},
        ),
    ],
)
def test_tallies_equal_a_recount_after_every_kind_of_change(task_type, first, second, third):
    project, (a, b), reviewer = _project(task_type, items=2)
    one = _label(project, a, first)
    assert_kept_right(project)
    _label(project, b, second, item_id=one.item_id)  # disagree
    assert_kept_right(project)
    item = Item.objects.get(pk=one.item_id)
    assert item.disagreement and item.review_state == "queued"
    # a changes their answer to agree with b's (a resubmit).
    annotation_submit(project=project, item_id=one.item_id, annotator=a, value=second)
    assert_kept_right(project)
    item.refresh_from_db()
    assert not item.disagreement and item.final_source == "consensus"
    # Review: accept a's, correct, reject b's, accept b's (taking the reject back).
    annotations = {x.annotator_id: x for x in item.annotations.all()}
    decided = review_decide(
        project=project,
        item_id=item.pk,
        reviewer=reviewer,
        decision="accept",
        supersedes=None,
        annotation_id=annotations[a.pk].pk,
    )
    assert_kept_right(project)
    decided = review_decide(
        project=project,
        item_id=item.pk,
        reviewer=reviewer,
        decision="correct",
        supersedes=decided.pk,
        value=third,
    )
    assert_kept_right(project)
    item.refresh_from_db()
    assert (item.final_value, item.final_source) == (third, "review")
    decided = review_decide(
        project=project,
        item_id=item.pk,
        reviewer=reviewer,
        decision="reject",
        supersedes=decided.pk,
        annotation_id=annotations[b.pk].pk,
        reason="wrong label",
    )
    assert_kept_right(project)
    review_decide(
        project=project,
        item_id=item.pk,
        reviewer=reviewer,
        decision="accept",
        supersedes=decided.pk,
        annotation_id=annotations[b.pk].pk,
    )
    assert_kept_right(project)
    # Gold set on the other item, changed, cleared.
    other = Item.objects.filter(project=project).exclude(pk=item.pk).get()
    item_gold_set(project=project, item_id=other.pk, value=first)
    assert_kept_right(project)
    item_gold_set(project=project, item_id=other.pk, value=third)
    assert_kept_right(project)
    item_gold_clear(project=project, item_id=other.pk)
    assert_kept_right(project)


@pytest.mark.django_db
def test_three_voters_on_spans_give_the_majority_and_the_recount_agrees():
    project, users, _ = _project(Project.TaskType.TEXT_SPANS, overlap=3, annotators=3, items=1)
    values = [
        {"spans": [span(0, 12), span(36, 42, "LOC")]},
        {"spans": [span(0, 12)]},
        {"spans": [span(0, 12, "ORG"), span(36, 42, "LOC")]},
    ]
    for user, value in zip(users, values, strict=True):
        _label(project, user, value)
    item = Item.objects.get(project=project)
    assert (item.final_value, item.final_source, item.disagreement) == (
        {"spans": [span(0, 12), span(36, 42, "LOC")]},
        "consensus",
        True,
    )
    assert_kept_right(project)
    labels = dashboard_read(project=project, charts=["labels"])["labels"]
    assert {lb.label: lb.items for lb in labels.labels} == {"PER": 1, "ORG": 0, "LOC": 1}


# --- offsets checked against the text ------------------------------------------------------


@pytest.mark.django_db
def test_a_correction_or_gold_value_past_the_text_is_refused_naming_the_field():
    project, (a, b), reviewer = _project(Project.TaskType.TEXT_SPANS, items=1)
    one = _label(project, a, {"spans": [span(0, 12)]})
    _label(project, b, {"spans": [span(0, 12)]}, item_id=one.item_id)
    item = Item.objects.get(pk=one.item_id)
    before = (item.final_value, item.final_source, item.last_review_id)
    with pytest.raises(ValidationError) as caught:
        review_decide(
            project=project,
            item_id=item.pk,
            reviewer=reviewer,
            decision="correct",
            supersedes=None,
            value={"spans": [span(36, 44, "LOC")]},
        )
    assert "past the end of the text" in caught.value.message_dict["value.spans[0].end"][0]
    with pytest.raises(ValidationError) as caught:
        item_gold_set(project=project, item_id=item.pk, value={"spans": [span(40, 50)]})
    assert "gold_value.spans[0].end" in caught.value.message_dict
    item.refresh_from_db()
    assert (item.final_value, item.final_source, item.last_review_id) == before
    assert item.pick_kind == "queue" and not item.reviews.exists()
    assert_kept_right(project)


# --- gold per entity -----------------------------------------------------------------------


@pytest.mark.django_db
def test_gold_answers_on_spans_count_entities(monkeypatch):
    monkeypatch.setattr(queue, "_random", random.Random(0))
    monkeypatch.setattr(queue._random, "random", lambda: 0.0)  # every draw is a gold one
    project, (a,), _ = _project(Project.TaskType.TEXT_SPANS, overlap=1, annotators=1, items=1, gold_share=0.5)
    item = Item.objects.get(project=project)
    item_gold_set(
        project=project,
        item_id=item.pk,
        value={"spans": [span(0, 12), span(17, 32), span(36, 42, "LOC")]},
    )
    membership = Membership.objects.get(project=project, user=a)
    lease = assignment_next(project=project, annotator=a, membership=membership)
    assert lease.item.pk == item.pk
    # Found: [0, 12) PER. Wrong: [36, 42) labelled ORG, [17, 32) missed: 3 answers, 1 correct.
    annotation_submit(
        project=project,
        item_id=item.pk,
        annotator=a,
        membership=membership,
        value={"spans": [span(0, 12), span(36, 42, "ORG")]},
    )
    membership.refresh_from_db()
    assert (membership.gold_answers, membership.gold_correct) == (3, 1)
    assert_kept_right(project)


# --- the dashboards ------------------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize("task_type", [Project.TaskType.TEXT_SPANS, Project.TaskType.IMAGE_BOXES])
def test_every_dashboard_reads_a_boxes_or_spans_project(task_type, client):
    project, (a, b), _ = _project(task_type, items=1)
    value = {"spans": [span(0, 12)]} if task_type == "text_spans" else {"boxes": [box(0, 0, 0.5, 0.5)]}
    one = _label(project, a, value)
    _label(project, b, value, item_id=one.item_id)
    figures = dashboard_read(project=project, charts=CHARTS)
    assert {lb.label: lb.items for lb in figures["labels"].labels}["PER"] == 1
    assert figures["agreement"].overall.percent_agreement == 1.0
    manager = project.memberships.get(role="manager").user
    client.force_login(manager)
    page = client.get(f"/projects/{project.pk}/dashboards/")
    assert page.status_code == 200
    assert "F1 1.000" in page.content.decode()
    assert ("all annotators, overlapping spans" in page.content.decode()) == (task_type == "text_spans")
    api = client.get(f"/api/projects/{project.pk}/dashboards/")
    assert api.status_code == 200
    body = api.json()
    assert body["labels"]["counts"] == ("spans" if task_type == "text_spans" else "boxes")
    assert body["agreement"]["pairs"][0]["f1"] == 1.0
