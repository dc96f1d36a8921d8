"""Going back to change an answer, comments and flags for the lead (annotate/history.py,
annotate/notes.py, annotate/queue.py's resubmit path, their API and the item browser).

After every change the item's counters, final label and the tallies must equal a full recount
(annotate.quality.rebuild), as in test_review.py.
"""

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone
from rest_framework.test import APIClient

from annotate.models import Annotation, Item, ItemNote, ReviewState
from annotate.notes import item_note_add
from annotate.projects import label_create, label_update
from annotate.queue import annotation_submit, assignment_next
from annotate.review import review_decide
from tests.annotate.test_review import assert_kept_right
from tests.factories import UserFactory, make_project

pytestmark = pytest.mark.django_db

POS, NEG = {"choices": ["positive"]}, {"choices": ["negative"]}


def _label(project, user, value, now=None):
    lease = assignment_next(project=project, annotator=user, now=now)
    annotation_submit(project=project, item_id=lease.item.pk, annotator=user, value=value, now=now)
    return lease.item


def _team(items=3, overlap=2, annotators=2, reviewers=1):
    users = [UserFactory() for _ in range(annotators)]
    checkers = [UserFactory() for _ in range(reviewers)]
    project = make_project(
        items=items,
        overlap=overlap,
        members=[*((u, "annotator") for u in users), *((r, "reviewer") for r in checkers)],
    )
    return project, users, checkers


def _api(user):
    client = APIClient()
    client.force_authenticate(user)
    return client


def _history_url(project):
    return reverse("api:history", kwargs={"project_id": project.pk})


def _notes_url(project, item_id):
    return reverse("api:item-notes", kwargs={"project_id": project.pk, "item_id": item_id})


# The history listing -----------------------------------------------------------------------


def test_history_lists_only_my_items_newest_first_each_once_with_my_latest_answer():
    project, (a, b), _ = _team(items=3, overlap=2)
    first = _label(project, a, POS)
    second = _label(project, a, NEG)
    _label(project, b, NEG)  # b's answers are not a's history
    annotation_submit(project=project, item_id=first.pk, annotator=a, value=NEG)  # changed: now newest

    response = _api(a).get(_history_url(project))

    assert response.status_code == 200
    results = response.json()["results"]
    assert [(r["item"]["id"], r["item"]["answer"]) for r in results] == [(first.pk, NEG), (second.pk, NEG)]
    assert results[0]["item"]["proposal"] is None and results[0]["item"]["text"] == first.text
    assert response.json()["next_before"] is None


def test_history_pages_by_keyset_without_repeating_or_skipping():
    project, (a, _), _ = _team(items=7, overlap=1)
    labeled = [_label(project, a, POS).pk for _ in range(7)]
    client, seen, before = _api(a), [], None
    pages = 0
    while True:
        query = {"page_size": 3} | ({"before": before} if before else {})
        body = client.get(_history_url(project), query).json()
        seen += [r["item"]["id"] for r in body["results"]]
        pages += 1
        before = body["next_before"]
        if before is None:
            break
    assert seen == labeled[::-1]
    assert pages == 3


def test_history_refuses_bad_paging_input_naming_the_parameter():
    project, (a, _), _ = _team()
    client = _api(a)
    assert client.get(_history_url(project), {"page_size": 0}).json().keys() == {"page_size"}
    assert client.get(_history_url(project), {"before": "x"}).status_code == 400
    assert client.get(_history_url(project), {"page_size": 51}).status_code == 400


def test_history_of_another_project_is_404_for_a_non_member():
    project, _, _ = _team()
    stranger = UserFactory()
    make_project(members=[(stranger, "manager")])
    assert _api(stranger).get(_history_url(project)).status_code == 404


# A changed answer ---------------------------------------------------------------------------


def test_a_changed_answer_replaces_my_vote_without_counting_twice():
    project, (a, b), _ = _team(items=1, overlap=2)
    item = _label(project, a, POS)
    _label(project, b, NEG)
    item.refresh_from_db()
    assert (item.final_source, item.annotation_count) == ("tie", 2)

    response = _api(b).post(
        reverse("api:annotation-list", kwargs={"project_id": project.pk}),
        {"item": item.pk, "value": POS, "active_ms": 900},
        format="json",
    )

    assert response.status_code == 201 and response.json()["counted"] is False
    item.refresh_from_db()
    assert item.annotation_count == 2 and item.is_complete
    assert (item.final_value, item.final_source, item.disagreement) == (POS, "consensus", False)
    assert Annotation.objects.filter(item=item, annotator=b).count() == 2  # the old one stays
    assert_kept_right(project)


