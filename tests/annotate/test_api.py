import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from rest_framework.authtoken.models import Token
from rest_framework.renderers import JSONRenderer
from rest_framework.test import APIClient

from annotate.models import Annotation, Assignment, Item, Label, Membership, Project, Skip
from tests.factories import (
    PASSWORD,
    AnnotationFactory,
    AssignmentFactory,
    ItemFactory,
    UserFactory,
    make_project,
)

pytestmark = pytest.mark.django_db

POS = {"choices": ["positive"]}
NEG = {"choices": ["negative"]}


def _client(user=None) -> APIClient:
    client = APIClient()
    if user is not None:
        client.force_authenticate(user)
    return client


def _url(name: str, project: Project | int | None = None, **kwargs) -> str:
    if project is not None:
        kwargs["project_id"] = project if isinstance(project, int) else project.pk
    return reverse(f"api:{name}", kwargs=kwargs)


def _manager(project: Project):
    return project.memberships.get(role=Membership.Role.MANAGER).user


def _project_with(role=Membership.Role.ANNOTATOR, **fields):
    user = UserFactory()
    project = make_project(members=[(user, role)], **fields)
    return project, user


def _next(client, project, exclude=()):
    return client.post(_url("next", project), {"exclude": list(exclude)}, format="json")


def _submit(client, project, item_id, value=POS, **extra):
    body = {"item": item_id, "value": value, "active_ms": 1200, **extra}
    return client.post(_url("annotation-list", project), body, format="json")


def _label_items(project, user, n, value=POS):
    client = _client(user)
    for _ in range(n):
        item_id = _next(client, project).json()["item"]["id"]
        assert _submit(client, project, item_id, value).status_code == 201


# Auth ------------------------------------------------------------------------------------


def test_token_endpoint_gives_a_token_that_authenticates_later_requests():
    user = UserFactory()
    response = APIClient().post(
        _url("token"), {"username": user.username, "password": PASSWORD}, format="json"
    )
    assert response.status_code == 200
    token = response.json()["token"]
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {token}")
    assert client.get(_url("project-list")).status_code == 200
    assert user.auth_token.key == token


def test_token_endpoint_rejects_a_wrong_password():
    user = UserFactory()
    response = APIClient().post(_url("token"), {"username": user.username, "password": "nope"}, format="json")
    assert response.status_code == 400
    assert "token" not in response.json()


def test_anonymous_requests_are_refused_with_401():
    assert APIClient().get(_url("project-list")).status_code == 401


# Projects --------------------------------------------------------------------------------


def test_any_user_creates_a_project_with_labels_and_becomes_its_manager():
    user = UserFactory()
    body = {"name": "Sentiment", "labels": ["positive", "negative"], "overlap": 2}
    response = _client(user).post(_url("project-list"), body, format="json")
    assert response.status_code == 201
    data = response.json()
    assert data["my_role"] == "manager"
    assert data["task_type"] == "text_classification"
    assert [(label["name"], label["hotkey"]) for label in data["labels"]] == [
        ("positive", "1"),
        ("negative", "2"),
    ]
    project = Project.objects.get(pk=data["id"])
    assert project.overlap == 2
    assert project.memberships.get().user == user
    assert project.memberships.get().role == Membership.Role.MANAGER


def test_project_create_rejects_an_invalid_setting_and_stores_nothing():
    response = _client(UserFactory()).post(_url("project-list"), {"name": "X", "overlap": 0}, format="json")
    assert response.status_code == 400
    assert "overlap" in response.json()
    assert not Project.objects.exists()


def test_project_list_shows_my_projects_with_my_role():
    project, annotator = _project_with(Membership.Role.ANNOTATOR)
    response = _client(annotator).get(_url("project-list"))
    assert response.status_code == 200
    assert [(p["id"], p["my_role"]) for p in response.json()["results"]] == [(project.pk, "annotator")]


