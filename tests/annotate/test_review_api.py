"""The review API (annotate/api/review.py) and the review page's view, through the real database.

Bad input is answered with a 4xx naming the field (or the item) and changes nothing: the
decision rows, the item's final label and review state, and the tallies are compared before and
after.
"""

import pytest
from django.urls import reverse
from rest_framework.test import APIClient

from annotate.models import Annotation, Item, Membership, Review, Tally
from annotate.queue import annotation_submit, assignment_next
from tests.factories import UserFactory, make_project

pytestmark = pytest.mark.django_db

POS, NEG = {"choices": ["positive"]}, {"choices": ["negative"]}


def _client(user=None) -> APIClient:
    client = APIClient()
    if user is not None:
        client.force_authenticate(user)
    return client


def _url(name: str, project, **kwargs) -> str:
    return reverse(f"api:{name}", kwargs={"project_id": project.pk, **kwargs})


def _label(project, user, value, active_ms=2500):
    lease = assignment_next(project=project, annotator=user)
    return annotation_submit(
        project=project, item_id=lease.item.pk, annotator=user, value=value, active_ms=active_ms
    )


@pytest.fixture
def team():
    """Item 1: a and b disagree; item 2: both say positive; item 3: one answer only (not complete)."""
    a, b = UserFactory(username="ann-a"), UserFactory(username="ann-b")
    reviewer, other = UserFactory(username="rev"), UserFactory(username="rev2")
    project = make_project(
        items=3,
        overlap=2,
        members=[(a, "annotator"), (b, "annotator"), (reviewer, "reviewer"), (other, "reviewer")],
    )
    for value_a, value_b in ((POS, NEG), (POS, POS)):
        _label(project, a, value_a, active_ms=1500)
        _label(project, b, value_b, active_ms=4200)
    _label(project, a, POS)
    items = list(Item.objects.filter(project=project).order_by("id"))
    return project, a, b, reviewer, other, items


def _state(project):
    """Everything a decision may change."""
    items = list(
        Item.objects.filter(project=project)
        .order_by("id")
        .values_list(
            "final_value", "final_source", "review_state", "annotation_count", "is_complete", "last_review_id"
        )
    )
    annotations = list(
        Annotation.objects.filter(project=project).order_by("id").values_list("counted", "rejected")
    )
    tallies = sorted(Tally.objects.filter(project=project).values_list("kind", "key", "n"))
    return items, annotations, tallies, Review.objects.filter(project=project).count()


def _decide(client, project, item, **body):
    body.setdefault("supersedes", None)
    return client.post(_url("review-decision", project, item_id=item.pk), body, format="json")


# The queue -------------------------------------------------------------------------------


def test_next_leases_the_disagreement_first_with_every_answer_side_by_side(team):
    project, a, b, reviewer, _, (first, second, _) = team
    response = _client(reviewer).post(_url("review-next", project), {}, format="json")
    assert response.status_code == 200
    body = response.json()
    assert body["item"]["id"] == first.pk and body["item"]["text"] == first.text
    assert body["item"]["image_url"] is None
    assert (body["item"]["final_value"], body["item"]["final_source"], body["item"]["disagreement"]) == (
        None,
        "tie",
        True,
    )
    assert body["item"]["suspicion"] is None and body["item"]["suspect_value"] is None
    answers = [
        (x["annotator"], x["value"], x["active_ms"], x["counted"], x["late"], x["rejected"])
        for x in body["annotations"]
    ]
    assert answers == [("ann-a", POS, 1500, True, False, False), ("ann-b", NEG, 4200, True, False, False)]
    assert all(x["id"] and x["created_at"] for x in body["annotations"])
    assert body["in_force"] is None and body["history"] == []
    assert body["yours"] is False and body["waiting"] == 2
    assert body["lease"]["expires_at"]
    first.refresh_from_db()
    assert first.review_leased_by_id == reviewer.pk
    # The page excludes what it shows; then the consensus item, then nothing.
    again = _client(reviewer).post(_url("review-next", project), {"exclude": [first.pk]}, format="json")
    assert again.json()["item"]["id"] == second.pk
    assert again.json()["item"]["final_source"] == "consensus"
    done = _client(reviewer).post(
        _url("review-next", project), {"exclude": [first.pk, second.pk]}, format="json"
    )
    assert done.status_code == 204