def test_a_changed_answer_sends_a_reviewed_item_back_to_review_with_the_review_still_in_force():
    project, (a, b), (reviewer,) = _team(items=1, overlap=2)
    item = _label(project, a, POS)
    _label(project, b, POS)
    accepted = Annotation.objects.filter(item=item, annotator=a).get()
    review = review_decide(
        project=project,
        item_id=item.pk,
        reviewer=reviewer,
        decision="accept",
        supersedes=None,
        annotation_id=accepted.pk,
    )
    item.refresh_from_db()
    assert item.review_state == ReviewState.DONE

    annotation_submit(project=project, item_id=item.pk, annotator=b, value=NEG)

    item.refresh_from_db()
    assert item.review_state == ReviewState.QUEUED
    # Until a reviewer decides again, the accepted value stays the final label.
    assert (item.final_value, item.final_source, item.last_review_id) == (POS, "review", review.pk)
    assert item.disagreement
    assert_kept_right(project)
    # The reviewer decides again, superseding their first decision.
    review_decide(
        project=project,
        item_id=item.pk,
        reviewer=reviewer,
        decision="correct",
        supersedes=review.pk,
        value=NEG,
    )
    item.refresh_from_db()
    assert (item.final_value, item.review_state) == (NEG, ReviewState.DONE)
    assert_kept_right(project)


def test_the_same_answer_again_does_not_send_a_reviewed_item_back():
    project, (a, b), (reviewer,) = _team(items=1, overlap=2)
    item = _label(project, a, POS)
    _label(project, b, POS)
    review_decide(
        project=project, item_id=item.pk, reviewer=reviewer, decision="correct", supersedes=None, value=POS
    )
    annotation_submit(project=project, item_id=item.pk, annotator=b, value=POS)
    item.refresh_from_db()
    assert item.review_state == ReviewState.DONE
    assert_kept_right(project)


def test_a_new_answer_after_a_reject_votes_again_when_the_item_has_room():
    project, (a, b), (reviewer,) = _team(items=1, overlap=2)
    item = _label(project, a, POS)
    _label(project, b, NEG)
    rejected = Annotation.objects.get(item=item, annotator=b)
    review_decide(
        project=project,
        item_id=item.pk,
        reviewer=reviewer,
        decision="reject",
        supersedes=None,
        annotation_id=rejected.pk,
        reason="read the guideline again",
    )
    item.refresh_from_db()
    assert (item.annotation_count, item.is_complete, item.final_source) == (1, False, "single")

    again = annotation_submit(project=project, item_id=item.pk, annotator=b, value=POS)

    assert again.counted and not again.late
    item.refresh_from_db()
    assert (item.annotation_count, item.is_complete) == (2, True)
    assert (item.final_value, item.final_source) == (POS, "consensus")
    assert item.review_state == ReviewState.QUEUED
    assert_kept_right(project)


def test_a_new_answer_after_a_reject_does_not_count_when_another_annotator_filled_the_slot():
    project, (a, b, c), (reviewer,) = _team(items=1, overlap=2, annotators=3)
    item = _label(project, a, POS)
    _label(project, b, NEG)
    rejected = Annotation.objects.get(item=item, annotator=b)
    review_decide(
        project=project,
        item_id=item.pk,
        reviewer=reviewer,
        decision="reject",
        supersedes=None,
        annotation_id=rejected.pk,
        reason="no",
    )
    _label(project, c, POS)  # the freed slot goes to c

    again = annotation_submit(project=project, item_id=item.pk, annotator=b, value=NEG)

    assert not again.counted
    item.refresh_from_db()
    assert (item.annotation_count, item.final_value, item.final_source) == (2, POS, "consensus")
    assert_kept_right(project)


def _reject(project, reviewer, annotation, supersedes=None):
    return review_decide(
        project=project,
        item_id=annotation.item_id,
        reviewer=reviewer,
        decision="reject",
        supersedes=supersedes,
        annotation_id=annotation.pk,
        reason="read the guideline again",
    )


def test_a_rejected_changed_answer_stops_voting_and_the_answer_before_it_votes_again():
    project, (a, b), (reviewer,) = _team(items=1, overlap=2)
    item = _label(project, a, POS)
    _label(project, b, POS)
    changed = annotation_submit(project=project, item_id=item.pk, annotator=b, value=NEG)
    item.refresh_from_db()
    assert not changed.counted and item.final_source == "tie"

    _reject(project, reviewer, changed)

    item.refresh_from_db()
    assert (item.annotation_count, item.is_complete) == (2, True)  # b's first answer still counts
    assert (item.final_value, item.final_source, item.disagreement) == (POS, "consensus", False)
    assert_kept_right(project)