def test_manager_changes_project_settings():
    project = make_project(overlap=1)
    response = _client(_manager(project)).patch(
        _url("project-detail", project), {"overlap": 3, "instructions": "Be kind"}, format="json"
    )
    assert response.status_code == 200
    assert response.json()["overlap"] == 3
    project.refresh_from_db()
    assert (project.overlap, project.instructions) == (3, "Be kind")


def test_manager_deletes_a_project():
    project = make_project(items=3)
    url = _url("project-detail", project)
    refused = _client(_manager(project)).delete(url)  # unconfirmed: what would go, nothing gone
    assert refused.status_code == 400 and refused.json()["deletes"]["items"] == 3
    response = _client(_manager(project)).delete(
        url, QUERY_STRING=f"confirm={project.name}".replace(" ", "+")
    )
    assert response.status_code == 204
    assert not Project.objects.filter(pk=project.pk).exists()
    assert not Item.objects.exists()


# Items -----------------------------------------------------------------------------------


def test_manager_adds_items_in_bulk():
    project = make_project()
    rows = [{"text": "good film", "external_id": "a"}, {"text": "bad film", "metadata": {"src": "imdb"}}]
    response = _client(_manager(project)).post(_url("item-list", project), {"items": rows}, format="json")
    assert response.status_code == 201
    assert response.json() == {"created": 2}
    assert list(project.items.values_list("text", flat=True)) == ["good film", "bad film"]
    assert project.items.get(text="bad film").metadata == {"src": "imdb"}


def test_a_bad_item_row_rejects_the_request_naming_row_and_field_and_stores_nothing():
    project = make_project()
    rows = [{"text": "fine"}, {"text": "   "}]
    response = _client(_manager(project)).post(_url("item-list", project), {"items": rows}, format="json")
    assert response.status_code == 400
    detail = response.json()["detail"]
    assert "row 2" in detail
    assert "'text'" in detail
    assert not project.items.exists()


def test_a_duplicate_external_id_is_rejected_naming_both_rows():
    project = make_project()
    rows = [
        {"text": "a", "external_id": "x"},
        {"text": "b", "external_id": "y"},
        {"text": "c", "external_id": "x"},
    ]
    response = _client(_manager(project)).post(_url("item-list", project), {"items": rows}, format="json")
    assert response.status_code == 400
    detail = response.json()["detail"]
    assert "row 3" in detail
    assert "row 1" in detail
    assert "'external_id'" in detail
    assert not project.items.exists()


def test_item_detail_shows_the_item_to_a_member():
    project, annotator = _project_with(items=1)
    item = project.items.get()
    response = _client(annotator).get(_url("item-detail", project, item_id=item.pk))
    assert response.status_code == 200
    assert response.json()["text"] == item.text
    assert response.json()["image_url"] is None


def test_item_of_another_project_is_not_found():
    project, annotator = _project_with(items=1)
    other = make_project(items=1)
    response = _client(annotator).get(_url("item-detail", project, item_id=other.items.get().pk))
    assert response.status_code == 404
    assert other.items.get().text not in response.content.decode()


def test_items_list_filters_labeled_unlabeled_and_skipped():
    project, annotator = _project_with(items=4)
    client = _client(annotator)
    first = _next(client, project).json()["item"]["id"]
    _submit(client, project, first)
    second = _next(client, project).json()["item"]["id"]
    assert client.post(_url("skip", project), {"item": second}, format="json").status_code == 201

    def ids(query):
        response = client.get(_url("item-list", project), query)
        assert response.status_code == 200
        return [row["id"] for row in response.json()["results"]]

    all_ids = list(project.items.order_by("id").values_list("id", flat=True))
    assert ids({"status": "labeled"}) == [first]
    assert ids({"status": "skipped"}) == [second]
    assert ids({"status": "unlabeled"}) == [i for i in all_ids if i != first]
    assert ids({}) == all_ids