def test_the_item_view_shows_the_models_doubt_and_leases_nothing(team):
    project, _, _, reviewer, _, (_, second, _) = team
    Item.objects.filter(pk=second.pk).update(suspicion=0.87, suspect_value=NEG, review_priority=0.87)
    response = _client(reviewer).get(_url("review-item", project, item_id=second.pk))
    assert response.status_code == 200
    body = response.json()
    assert body["lease"] is None
    assert (body["item"]["suspicion"], body["item"]["suspect_value"]) == (0.87, NEG)
    second.refresh_from_db()
    assert second.review_leased_by_id is None


def test_release_gives_back_every_review_lease(team):
    project, _, _, reviewer, _, (first, second, _) = team
    client = _client(reviewer)
    client.post(_url("review-next", project), {}, format="json")
    client.post(_url("review-next", project), {"exclude": [first.pk]}, format="json")
    response = client.post(_url("review-release", project))
    assert response.status_code == 200 and response.json() == {"released": 2}
    assert not Item.objects.filter(project=project, review_leased_by_id__isnull=False).exists()


def test_release_of_one_item_gives_back_that_lease_alone_and_a_bad_item_is_a_400(team):
    project, _, _, reviewer, _, (first, second, _) = team
    client = _client(reviewer)
    client.post(_url("review-next", project), {}, format="json")
    client.post(_url("review-next", project), {"exclude": [first.pk]}, format="json")
    response = client.post(_url("review-release", project), {"item": first.pk}, format="json")
    assert response.status_code == 200 and response.json() == {"released": 1}
    assert list(
        Item.objects.filter(project=project, review_leased_by_id__isnull=False).values_list("id", flat=True)
    ) == [second.pk]
    bad = client.post(_url("review-release", project), {"item": "first"}, format="json")
    assert bad.status_code == 400 and "item" in bad.json()
    assert Item.objects.get(pk=second.pk).review_leased_by_id == reviewer.pk


# Decisions -------------------------------------------------------------------------------


def test_accept_answers_201_with_the_decision_which_the_item_then_shows_in_force(team):
    project, _, b, reviewer, _, (first, _, _) = team
    answer_b = Annotation.objects.get(item=first, annotator=b)
    response = _decide(_client(reviewer), project, first, decision="accept", annotation=answer_b.pk)
    assert response.status_code == 201, response.json()
    stored = response.json()
    review = Review.objects.get()
    assert stored["id"] == review.pk
    assert {k: stored[k] for k in ("item", "decision", "reviewer", "annotation", "annotator", "value")} == {
        "item": first.pk,
        "decision": "accept",
        "reviewer": "rev",
        "annotation": answer_b.pk,
        "annotator": "ann-b",
        "value": NEG,
    }
    assert stored["supersedes"] is None and stored["reason"] == ""
    first.refresh_from_db()
    assert (first.final_value, first.final_source, first.review_state) == (NEG, "review", "done")
    shown = _client(reviewer).get(_url("review-item", project, item_id=first.pk)).json()
    assert shown["in_force"]["id"] == review.pk
    assert [h["id"] for h in shown["history"]] == [review.pk]
    assert shown["item"]["final_source"] == "review"


def test_a_later_decision_supersedes_the_one_in_force(team):
    project, _, b, reviewer, other, (first, _, _) = team
    answer_b = Annotation.objects.get(item=first, annotator=b)
    accepted = _decide(_client(reviewer), project, first, decision="accept", annotation=answer_b.pk).json()
    corrected = _decide(
        _client(other), project, first, decision="correct", value=POS, supersedes=accepted["id"]
    )
    assert corrected.status_code == 201
    assert corrected.json()["supersedes"] == accepted["id"]
    first.refresh_from_db()
    assert (first.final_value, first.final_source, first.last_review_id) == (
        POS,
        "review",
        corrected.json()["id"],
    )


def test_reject_needs_a_reason_then_uncounts_the_answer(team):
    project, _, b, reviewer, _, (first, _, _) = team
    answer_b = Annotation.objects.get(item=first, annotator=b)
    before = _state(project)
    missing = _decide(
        _client(reviewer), project, first, decision="reject", annotation=answer_b.pk, reason="  "
    )
    assert missing.status_code == 400 and "reason" in missing.json()
    assert _state(project) == before
    response = _decide(
        _client(reviewer),
        project,
        first,
        decision="reject",
        annotation=answer_b.pk,
        reason="sarcasm is negative",
    )
    assert response.status_code == 201
    assert (response.json()["decision"], response.json()["reason"]) == ("reject", "sarcasm is negative")
    answer_b.refresh_from_db()
    assert (answer_b.rejected, answer_b.counted) == (True, False)
    first.refresh_from_db()
    assert (first.is_complete, first.final_value, first.final_source) == (False, POS, "single")