def test_an_answer_rejected_before_counts_as_changed_when_given_again_on_a_reviewed_item():
    project, (a, b), (reviewer,) = _team(items=1, overlap=2)
    item = _label(project, a, POS)
    _label(project, b, POS)
    changed = annotation_submit(project=project, item_id=item.pk, annotator=b, value=NEG)
    rejected = _reject(project, reviewer, changed)
    accepted = review_decide(
        project=project,
        item_id=item.pk,
        reviewer=reviewer,
        decision="accept",
        supersedes=rejected.pk,
        annotation_id=Annotation.objects.get(item=item, annotator=a).pk,
    )
    item.refresh_from_db()
    assert item.review_state == ReviewState.DONE

    # b's vote is POS again, so the rejected NEG given anew changes it: back to review.
    annotation_submit(project=project, item_id=item.pk, annotator=b, value=NEG)

    item.refresh_from_db()
    assert item.review_state == ReviewState.QUEUED
    assert (item.final_value, item.final_source, item.last_review_id) == (POS, "review", accepted.pk)
    assert item.disagreement
    assert_kept_right(project)


def test_rejecting_the_counted_answer_under_a_changed_one_takes_the_annotators_vote_away():
    project, (a, b), (reviewer,) = _team(items=1, overlap=2)
    item = _label(project, a, POS)
    _label(project, b, NEG)
    annotation_submit(project=project, item_id=item.pk, annotator=b, value=POS)  # uncounted change
    first = Annotation.objects.filter(item=item, annotator=b).earliest("id")

    _reject(project, reviewer, first)

    item.refresh_from_db()
    assert (item.annotation_count, item.is_complete) == (1, False)
    assert (item.final_value, item.final_source) == (POS, "single")  # a's vote alone
    assert_kept_right(project)


def test_a_late_answer_changed_later_is_never_counted_twice():
    project, (a, _), _ = _team(items=1, overlap=2)
    start = timezone.now()
    lease = assignment_next(project=project, annotator=a, now=start)
    late_at = start + timedelta(seconds=project.lease_seconds + 5)
    first = annotation_submit(project=project, item_id=lease.item.pk, annotator=a, value=POS, now=late_at)
    assert first.late and first.counted  # the item had room

    changed = annotation_submit(project=project, item_id=lease.item.pk, annotator=a, value=NEG, now=late_at)

    assert not changed.counted
    item = Item.objects.get(pk=lease.item.pk)
    assert (item.annotation_count, item.final_value) == (1, NEG)
    assert_kept_right(project)


def test_changing_an_answer_leaves_the_item_i_was_labeling_leased_to_me():
    project, (a, _), _ = _team(items=3, overlap=1)
    first = _label(project, a, POS)
    current = assignment_next(project=project, annotator=a)
    annotation_submit(project=project, item_id=first.pk, annotator=a, value=NEG)
    again = assignment_next(project=project, annotator=a)
    assert (again.item.pk, again.is_new) == (current.item.pk, False)


def test_a_changed_answer_on_an_item_i_never_had_is_refused():
    project, (a, b), _ = _team(items=2, overlap=1)
    theirs = _label(project, b, POS)
    response = _api(a).post(
        reverse("api:annotation-list", kwargs={"project_id": project.pk}),
        {"item": theirs.pk, "value": NEG},
        format="json",
    )
    assert response.status_code == 409
    assert not Annotation.objects.filter(annotator=a).exists()


# Comments and flags --------------------------------------------------------------------------


def test_a_member_comments_and_flags_an_item_and_leads_see_the_open_flags():
    project, (a, _), _ = _team(items=2)
    item, other = project.items.order_by("id")
    client = _api(a)
    comment = client.post(_notes_url(project, item.pk), {"text": "  ambiguous wording  "}, format="json")
    flag = client.post(
        _notes_url(project, other.pk), {"text": "image is broken", "flagged": True}, format="json"
    )

    assert comment.status_code == flag.status_code == 201
    assert comment.json()["text"] == "ambiguous wording" and comment.json()["flagged"] is False
    assert flag.json()["author"] == a.username and flag.json()["resolved_at"] is None
    lead = project.created_by
    api = _api(lead)
    listed = api.get(reverse("api:browser", kwargs={"project_id": project.pk}), {"flagged": "true"})
    assert [row["id"] for row in listed.json()["results"]] == [other.pk]
    unflagged = api.get(reverse("api:browser", kwargs={"project_id": project.pk}), {"flagged": "false"})
    assert [row["id"] for row in unflagged.json()["results"]] == [item.pk]