def test_items_list_mine_filter_is_relative_to_the_requesting_user():
    other = UserFactory()
    project, annotator = _project_with(items=3, overlap=2)
    project.memberships.create(user=other, role=Membership.Role.ANNOTATOR)
    _label_items(project, other, 1)
    labeled_by_other = Annotation.objects.get().item_id
    client = _client(annotator)
    mine = client.get(_url("item-list", project), {"status": "labeled", "mine": "1"}).json()["results"]
    anyone = client.get(_url("item-list", project), {"status": "labeled"}).json()["results"]
    assert mine == []
    assert [row["id"] for row in anyone] == [labeled_by_other]


def test_items_list_rejects_an_unknown_status():
    project, annotator = _project_with(items=1)
    response = _client(annotator).get(_url("item-list", project), {"status": "done"})
    assert response.status_code == 400
    assert "status" in response.json()


def test_items_list_keyset_pagination_follows_next_to_the_end_without_repeats():
    project, annotator = _project_with(items=25)
    client = _client(annotator)
    url, seen, pages = _url("item-list", project) + "?page_size=10", [], 0
    while url:
        response = client.get(url)
        assert response.status_code == 200
        seen += [row["id"] for row in response.json()["results"]]
        url = response.json()["next"]
        pages += 1
    assert pages == 3
    assert seen == list(project.items.order_by("id").values_list("id", flat=True))
    assert len(set(seen)) == 25


# Labels ----------------------------------------------------------------------------------


def test_member_lists_labels_in_order():
    project, annotator = _project_with(labels=("b", "a", "c"))
    response = _client(annotator).get(_url("label-list", project))
    assert response.status_code == 200
    assert [label["name"] for label in response.json()] == ["b", "a", "c"]


def test_manager_adds_a_label():
    project = make_project()
    response = _client(_manager(project)).post(
        _url("label-list", project), {"name": "neutral", "colour": "#aabbcc"}, format="json"
    )
    assert response.status_code == 201
    assert project.labels.get(name="neutral").colour == "#aabbcc"


def test_adding_a_label_with_a_taken_name_is_rejected():
    project = make_project()
    response = _client(_manager(project)).post(
        _url("label-list", project), {"name": "positive"}, format="json"
    )
    assert response.status_code == 400
    assert project.labels.filter(name="positive").count() == 1


def test_renaming_a_label_keeps_its_annotations_with_the_new_name():
    project, annotator = _project_with(items=2)
    _label_items(project, annotator, 2, POS)
    label = project.labels.get(name="positive")
    response = _client(_manager(project)).patch(
        _url("label-detail", project, label_id=label.pk), {"name": "good"}, format="json"
    )
    assert response.status_code == 200
    assert response.json()["name"] == "good"
    assert Annotation.objects.count() == 2
    assert [a.value for a in Annotation.objects.all()] == [{"choices": ["good"]}] * 2


def test_deleting_a_label_in_use_is_refused_with_the_count_of_annotations():
    project, annotator = _project_with(items=3)
    _label_items(project, annotator, 3, POS)
    label = project.labels.get(name="positive")
    response = _client(_manager(project)).delete(_url("label-detail", project, label_id=label.pk))
    assert response.status_code == 400
    assert "used by 3 annotations" in response.json()["detail"]
    assert Label.objects.filter(pk=label.pk).exists()


def test_deleting_an_unused_label_removes_it():
    project = make_project()
    label = project.labels.get(name="negative")
    response = _client(_manager(project)).delete(_url("label-detail", project, label_id=label.pk))
    assert response.status_code == 204
    assert not Label.objects.filter(pk=label.pk).exists()


# Members ---------------------------------------------------------------------------------


def test_manager_adds_a_member_by_username():
    project = make_project()
    newcomer = UserFactory(username="newcomer")
    response = _client(_manager(project)).post(
        _url("member-list", project), {"username": "newcomer", "role": "reviewer"}, format="json"
    )
    assert response.status_code == 201
    assert response.json()["username"] == "newcomer"
    assert response.json()["role"] == "reviewer"
    assert project.memberships.get(user=newcomer).role == Membership.Role.REVIEWER