def test_two_reviewers_on_one_item_the_second_gets_409_with_the_winner(team):
    project, _, _, reviewer, other, (first, _, _) = team
    won = _decide(_client(reviewer), project, first, decision="correct", value=NEG)
    assert won.status_code == 201
    before = _state(project)
    lost = _decide(_client(other), project, first, decision="correct", value=POS)
    assert lost.status_code == 409
    body = lost.json()
    assert "came first" in body["detail"]
    assert body["winner"] == won.json()
    assert (body["winner"]["reviewer"], body["winner"]["decision"], body["winner"]["value"]) == (
        "rev",
        "correct",
        NEG,
    )
    assert _state(project) == before


def test_a_stale_supersedes_with_no_decision_in_force_is_a_conflict_without_a_winner(team):
    project, _, _, reviewer, _, (first, _, _) = team
    before = _state(project)
    response = _decide(_client(reviewer), project, first, decision="correct", value=NEG, supersedes=12345)
    assert response.status_code == 409 and response.json()["winner"] is None
    assert _state(project) == before


# Bad input: a clear 4xx naming the field, and nothing changed --------------------------


def test_a_decision_on_an_item_that_is_not_complete_is_refused(team):
    project, _, _, reviewer, _, (_, _, third) = team
    before = _state(project)
    response = _decide(_client(reviewer), project, third, decision="correct", value=NEG)
    assert response.status_code == 409
    assert f"item {third.pk} is not complete" in response.json()["detail"]
    assert "winner" not in response.json()
    assert _state(project) == before


@pytest.mark.parametrize(
    "value",
    [
        {"choices": ["maybe"]},
        {"choices": ["positive", "negative"]},
        {"labels": ["positive"]},
        "positive",
        None,
    ],
)
def test_a_correction_whose_value_is_not_one_of_the_labels_is_400_naming_value(team, value):
    project, _, _, reviewer, _, (first, _, _) = team
    before = _state(project)
    response = _decide(_client(reviewer), project, first, decision="correct", value=value)
    assert response.status_code == 400
    assert list(response.json()) == ["value"]
    assert _state(project) == before


def test_another_projects_item_is_404_and_changes_nothing(team):
    project, _, _, reviewer, _, _ = team
    elsewhere = make_project(items=1).items.get()
    before = _state(project)
    response = _decide(_client(reviewer), project, elsewhere, decision="correct", value=NEG)
    assert response.status_code == 404
    assert f"item {elsewhere.pk} is not an item of this project" in response.json()["detail"]
    assert _client(reviewer).get(_url("review-item", project, item_id=elsewhere.pk)).status_code == 404
    assert _state(project) == before
    assert not Review.objects.exists()


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"decision": "approve", "supersedes": None}, "decision"),
        ({"decision": "correct", "value": {"choices": ["negative"]}}, "supersedes"),
        ({"decision": "accept", "supersedes": "latest"}, "supersedes"),
        ({"decision": "accept", "supersedes": None}, "annotation"),
        ({"decision": "accept", "supersedes": None, "annotation": "x"}, "annotation"),
        ({"decision": "reject", "supersedes": None, "annotation": 1, "reason": "r" * 2001}, "reason"),
    ],
)
def test_malformed_decisions_are_400_naming_the_field(team, body, field):
    project, _, _, reviewer, _, (first, _, _) = team
    before = _state(project)
    response = _client(reviewer).post(_url("review-decision", project, item_id=first.pk), body, format="json")
    assert response.status_code == 400
    assert field in response.json()
    assert _state(project) == before


def test_an_annotation_of_another_item_is_400_naming_annotation(team):
    project, _, _, reviewer, _, (first, _, third) = team
    foreign = Annotation.objects.get(item=third)
    before = _state(project)
    response = _decide(_client(reviewer), project, first, decision="accept", annotation=foreign.pk)
    assert response.status_code == 400 and "annotation" in response.json()
    assert _state(project) == before