def test_notes_refuse_bad_input_naming_the_field_and_store_nothing():
    project, (a, _), _ = _team(items=1)
    item = project.items.get()
    client = _api(a)
    empty = client.post(_notes_url(project, item.pk), {"text": "   ", "flagged": True}, format="json")
    missing = client.post(_notes_url(project, item.pk), {}, format="json")
    long = client.post(_notes_url(project, item.pk), {"text": "x" * 2001}, format="json")
    flag_kind = client.post(_notes_url(project, item.pk), {"text": "hi", "flagged": "maybe"}, format="json")
    assert [r.status_code for r in (empty, missing, long, flag_kind)] == [400] * 4
    assert "text" in empty.json() and "text" in missing.json() and "text" in long.json()
    assert "flagged" in flag_kind.json()
    assert not ItemNote.objects.exists()


def test_notes_on_an_unknown_item_or_another_projects_item_are_404():
    project, (a, _), _ = _team(items=1)
    elsewhere = make_project(items=1).items.get()
    client = _api(a)
    assert client.post(_notes_url(project, 999_999), {"text": "hi"}, format="json").status_code == 404
    assert client.post(_notes_url(project, elsewhere.pk), {"text": "hi"}, format="json").status_code == 404
    assert not ItemNote.objects.exists()


def test_a_lead_sees_notes_on_the_item_page_and_resolves_a_flag(client):
    project, (a, _), _ = _team(items=1)
    item = project.items.get()
    flag = item_note_add(project=project, item_id=item.pk, author=a, text="label missing", flagged=True)
    item_note_add(project=project, item_id=item.pk, author=a, text="just a comment")
    client.force_login(project.created_by)
    browser = client.get(reverse("annotate:browser", args=[project.pk]))
    assert "data-open-flags" in browser.text and "1 open flag from annotators" in browser.text
    page = client.get(reverse("annotate:browser-item", args=[project.pk, item.pk]))
    assert page.status_code == 200 and "label missing" in page.text and "just a comment" in page.text
    assert "Resolve flag" in page.text

    url = reverse("annotate:browser-note-resolve", args=[project.pk, item.pk])
    resolved = client.post(url, {"note": flag.pk})
    again = client.post(url, {"note": flag.pk}, follow=True)

    assert resolved.status_code == 302
    flag.refresh_from_db()
    assert flag.resolved_at is not None
    assert "resolved already" in again.text
    assert client.post(url, {"note": 999_999}).status_code == 404
    assert "data-open-flags" not in client.get(reverse("annotate:browser", args=[project.pk])).text


def test_an_annotator_cannot_resolve_a_flag():
    project, (a, _), _ = _team(items=1)
    item = project.items.get()
    flag = item_note_add(project=project, item_id=item.pk, author=a, text="broken", flagged=True)
    client = APIClient()
    client.force_login(a)
    response = client.post(
        reverse("annotate:browser-note-resolve", args=[project.pk, item.pk]), {"note": flag.pk}
    )
    assert response.status_code == 403
    flag.refresh_from_db()
    assert flag.resolved_at is None


# Reserved keys -------------------------------------------------------------------------------


@pytest.mark.parametrize("key", ["s", "H", "c", "f", "?", "[", "]"])
def test_a_label_may_not_take_a_key_of_the_labeling_page(key):
    from django.core.exceptions import ValidationError

    project = make_project(labels=["a"])
    with pytest.raises(ValidationError) as refused:
        label_create(project=project, name="b", hotkey=key)
    assert "hotkey" in refused.value.message_dict
    label = project.labels.get(name="a")
    with pytest.raises(ValidationError):
        label_update(label=label, hotkey=key)
    assert project.labels.count() == 1 and project.labels.get(name="a").hotkey == "1"


def test_the_labeling_page_offers_the_history_notes_and_keys_controls(client):
    project, (a, _), _ = _team(items=1)
    client.force_login(a)
    page = client.get(reverse("annotate:label", args=[project.pk]))
    assert page.status_code == 200
    for marker in ("data-history-dialog", "data-note-dialog", "data-help-dialog", 'data-action="flag"'):
        assert marker in page.text
    assert "? lists every key" in page.text
