"""The review queue and decisions (annotate/review.py), through the real database.

After every change the tallies and final labels must equal a recount from the annotations and
decisions (annotate.quality.rebuild), so nothing kept incrementally drifts.
"""

import threading

import pytest
from django.core.exceptions import ValidationError
from django.db import connection

from annotate.models import Annotation, Item, Membership, Review, Tally
from annotate.quality.rebuild import project_quality_rebuild
from annotate.queue import annotation_submit, assignment_next
from annotate.review import (
    ItemNotInProject,
    OwnAnnotation,
    ReviewConflict,
    ReviewError,
    review_decide,
    review_next,
    review_notices,
    review_notices_seen,
)
from tests.factories import UserFactory, make_project

POS, NEG = {"choices": ["positive"]}, {"choices": ["negative"]}


def _label(project, user, value):
    lease = assignment_next(project=project, annotator=user)
    return annotation_submit(project=project, item_id=lease.item.pk, annotator=user, value=value)


def _tallies(project):
    return {(t.kind, t.key): t.n for t in Tally.objects.filter(project=project).exclude(n=0)}


def _finals(project):
    return list(
        Item.objects.filter(project=project).order_by("id").values_list("final_value", "final_source")
    )


def assert_kept_right(project):
    """The incrementally kept tallies and final labels equal a full recount."""
    kept, finals = _tallies(project), _finals(project)
    models = {
        "Item": Item,
        "Annotation": Annotation,
        "Label": project.labels.model,
        "Tally": Tally,
        "Review": Review,
    }
    project_quality_rebuild(project=project, models=models)
    assert _tallies(project) == kept
    assert _finals(project) == finals


@pytest.fixture
def team():
    a, b, reviewer, other_reviewer = (UserFactory() for _ in range(4))
    project = make_project(
        items=3,
        overlap=2,
        members=[(a, "annotator"), (b, "annotator"), (reviewer, "reviewer"), (other_reviewer, "reviewer")],
    )
    return project, a, b, reviewer, other_reviewer


def _two_votes(project, a, b, first_b=NEG):
    """Item 1: a and b disagree; item 2: both say positive; item 3: one vote only."""
    for value_a, value_b in ((POS, first_b), (POS, POS)):
        _label(project, a, value_a)
        _label(project, b, value_b)
    _label(project, a, POS)
    return list(Item.objects.filter(project=project).order_by("id"))


@pytest.mark.django_db
def test_complete_items_wait_for_review_disagreements_first(team):
    project, a, b, reviewer, _ = team
    first, second, third = _two_votes(project, a, b)
    first.refresh_from_db()
    assert (first.final_source, first.disagreement, first.review_state) == ("tie", True, "queued")
    second.refresh_from_db()
    assert (second.final_value, second.final_source, second.review_state) == (POS, "consensus", "queued")
    third.refresh_from_db()
    assert (third.final_value, third.final_source, third.review_state) == (POS, "single", "none")
    # The model's doubt orders what is left after disagreements.
    Item.objects.filter(pk=second.pk).update(review_priority=0.9)
    served = review_next(project=project, reviewer=reviewer)
    assert served.item.pk == first.pk and served.is_new
    again = review_next(project=project, reviewer=reviewer)
    assert again.item.pk == first.pk and not again.is_new
    assert review_next(project=project, reviewer=reviewer, exclude_item_ids=[first.pk]).item.pk == second.pk
    assert_kept_right(project)


@pytest.mark.django_db
def test_a_leased_review_item_goes_to_no_other_reviewer_and_nobody_reviews_their_own(team):
    project, a, b, reviewer, other = team
    first, second, _ = _two_votes(project, a, b)
    assert review_next(project=project, reviewer=reviewer).item.pk == first.pk
    assert review_next(project=project, reviewer=other).item.pk == second.pk
    assert review_next(project=project, reviewer=other, exclude_item_ids=[second.pk]) is None
    # An annotator promoted to reviewer never gets the items they annotated.
    Membership.objects.filter(project=project, user=a).update(role="reviewer")
    assert review_next(project=project, reviewer=a) is None
    with pytest.raises(OwnAnnotation):
        review_decide(
            project=project, item_id=first.pk, reviewer=a, decision="correct", supersedes=None, value=NEG
        )