def test_ids_past_a_bigint_are_not_found_rather_than_a_server_error(team):
    project, _, _, reviewer, _, (first, second, _) = team
    huge = 2**64
    client = _client(reviewer)
    assert client.get(f"/api/projects/{project.pk}/review/items/{huge}/").status_code == 404
    response = client.post(
        f"/api/projects/{project.pk}/review/items/{huge}/decision/",
        {"decision": "correct", "supersedes": None, "value": NEG},
        format="json",
    )
    assert response.status_code == 404
    served = client.post(_url("review-next", project), {"exclude": [huge, first.pk]}, format="json")
    assert served.status_code == 200 and served.json()["item"]["id"] == second.pk


# Roles -----------------------------------------------------------------------------------


def _every_endpoint(client, project, item):
    return [
        client.post(_url("review-next", project), {}, format="json"),
        client.get(_url("review-item", project, item_id=item.pk)),
        client.post(
            _url("review-decision", project, item_id=item.pk),
            {"decision": "correct", "supersedes": None, "value": NEG},
            format="json",
        ),
        client.post(_url("review-release", project)),
    ]


def test_annotators_get_403_strangers_404_and_anonymous_users_401(team):
    project, a, _, _, _, (first, _, _) = team
    before = _state(project)
    assert {r.status_code for r in _every_endpoint(_client(a), project, first)} == {403}
    assert {r.status_code for r in _every_endpoint(_client(UserFactory()), project, first)} == {404}
    assert {r.status_code for r in _every_endpoint(_client(), project, first)} == {401}
    assert _state(project) == before
    assert not Item.objects.filter(project=project, review_leased_by_id__isnull=False).exists()


def test_managers_review_too(team):
    project, _, b, _, _, (first, _, _) = team
    manager = project.memberships.get(role=Membership.Role.MANAGER).user
    answer_b = Annotation.objects.get(item=first, annotator=b)
    assert _client(manager).post(_url("review-next", project), {}, format="json").status_code == 200
    assert (
        _decide(_client(manager), project, first, decision="accept", annotation=answer_b.pk).status_code
        == 201
    )


def test_a_reviewer_who_annotated_the_item_gets_403_and_it_says_so_in_the_item_view(team):
    project, a, _, _, _, (first, _, _) = team
    Membership.objects.filter(project=project, user=a).update(role="reviewer")
    before = _state(project)
    response = _decide(_client(a), project, first, decision="correct", value=NEG)
    assert response.status_code == 403 and "you annotated" in response.json()["detail"]
    assert _state(project) == before
    assert _client(a).get(_url("review-item", project, item_id=first.pk)).json()["yours"] is True
    assert _client(a).post(_url("review-next", project), {}, format="json").status_code == 204


# Schema and page -------------------------------------------------------------------------


def test_the_openapi_schema_lists_the_review_endpoints():
    schema = APIClient().get("/api/schema/", {"format": "json"})
    assert schema.status_code == 200
    paths = schema.json()["paths"]
    for path, method in (
        ("/api/projects/{project_id}/review/next/", "post"),
        ("/api/projects/{project_id}/review/items/{item_id}/", "get"),
        ("/api/projects/{project_id}/review/items/{item_id}/decision/", "post"),
        ("/api/projects/{project_id}/review/release/", "post"),
    ):
        assert method in paths[path], path
    decision = paths["/api/projects/{project_id}/review/items/{item_id}/decision/"]["post"]
    assert {"201", "400", "403", "404", "409"} <= set(decision["responses"])
    assert "ReviewDecisionInput" in str(decision["requestBody"])
    assert "ReviewConflictOutput" in str(decision["responses"]["409"])


def test_the_review_page_opens_for_reviewers_only(client, team):
    project, a, _, reviewer, _, _ = team
    url = reverse("annotate:review", args=[project.pk])
    client.force_login(reviewer)
    response = client.get(url)
    assert response.status_code == 200
    assert "annotate/review.html" in [t.name for t in response.templates]
    assert (
        b"annotate/js/review_page.js" in response.content and b"annotate/css/review.css" in response.content
    )
    assert b"waiting for review: <strong data-waiting>2</strong>" in response.content
    project_page = client.get(reverse("annotate:project", args=[project.pk]))
    assert b"data-review-link" in project_page.content
    client.force_login(a)
    assert client.get(url).status_code == 403
    assert b"data-review-link" not in client.get(reverse("annotate:project", args=[project.pk])).content
    client.force_login(UserFactory())
    assert client.get(url).status_code == 404