def test_adding_an_unknown_username_is_rejected():
    project = make_project()
    response = _client(_manager(project)).post(
        _url("member-list", project), {"username": "ghost", "role": "annotator"}, format="json"
    )
    assert response.status_code == 400
    assert "username" in response.json()
    assert project.memberships.count() == 1


def test_reviewer_lists_members_with_their_annotation_counts():
    project, annotator = _project_with(items=3)
    reviewer = UserFactory()
    project.memberships.create(user=reviewer, role=Membership.Role.REVIEWER)
    _label_items(project, annotator, 2)
    response = _client(reviewer).get(_url("member-list", project))
    assert response.status_code == 200
    counts = {row["username"]: (row["role"], row["annotation_count"]) for row in response.json()["results"]}
    assert counts[annotator.username] == ("annotator", 2)
    assert counts[reviewer.username] == ("reviewer", 0)


def test_manager_changes_a_members_role_and_removes_them():
    project, annotator = _project_with()
    membership = project.memberships.get(user=annotator)
    client = _client(_manager(project))
    url = _url("member-detail", project, membership_id=membership.pk)
    response = client.patch(url, {"role": "reviewer"}, format="json")
    assert response.status_code == 200
    membership.refresh_from_db()
    assert membership.role == Membership.Role.REVIEWER
    assert client.delete(url).status_code == 204
    assert not project.memberships.filter(user=annotator).exists()


def test_the_last_manager_cannot_be_removed():
    project = make_project()
    membership = project.memberships.get()
    response = _client(membership.user).delete(_url("member-detail", project, membership_id=membership.pk))
    assert response.status_code == 400
    assert "at least one manager" in response.json()["detail"]
    assert project.memberships.filter(pk=membership.pk).exists()


# Queue -----------------------------------------------------------------------------------


def test_annotator_gets_the_next_item_submits_it_and_skips_another():
    project, annotator = _project_with(items=3)
    client = _client(annotator)
    response = _next(client, project)
    assert response.status_code == 200
    lease = response.json()
    first = project.items.get(pk=lease["item"]["id"])
    assert lease["item"]["text"] == first.text
    assert Assignment.objects.get(pk=lease["assignment"]["id"]).status == Assignment.Status.OPEN

    response = _submit(client, project, first.pk)
    assert response.status_code == 201
    assert response.json()["annotator"] == annotator.username
    assert response.json()["value"] == POS
    assert response.json()["counted"] is True
    annotation = Annotation.objects.get()
    assert (annotation.item_id, annotation.active_ms) == (first.pk, 1200)

    second = _next(client, project).json()["item"]["id"]
    response = client.post(_url("skip", project), {"item": second}, format="json")
    assert response.status_code == 201
    assert Skip.objects.get().item_id == second
    assert project.items.get(pk=second).lease_count == 0


def test_submit_stores_the_proposal_shown_with_its_model_version_id():
    project, annotator = _project_with(items=1)
    client = _client(annotator)
    item_id = _next(client, project).json()["item"]["id"]
    # As the labeling page sends it back: the proposal shown, with the version's database id.
    proposal = {"value": POS, "score": 0.8, "model_version_id": 7, "model_version_number": 2}
    response = _submit(client, project, item_id, NEG, proposal=proposal)
    assert response.status_code == 201
    annotation = Annotation.objects.get()
    assert (annotation.proposal_value, annotation.proposal_model_version_id) == (POS, 7)


@pytest.mark.parametrize("bad", ["seven", 0, [7]])
def test_submit_rejects_a_proposal_model_version_id_that_is_not_an_id(bad):
    project, annotator = _project_with(items=1)
    client = _client(annotator)
    item_id = _next(client, project).json()["item"]["id"]
    response = _submit(client, project, item_id, NEG, proposal={"value": POS, "model_version_id": bad})
    assert response.status_code == 400
    assert list(response.json()["proposal"]) == ["model_version_id"]
    assert not Annotation.objects.exists()


