"""Gold items: marking them, the gold share of the queue, gold accuracy and the automatic pause."""

import random

import pytest
from django.core.exceptions import ValidationError
from statsmodels.stats.proportion import proportion_confint

from annotate import queue
from annotate.gold import item_gold_clear, item_gold_set
from annotate.models import Annotation, Item, Membership
from annotate.projects import membership_resume
from annotate.quality.gold import GOLD_MIN_ANSWERS, gold_accuracy, gold_pause_reason, wilson_interval
from annotate.queue import AnnotatorPaused, annotation_submit, assignment_next
from tests.annotate.test_review import assert_kept_right
from tests.factories import UserFactory, make_project
from training.datasets import final_labels
from training.proposals import proposal_for

POS, NEG = {"choices": ["positive"]}, {"choices": ["negative"]}


@pytest.mark.parametrize("correct,answers", [(0, 1), (1, 1), (7, 10), (3, 40), (99, 100), (500, 1000)])
def test_wilson_interval_matches_statsmodels(correct, answers):
    low, high = proportion_confint(correct, answers, alpha=0.05, method="wilson")
    ours = wilson_interval(correct, answers)
    assert ours == pytest.approx((low, high), abs=1e-12)


def test_no_answers_has_no_accuracy():
    assert gold_accuracy(answers=0, correct=0).accuracy is None


@pytest.fixture
def gold_project():
    a, b = UserFactory(), UserFactory()
    project = make_project(items=6, overlap=1, gold_share=0.25, members=[(a, "annotator"), (b, "annotator")])
    gold = list(project.items.order_by("id")[:2])
    for item in gold:
        item_gold_set(project=project, item_id=item.pk, value=POS)
    return project, a, b, gold


@pytest.mark.django_db
def test_marking_gold_checks_the_value_and_makes_it_the_final_label(gold_project):
    project, _, _, gold = gold_project
    with pytest.raises(ValidationError) as caught:
        item_gold_set(project=project, item_id=gold[0].pk, value={"choices": ["maybe"]})
    assert "gold_value" in caught.value.message_dict
    elsewhere = make_project(items=1)
    with pytest.raises(ValidationError) as caught:
        item_gold_set(project=project, item_id=elsewhere.items.get().pk, value=POS)
    assert "item" in caught.value.message_dict
    item = Item.objects.get(pk=gold[0].pk)
    assert (item.pick_kind, item.final_value, item.final_source, item.is_complete) == (
        "gold",
        POS,
        "gold",
        True,
    )
    assert final_labels(project=project).item_ids == [g.pk for g in gold]
    assert_kept_right(project)
    cleared = item_gold_clear(project=project, item_id=gold[1].pk)
    assert (cleared.pick_kind, cleared.final_source, cleared.is_complete) == ("queue", "none", False)
    assert_kept_right(project)


@pytest.mark.django_db
def test_the_queue_mixes_in_gold_at_its_share_each_gold_item_once_and_without_a_proposal(
    gold_project, monkeypatch
):
    project, a, b, gold = gold_project
    gold_ids = {g.pk for g in gold}
    Item.objects.filter(pk__in=gold_ids).update(proposal={"value": POS, "score": 0.9})
    monkeypatch.setattr(queue, "_random", random.Random(7))
    membership = Membership.objects.get(project=project, user=a)
    served = []
    while (lease := assignment_next(project=project, annotator=a, membership=membership)) is not None:
        served.append(lease.item.pk)
        if lease.item.pk in gold_ids:
            assert proposal_for(item=lease.item) is None
        annotation_submit(
            project=project, item_id=lease.item.pk, annotator=a, value=NEG, membership=membership
        )
        membership.refresh_from_db()
    # Every ordinary item once, every gold item once, no item twice.
    assert sorted(served) == sorted(Item.objects.filter(project=project).values_list("id", flat=True))
    membership.refresh_from_db()
    assert (membership.gold_answers, membership.gold_correct) == (2, 0)
    # Gold answers are outside overlap and never vote; the final label stays the true value.
    assert set(Item.objects.filter(pk__in=gold_ids).values_list("annotation_count", flat=True)) == {0}
    assert not Annotation.objects.filter(item_id__in=gold_ids, counted=True).exists()
    assert list(Item.objects.filter(pk__in=gold_ids).values_list("final_value", flat=True)) == [POS, POS]
    assert_kept_right(project)