@pytest.mark.django_db
def test_accept_makes_the_answer_final_and_counts_outcomes(team):
    project, a, b, reviewer, _ = team
    first, _, _ = _two_votes(project, a, b)
    answer_b = Annotation.objects.get(item=first, annotator=b)
    review = review_decide(
        project=project,
        item_id=first.pk,
        reviewer=reviewer,
        decision="accept",
        supersedes=None,
        annotation_id=answer_b.pk,
    )
    first.refresh_from_db()
    assert (first.final_value, first.final_source, first.review_state) == (NEG, "review", "done")
    assert first.last_review_id == review.pk and first.review_leased_by_id is None
    assert review.outcomes == {str(a.pk): "corrected", str(b.pk): "accepted"}
    tallies = _tallies(project)
    assert tallies["review", f'[{a.pk},"corrected"]'] == 1
    assert tallies["review", f'[{b.pk},"accepted"]'] == 1
    assert_kept_right(project)


@pytest.mark.django_db
def test_correct_sets_the_reviewers_value_and_bad_values_change_nothing(team):
    project, a, b, reviewer, _ = team
    first, _, _ = _two_votes(project, a, b)
    before = _tallies(project)
    for bad, field in (
        ({"choices": ["maybe"]}, "value"),
        ({"choices": ["positive", "negative"]}, "value"),
        (None, "value"),
    ):
        with pytest.raises(ValidationError) as caught:
            review_decide(
                project=project,
                item_id=first.pk,
                reviewer=reviewer,
                decision="correct",
                supersedes=None,
                value=bad,
            )
        assert field in caught.value.message_dict
    with pytest.raises(ValidationError) as caught:
        review_decide(
            project=project, item_id=first.pk, reviewer=reviewer, decision="approve", supersedes=None
        )
    assert "decision" in caught.value.message_dict
    assert not Review.objects.exists() and _tallies(project) == before
    review_decide(
        project=project, item_id=first.pk, reviewer=reviewer, decision="correct", supersedes=None, value=NEG
    )
    first.refresh_from_db()
    assert (first.final_value, first.final_source) == (NEG, "review")
    assert_kept_right(project)


@pytest.mark.django_db
def test_reject_uncounts_the_answer_sends_the_item_back_and_tells_the_annotator(team):
    project, a, b, reviewer, _ = team
    c = UserFactory()
    Membership.objects.create(project=project, user=c, role="annotator")
    first, _, _ = _two_votes(project, a, b)
    answer_b = Annotation.objects.get(item=first, annotator=b)
    with pytest.raises(ValidationError) as caught:
        review_decide(
            project=project,
            item_id=first.pk,
            reviewer=reviewer,
            decision="reject",
            supersedes=None,
            annotation_id=answer_b.pk,
        )
    assert "reason" in caught.value.message_dict
    review_decide(
        project=project,
        item_id=first.pk,
        reviewer=reviewer,
        decision="reject",
        supersedes=None,
        annotation_id=answer_b.pk,
        reason="read the guideline on sarcasm",
    )
    answer_b.refresh_from_db()
    assert (answer_b.rejected, answer_b.counted) == (True, False)
    first.refresh_from_db()
    assert (first.annotation_count, first.is_complete, first.review_state) == (1, False, "none")
    assert (first.final_value, first.final_source, first.disagreement) == (POS, "single", False)
    # Back in the labeling queue: the next annotator gets it, and the review queue waits for them.
    assert assignment_next(project=project, annotator=c).item.pk == first.pk
    annotation_submit(project=project, item_id=first.pk, annotator=c, value=POS)
    first.refresh_from_db()
    assert (first.is_complete, first.review_state, first.final_source) == (True, "queued", "consensus")
    notices = review_notices(project=project, annotator=b)
    assert [n.reason for n in notices] == ["read the guideline on sarcasm"]
    review_notices_seen(reviews=notices)
    assert review_notices(project=project, annotator=b) == []
    assert_kept_right(project)