@pytest.mark.parametrize(
    "fields",
    [
        {"text": "plain", "metadata": {}, "proposal": None},
        {"text": "<b>x</b>", "metadata": {"a": [1, "b"]}, "proposal": {"value": POS, "score": 1}},
        {
            "image": "projects/1/a.png",
            "width": 3,
            "height": 2,
            "proposal": {"value": NEG, "model_version_id": 4, "model_version_number": 2},
        },
        {"text": "t", "proposal": {"value": POS, "score": 0.25, "model_version_id": None}},
    ],
    ids=["text", "metadata-and-score", "image-and-version", "null-version"],
)
def test_queue_bodies_built_directly_are_what_the_output_serializers_give(fields):
    # The queue views build NextOutput's and AnnotationOutput's bodies without DRF (speed);
    # the serializers still document them, so the two must agree.
    from annotate.api import serializers as s

    project, annotator = _project_with()
    item = ItemFactory(project=project, **fields)
    assignment = AssignmentFactory(project=project, item=item, annotator=annotator)
    annotation = AnnotationFactory(project=project, item=item, annotator=annotator, active_ms=5, late=True)
    for obj in (item, assignment, annotation):
        obj.refresh_from_db()  # the types the database gives back

    # As rendered: 1 == 1.0 in Python, not in the JSON a client reads.
    render = JSONRenderer().render
    assert render(s.next_data(assignment, item)) == render(
        s.NextOutput({"assignment": assignment, "item": item}).data
    )
    assert render(s.annotation_data(annotation)) == render(s.AnnotationOutput(annotation).data)


def test_next_answers_204_when_the_queue_is_empty():
    project, annotator = _project_with(items=1)
    _label_items(project, annotator, 1)
    response = _next(_client(annotator), project)
    assert response.status_code == 204
    assert not Assignment.objects.filter(status=Assignment.Status.OPEN).exists()


def test_submit_and_next_stores_the_annotation_and_returns_the_next_item():
    project, annotator = _project_with(items=3)
    client = _client(annotator)
    first = _next(client, project).json()["item"]["id"]
    body = {"item": first, "value": POS, "active_ms": 800, "exclude": []}
    response = client.post(_url("submit-and-next", project), body, format="json")
    assert response.status_code == 201
    data = response.json()
    assert data["annotation"]["item"] == first
    assert data["next"]["item"]["id"] != first
    assert Annotation.objects.get().item_id == first
    assert Assignment.objects.get(status=Assignment.Status.OPEN).item_id == data["next"]["item"]["id"]


def test_submit_and_next_skips_the_prefetched_item_the_client_excludes():
    project, annotator = _project_with(items=3)
    client = _client(annotator)
    current = _next(client, project).json()["item"]["id"]
    prefetched = _next(client, project, exclude=[current]).json()["item"]["id"]
    body = {"item": current, "value": POS, "exclude": [prefetched]}
    data = client.post(_url("submit-and-next", project), body, format="json").json()
    assert data["next"]["item"]["id"] not in (current, prefetched)
    assert Assignment.objects.filter(status=Assignment.Status.OPEN).count() == 2


def test_submit_and_next_returns_null_next_when_nothing_is_left():
    project, annotator = _project_with(items=1)
    client = _client(annotator)
    item_id = _next(client, project).json()["item"]["id"]
    response = client.post(_url("submit-and-next", project), {"item": item_id, "value": POS}, format="json")
    assert response.status_code == 201
    assert response.json()["next"] is None
    assert Annotation.objects.count() == 1


def test_submit_and_next_stores_the_annotation_even_when_the_lease_limit_stops_the_next_item():
    project, annotator = _project_with(items=5)
    client = _client(annotator)
    skipped = _next(client, project).json()["item"]["id"]
    client.post(_url("skip", project), {"item": skipped}, format="json")
    held = [_next(client, project).json()["item"]["id"]]
    held.append(_next(client, project, exclude=held).json()["item"]["id"])
    # A late answer for the skipped item frees no lease, so the two held ones block a third.
    body = {"item": skipped, "value": POS, "exclude": held}
    response = client.post(_url("submit-and-next", project), body, format="json")
    assert response.status_code == 201
    assert response.json()["next"] is None
    assert "you already hold 2 items" in response.json()["detail"]
    assert Annotation.objects.get().item_id == skipped
    assert Annotation.objects.get().late