@pytest.mark.django_db
def test_the_gold_share_is_about_what_the_project_asks():
    a = UserFactory()
    project = make_project(items=400, overlap=1, gold_share=0.2, members=[(a, "annotator")])
    for item in project.items.order_by("id")[:100]:
        item_gold_set(project=project, item_id=item.pk, value=POS)
    queue._random.seed(3)
    membership = Membership.objects.get(project=project, user=a)
    gold = 0
    for _ in range(200):
        lease = assignment_next(project=project, annotator=a, membership=membership)
        gold += lease.item.pick_kind == "gold"
        annotation_submit(
            project=project, item_id=lease.item.pk, annotator=a, value=POS, membership=membership
        )
        membership.refresh_from_db()
    # 200 draws at 0.2: 40 expected, the 99.9% binomial range is about 23 to 59.
    assert 23 <= gold <= 59


@pytest.mark.django_db
def test_an_annotator_below_the_bar_is_paused_only_after_enough_gold_answers(monkeypatch):
    a = UserFactory()
    project = make_project(
        items=30, overlap=1, gold_share=0.5, gold_pause_below=0.8, members=[(a, "annotator")]
    )
    for item in project.items.order_by("id")[:GOLD_MIN_ANSWERS]:
        item_gold_set(project=project, item_id=item.pk, value=POS)
    monkeypatch.setattr(queue, "_gold_draw", lambda share: True)
    membership = Membership.objects.get(project=project, user=a)
    for answered in range(1, GOLD_MIN_ANSWERS + 1):
        lease = assignment_next(project=project, annotator=a, membership=membership)
        assert lease.item.pick_kind == "gold"
        annotation_submit(
            project=project, item_id=lease.item.pk, annotator=a, value=NEG, membership=membership
        )
        membership.refresh_from_db()
        assert membership.paused == (answered >= GOLD_MIN_ANSWERS), answered
    assert "0 of 10 gold answers correct" in membership.paused_reason
    with pytest.raises(AnnotatorPaused, match="0 of 10"):
        assignment_next(project=project, annotator=a, membership=membership)
    membership_resume(membership=membership)
    assert assignment_next(project=project, annotator=a, membership=membership) is not None


def test_the_pause_needs_the_whole_interval_below_the_bar():
    project = type("P", (), {"gold_pause_below": 0.8})()
    assert gold_pause_reason(project=project, answers=9, correct=0) == ""  # too few answers
    assert gold_pause_reason(project=project, answers=10, correct=6) == ""  # upper bound 0.83 >= 0.8
    assert gold_pause_reason(project=project, answers=10, correct=4) != ""  # upper bound 0.69 < 0.8
    project.gold_pause_below = None
    assert gold_pause_reason(project=project, answers=100, correct=0) == ""


@pytest.mark.django_db
@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
def test_an_import_column_makes_gold_items_and_bad_values_name_the_line_and_field(fmt):
    import io

    from annotate import importing

    project = make_project(items=0, overlap=2)
    if fmt == "csv":
        good = "id,text,truth\na,first,positive\nb,second,\n"
        bad = "id,text,truth\nc,third,maybe\n"
    else:
        good = '{"id": "a", "text": "first", "truth": "positive"}\n{"id": "b", "text": "second"}\n'
        bad = '{"id": "c", "text": "third", "truth": "maybe"}\n'
    name = f"gold.{fmt}"
    importing.item_import(
        project=project,
        file=io.BytesIO(good.encode()),
        filename=name,
        format=fmt,
        options={"gold_column": "truth"},
    )
    gold, plain = Item.objects.filter(project=project).order_by("external_id")
    assert (gold.pick_kind, gold.gold_value, gold.final_source, gold.is_complete) == (
        "gold",
        POS,
        "gold",
        True,
    )
    assert (plain.pick_kind, plain.final_source, plain.is_complete) == ("queue", "none", False)
    assert_kept_right(project)
    with pytest.raises(importing.ImportRejected) as caught:
        importing.item_import(
            project=project,
            file=io.BytesIO(bad.encode()),
            filename=name,
            format=fmt,
            options={"gold_column": "truth"},
        )
    assert "truth" in str(caught.value) and "maybe" in str(caught.value) and ("line" in str(caught.value))
    assert Item.objects.filter(project=project).count() == 2