@pytest.mark.django_db
def test_a_later_decision_reverses_an_earlier_one_and_a_stale_one_gets_the_winner(team):
    project, a, b, reviewer, other = team
    first, _, _ = _two_votes(project, a, b)
    answer_a, answer_b = Annotation.objects.filter(item=first).order_by(
        "annotator_id" if a.pk < b.pk else "-annotator_id"
    )
    rejected = review_decide(
        project=project, item_id=first.pk, reviewer=reviewer, decision="reject", supersedes=None,
        annotation_id=answer_b.pk, reason="wrong",
    )  # fmt: skip
    with pytest.raises(ReviewConflict) as caught:
        review_decide(
            project=project, item_id=first.pk, reviewer=other, decision="correct", supersedes=None, value=NEG
        )
    assert caught.value.winner.pk == rejected.pk
    # The other reviewer saw the reject and takes it back by accepting the rejected answer.
    accepted = review_decide(
        project=project, item_id=first.pk, reviewer=other, decision="accept", supersedes=rejected.pk,
        annotation_id=answer_b.pk,
    )  # fmt: skip
    answer_b.refresh_from_db()
    assert (answer_b.rejected, answer_b.counted) == (False, True)
    first.refresh_from_db()
    assert (first.final_value, first.final_source, first.is_complete, first.annotation_count) == (
        NEG,
        "review",
        True,
        2,
    )
    assert accepted.supersedes_id == rejected.pk
    tallies = _tallies(project)
    assert ("review", f'[{b.pk},"rejected"]') not in tallies  # the reject's outcome was taken back
    assert tallies["review", f'[{b.pk},"accepted"]'] == 1
    assert answer_a.annotator_id == a.pk
    assert_kept_right(project)


@pytest.mark.django_db
def test_decisions_that_cannot_be_taken(team):
    project, a, b, reviewer, _ = team
    _, _, third = _two_votes(project, a, b)
    with pytest.raises(ReviewError, match="not complete"):
        review_decide(
            project=project,
            item_id=third.pk,
            reviewer=reviewer,
            decision="correct",
            supersedes=None,
            value=NEG,
        )
    elsewhere = make_project(items=1)
    with pytest.raises(ItemNotInProject):
        review_decide(
            project=project,
            item_id=elsewhere.items.get().pk,
            reviewer=reviewer,
            decision="correct",
            supersedes=None,
            value=NEG,
        )
    second = Item.objects.filter(project=project).order_by("id")[1]
    foreign = Annotation.objects.filter(item=third).get()
    with pytest.raises(ValidationError) as caught:
        review_decide(
            project=project,
            item_id=second.pk,
            reviewer=reviewer,
            decision="accept",
            supersedes=None,
            annotation_id=foreign.pk,
        )
    assert "annotation" in caught.value.message_dict
    assert not Review.objects.exists()


def _decide_at_once(project, item_id, reviewers, value, results, barrier):
    def decide(reviewer):
        try:
            barrier.wait()
            review = review_decide(
                project=project,
                item_id=item_id,
                reviewer=reviewer,
                decision="correct",
                supersedes=None,
                value=value,
            )
            results.append(("won", review.pk))
        except ReviewConflict as exc:
            results.append(("conflict", exc.winner.pk if exc.winner else None))
        except Exception as exc:  # reported, so the test fails with it
            results.append(("error", repr(exc)))
        finally:
            connection.close()

    threads = [threading.Thread(target=decide, args=(r,)) for r in reviewers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("repeat", range(3))
def test_two_reviewers_deciding_at_once_one_wins_the_other_gets_the_winner(repeat):
    """On PostgreSQL the item's row lock orders them; on SQLite IMMEDIATE transactions do."""
    a, b, r1, r2 = (UserFactory() for _ in range(4))
    project = make_project(
        items=1, overlap=2, members=[(a, "annotator"), (b, "annotator"), (r1, "reviewer"), (r2, "reviewer")]
    )
    _label(project, a, POS)
    _label(project, b, NEG)
    item = project.items.get()
    results: list = []
    _decide_at_once(project, item.pk, [r1, r2], NEG, results, threading.Barrier(2))
    outcomes = sorted(kind for kind, _ in results)
    assert outcomes == ["conflict", "won"], results
    winner = next(pk for kind, pk in results if kind == "won")
    assert next(pk for kind, pk in results if kind == "conflict") == winner
    assert Review.objects.filter(item=item).count() == 1
    item.refresh_from_db()
    assert item.last_review_id == winner


@pytest.mark.django_db
def test_a_passed_item_is_given_back_alone_and_another_reviewer_gets_it(team):
    from annotate.review import review_release

    project, a, b, reviewer, other = team
    first, second, _ = _two_votes(project, a, b)
    assert review_next(project=project, reviewer=reviewer).item.pk == first.pk
    assert review_next(project=project, reviewer=reviewer, exclude_item_ids=[first.pk]).item.pk == second.pk
    assert review_release(project=project, reviewer=reviewer, item_id=first.pk) == 1
    # The other lease stays; the passed item is free for the next reviewer.
    assert Item.objects.get(pk=second.pk).review_leased_by_id == reviewer.pk
    assert review_next(project=project, reviewer=other).item.pk == first.pk
    assert review_release(project=project, reviewer=reviewer) == 1