def test_submit_with_an_unknown_label_is_rejected_naming_it_and_stores_nothing():
    project, annotator = _project_with(items=1)
    client = _client(annotator)
    item_id = _next(client, project).json()["item"]["id"]
    response = _submit(client, project, item_id, {"choices": ["sarcastic"]})
    assert response.status_code == 400
    assert "unknown label 'sarcastic'" in response.json()["value"][0]
    assert not Annotation.objects.exists()
    assert Assignment.objects.get().status == Assignment.Status.OPEN


def test_next_beyond_the_lease_limit_is_refused_with_409():
    project, annotator = _project_with(items=5)
    client = _client(annotator)
    first = _next(client, project).json()["item"]["id"]
    second = _next(client, project, exclude=[first]).json()["item"]["id"]
    response = _next(client, project, exclude=[first, second])
    assert response.status_code == 409
    assert "you already hold 2 items" in response.json()["detail"]
    assert Assignment.objects.filter(status=Assignment.Status.OPEN).count() == 2


def test_submit_of_an_item_never_assigned_is_refused_with_409():
    project, annotator = _project_with(items=1)
    response = _submit(_client(annotator), project, project.items.get().pk)
    assert response.status_code == 409
    assert "not assigned to you" in response.json()["detail"]
    assert not Annotation.objects.exists()


def test_skip_of_an_item_never_assigned_is_refused_with_409():
    project, annotator = _project_with(items=1)
    response = _client(annotator).post(_url("skip", project), {"item": project.items.get().pk}, format="json")
    assert response.status_code == 409
    assert not Skip.objects.exists()


def test_annotator_sees_only_their_own_annotations_and_a_reviewer_sees_all():
    project, annotator = _project_with(items=2, overlap=2)
    other, reviewer = UserFactory(), UserFactory()
    project.memberships.create(user=other, role=Membership.Role.ANNOTATOR)
    project.memberships.create(user=reviewer, role=Membership.Role.REVIEWER)
    _label_items(project, annotator, 2)
    _label_items(project, other, 2, NEG)
    url = _url("annotation-list", project)

    own = _client(annotator).get(url).json()["results"]
    assert {row["annotator"] for row in own} == {annotator.username}
    assert len(own) == 2
    everyone = _client(reviewer).get(url).json()["results"]
    assert len(everyone) == 4
    item_id = own[0]["item"]
    for_item = _client(reviewer).get(url, {"item": item_id}).json()["results"]
    assert {(row["item"], row["annotator"]) for row in for_item} == {
        (item_id, annotator.username),
        (item_id, other.username),
    }


# Schema ----------------------------------------------------------------------------------


def test_schema_and_docs_are_served():
    schema = APIClient().get("/api/schema/")
    assert schema.status_code == 200
    assert b"/api/projects/{project_id}/submit-and-next/" in schema.content
    docs = APIClient().get("/api/docs/")
    assert docs.status_code == 200
    assert b"swagger" in docs.content.lower()


# End to end ------------------------------------------------------------------------------


def _token_client(username: str) -> APIClient:
    client = APIClient()
    token = client.post(_url("token"), {"username": username, "password": PASSWORD}, format="json")
    client.credentials(HTTP_AUTHORIZATION=f"Token {token.json()['token']}")
    return client


def test_two_annotators_label_a_new_project_to_exactly_its_overlap():
    lead, ann1, ann2 = UserFactory(), UserFactory(), UserFactory()
    lead_client = _token_client(lead.username)
    response = lead_client.post(
        _url("project-list"),
        {"name": "Reviews", "labels": ["positive", "negative"], "overlap": 2},
        format="json",
    )
    assert response.status_code == 201
    project_id = response.json()["id"]
    rows = [{"text": f"review number {i}", "external_id": f"r{i}"} for i in range(10)]
    response = lead_client.post(_url("item-list", project_id), {"items": rows}, format="json")
    assert response.json() == {"created": 10}
    for user in (ann1, ann2):
        body = {"username": user.username, "role": "annotator"}
        assert lead_client.post(_url("member-list", project_id), body, format="json").status_code == 201

    # Both annotators work at once, turn by turn, each only through submit-and-next.
    clients = [_token_client(ann1.username), _token_client(ann2.username)]
    current = [_next(client, project_id).json() for client in clients]
    rounds = 0
    while any(current):
        rounds += 1
        assert rounds <= 20
        for n, client in enumerate(clients):
            if not current[n]:
                continue
            item_id = current[n]["item"]["id"]
            value = POS if item_id % 2 else NEG
            body = {"item": item_id, "value": value, "active_ms": 500, "exclude": []}
            response = client.post(_url("submit-and-next", project_id), body, format="json")
            assert response.status_code == 201
            current[n] = response.json()["next"]
    for client in clients:
        assert _next(client, project_id).status_code == 204

    items = Item.objects.filter(project_id=project_id)
    assert items.count() == 10
    for item in items:
        assert item.annotations.filter(counted=True).count() == 2
        assert item.annotations.count() == 2
        assert item.is_complete
    assert not Assignment.objects.filter(status=Assignment.Status.OPEN).exists()


# Query counts ----------------------------------------------------------------------------


def _queries_per_request(size: int) -> dict[str, int]:
    """SQL statements run by one HTTP next, submit and submit-and-next, token auth included."""
    project, annotator = _project_with(items=size)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=annotator).key}")
    counts = {}

    def post(name, body, expected_status):
        with CaptureQueriesContext(connection) as ctx:
            response = client.post(_url(name, project), body, format="json")
        assert response.status_code == expected_status
        counts[name] = len(ctx.captured_queries)
        return response.json()

    item_id = post("next", {}, 200)["item"]["id"]
    post("annotation-list", {"item": item_id, "value": POS}, 201)
    item_id = client.post(_url("next", project), {}, format="json").json()["item"]["id"]
    post("submit-and-next", {"item": item_id, "value": POS}, 201)
    return counts


# transaction=True: each service's atomic block is the outermost one, as in production, so
# the counts hold no test-only SAVEPOINT statements (BEGIN and COMMIT are counted).
@pytest.mark.django_db(transaction=True)
def test_http_next_and_submit_run_as_many_queries_for_500_items_as_for_5():
    small = _queries_per_request(5)
    large = _queries_per_request(500)
    assert small == large
    # Token + membership lookups, the service's statements (a submit's include moving the
    # annotator's bookmark, reading the item's voters and adding to the quality tallies), BEGIN
    # and COMMIT, and for a served item one lookup of the active model's proposal.
    assert small["next"] <= 10, small
    assert small["annotation-list"] <= 12, small
    assert small["submit-and-next"] <= 20, small


def test_release_gives_back_every_item_the_annotator_holds_and_is_404_to_non_members():
    from rest_framework.test import APIClient

    from annotate.models import Assignment
    from annotate.queue import assignment_next
    from tests.factories import UserFactory, make_project

    annotator = UserFactory()
    project = make_project(items=3, members=[(annotator, "annotator")])
    first = assignment_next(project=project, annotator=annotator).item.pk
    assignment_next(project=project, annotator=annotator, exclude_item_ids=[first])
    api = APIClient()
    api.force_authenticate(UserFactory())
    assert api.post(f"/api/projects/{project.pk}/release/").status_code == 404
    api.force_authenticate(annotator)
    response = api.post(f"/api/projects/{project.pk}/release/")
    assert response.status_code == 200 and response.json() == {"released": 2}
    assert not Assignment.objects.filter(project=project, status="open").exists()
