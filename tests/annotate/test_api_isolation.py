"""Who may see and do what through the API: non-members get 404 and learn nothing, members
lacking the role get 403, and nothing changes in either case."""

from types import SimpleNamespace

import pytest
from django.urls import reverse
from rest_framework.test import APIClient

from annotate.models import Annotation, Assignment, Item, Label, Membership, Project, Review, Skip
from annotate.projects import project_update
from annotate.queue import annotation_submit, assignment_next
from tests.factories import UserFactory, make_project

pytestmark = pytest.mark.django_db

SECRETS = (
    "Zephyr secret project",
    "hidden instructions",
    "the confidential item text",
    "classified-label",
    "secret-annotator",
    "secret-reviewer",
)
POS = {"choices": ["classified-label"]}


@pytest.fixture
def world():
    """A project full of data, its members of each role, and an outsider with a project of their own."""
    annotator = UserFactory(username="secret-annotator")
    reviewer = UserFactory(username="secret-reviewer")
    project = make_project(
        name="Zephyr secret project",
        instructions="hidden instructions",
        labels=("classified-label", "other-label"),
        members=[(annotator, Membership.Role.ANNOTATOR), (reviewer, Membership.Role.REVIEWER)],
    )
    item = Item.objects.create(project=project, external_id="c1", text="the confidential item text")
    Item.objects.create(project=project, external_id="c2", text="the confidential item text, again")
    lease = assignment_next(project=project, annotator=annotator)
    annotation_submit(project=project, item_id=lease.item.pk, annotator=annotator, value=POS)
    outsider = UserFactory(username="outsider")
    own = make_project(name="Outsider's own project", items=1)
    own.memberships.filter(role=Membership.Role.MANAGER).update(user=outsider)
    return SimpleNamespace(
        project=project,
        item=item,
        label=project.labels.get(name="classified-label"),
        manager=project.memberships.get(role=Membership.Role.MANAGER).user,
        annotator=annotator,
        annotator_membership=project.memberships.get(user=annotator),
        reviewer=reviewer,
        outsider=outsider,
        own=own,
    )


def _url(name, project_id, **kwargs):
    return reverse(f"api:{name}", kwargs={"project_id": project_id, **kwargs})


# (method, url builder, body) for every project-scoped endpoint; builders take (world, project_id).
ENDPOINTS = {
    "project detail": ("get", lambda w, p: _url("project-detail", p), None),
    "project update": ("patch", lambda w, p: _url("project-detail", p), {"name": "hijacked"}),
    "project delete": ("delete", lambda w, p: _url("project-detail", p), None),
    "label list": ("get", lambda w, p: _url("label-list", p), None),
    "label create": ("post", lambda w, p: _url("label-list", p), {"name": "intruder"}),
    "label update": (
        "patch",
        lambda w, p: _url("label-detail", p, label_id=w.label.pk),
        {"name": "renamed"},
    ),
    "label delete": ("delete", lambda w, p: _url("label-detail", p, label_id=w.label.pk), None),
    "member list": ("get", lambda w, p: _url("member-list", p), None),
    "member add": ("post", lambda w, p: _url("member-list", p), {"username": "outsider", "role": "manager"}),
    "member update": (
        "patch",
        lambda w, p: _url("member-detail", p, membership_id=w.annotator_membership.pk),
        {"role": "manager"},
    ),
    "member remove": (
        "delete",
        lambda w, p: _url("member-detail", p, membership_id=w.annotator_membership.pk),
        None,
    ),
    "item list": ("get", lambda w, p: _url("item-list", p), None),
    "item add": ("post", lambda w, p: _url("item-list", p), {"items": [{"text": "injected"}]}),
    "item detail": ("get", lambda w, p: _url("item-detail", p, item_id=w.item.pk), None),
    "next": ("post", lambda w, p: _url("next", p), {}),
    "annotation list": ("get", lambda w, p: _url("annotation-list", p), None),
    "annotation submit": (
        "post",
        lambda w, p: _url("annotation-list", p),
        lambda w: {"item": w.item.pk, "value": POS},
    ),
    "submit and next": (
        "post",
        lambda w, p: _url("submit-and-next", p),
        lambda w: {"item": w.item.pk, "value": POS},
    ),
    "skip": ("post", lambda w, p: _url("skip", p), lambda w: {"item": w.item.pk}),
    "dashboards": ("get", lambda w, p: _url("dashboards", p), None),
    "dashboard gold": ("get", lambda w, p: _url("dashboard-gold", p), None),
    "gold mark": ("put", lambda w, p: _url("item-gold", p, item_id=w.item.pk), {"value": POS}),
    "review next": ("post", lambda w, p: _url("review-next", p), {}),
    "review decision": (
        "post",
        lambda w, p: _url("review-decision", p, item_id=w.item.pk),
        {"decision": "correct", "supersedes": None, "value": POS},
    ),
    "consensus recompute": ("post", lambda w, p: _url("consensus-recompute", p), {}),
}

MANAGER_ONLY = [
    "project update",
    "project delete",
    "label create",
    "label update",
    "label delete",
    "member list",
    "member add",
    "member update",
    "member remove",
    "item add",
    "dashboards",
    "dashboard gold",
    "gold mark",
    "consensus recompute",
]


def _call(client, world, endpoint, project_id=None):
    method, url, body = ENDPOINTS[endpoint]
    if callable(body):
        body = body(world)
    url = url(world, world.project.pk if project_id is None else project_id)
    if method == "get":
        return getattr(client, method)(url)
    return getattr(client, method)(url, body, format="json")


def _client(user):
    client = APIClient()
    client.force_authenticate(user)
    return client


def _snapshot():
    """Everything an endpoint could change, to show that a refused request changed nothing."""
    return (
        list(Project.objects.values_list("id", "name", "overlap")),
        list(Label.objects.values_list("id", "name")),
        list(Item.objects.values_list("id", "text", "lease_count", "annotation_count")),
        list(Membership.objects.values_list("id", "user_id", "role")),
        list(Annotation.objects.values_list("id", "value")),
        list(Assignment.objects.values_list("id", "status")),
        list(Skip.objects.values_list("id")),
        list(
            Item.objects.values_list("id", "final_value", "pick_kind", "review_state", "review_leased_by_id")
        ),
        list(Review.objects.values_list("id")),
    )


def _assert_reveals_nothing(response):
    body = response.content.decode()
    for secret in SECRETS:
        assert secret not in body


@pytest.mark.parametrize("endpoint", ENDPOINTS)
def test_a_non_member_gets_404_learns_nothing_and_changes_nothing(world, endpoint):
    before = _snapshot()
    response = _call(_client(world.outsider), world, endpoint)
    assert response.status_code == 404
    _assert_reveals_nothing(response)
    assert _snapshot() == before


@pytest.mark.parametrize("endpoint", ENDPOINTS)
def test_a_non_member_cannot_tell_a_hidden_project_from_a_missing_one(world, endpoint):
    client = _client(world.outsider)
    hidden = _call(client, world, endpoint)
    missing = _call(client, world, endpoint, project_id=world.project.pk + 1000)
    assert (hidden.status_code, hidden.json()) == (missing.status_code, missing.json())


@pytest.mark.parametrize("endpoint", ENDPOINTS)
def test_an_anonymous_request_gets_401_and_learns_nothing(world, endpoint):
    before = _snapshot()
    response = _call(APIClient(), world, endpoint)
    assert response.status_code == 401
    _assert_reveals_nothing(response)
    assert _snapshot() == before


@pytest.mark.parametrize("endpoint", MANAGER_ONLY)
def test_an_annotator_gets_403_on_manager_only_endpoints_and_changes_nothing(world, endpoint):
    before = _snapshot()
    response = _call(_client(world.annotator), world, endpoint)
    assert response.status_code == 403
    assert _snapshot() == before


@pytest.mark.parametrize("endpoint", [e for e in MANAGER_ONLY if e != "member list"])
def test_a_reviewer_gets_403_on_manager_only_endpoints_and_changes_nothing(world, endpoint):
    before = _snapshot()
    response = _call(_client(world.reviewer), world, endpoint)
    assert response.status_code == 403
    assert _snapshot() == before


def test_a_reviewer_may_list_members(world):
    response = _call(_client(world.reviewer), world, "member list")
    assert response.status_code == 200
    assert {row["username"] for row in response.json()["results"]} == {
        world.manager.username,
        "secret-annotator",
        "secret-reviewer",
    }


@pytest.mark.parametrize(
    "endpoint", ["project detail", "label list", "item list", "item detail", "annotation list"]
)
def test_every_member_may_read_the_project(world, endpoint):
    for user in (world.annotator, world.reviewer, world.manager):
        assert _call(_client(user), world, endpoint).status_code == 200


def test_every_member_may_label(world):
    project_update(project=world.project, overlap=3)
    for user in (world.annotator, world.reviewer, world.manager):
        client = _client(user)
        lease = client.post(_url("next", world.project.pk), {}, format="json")
        assert lease.status_code == 200
        body = {"item": lease.json()["item"]["id"], "value": POS}
        assert client.post(_url("annotation-list", world.project.pk), body, format="json").status_code == 201
    assert set(Annotation.objects.values_list("annotator_id", flat=True)) == {
        world.annotator.pk,
        world.reviewer.pk,
        world.manager.pk,
    }


def test_the_project_list_never_shows_other_projects(world):
    response = _client(world.outsider).get(reverse("api:project-list"))
    assert response.status_code == 200
    assert [row["id"] for row in response.json()["results"]] == [world.own.pk]
    _assert_reveals_nothing(response)


def test_an_annotator_sees_only_their_own_annotations(world):
    other = UserFactory()
    world.project.memberships.create(user=other, role=Membership.Role.ANNOTATOR)
    response = _client(other).get(_url("annotation-list", world.project.pk))
    assert response.status_code == 200
    assert response.json()["results"] == []


@pytest.mark.parametrize(
    ("endpoint", "method", "url"),
    [
        ("label", "patch", lambda w: _url("label-detail", w.own.pk, label_id=w.label.pk)),
        ("label", "delete", lambda w: _url("label-detail", w.own.pk, label_id=w.label.pk)),
        (
            "member",
            "patch",
            lambda w: _url("member-detail", w.own.pk, membership_id=w.annotator_membership.pk),
        ),
        (
            "member",
            "delete",
            lambda w: _url("member-detail", w.own.pk, membership_id=w.annotator_membership.pk),
        ),
        ("item", "get", lambda w: _url("item-detail", w.own.pk, item_id=w.item.pk)),
    ],
)
def test_a_manager_cannot_reach_another_projects_objects_through_their_own_project(
    world, endpoint, method, url
):
    before = _snapshot()
    body = {"name": "renamed"} if endpoint == "label" else {"role": "manager"}
    client = _client(world.outsider)
    response = (
        client.get(url(world))
        if method == "get"
        else getattr(client, method)(url(world), body, format="json")
    )
    assert response.status_code == 404
    _assert_reveals_nothing(response)
    assert _snapshot() == before


def test_a_manager_cannot_submit_or_skip_another_projects_item_through_their_own_project(world):
    before = _snapshot()
    client = _client(world.outsider)
    submit = client.post(
        _url("annotation-list", world.own.pk),
        {"item": world.item.pk, "value": {"choices": ["positive"]}},
        format="json",
    )
    skip = client.post(_url("skip", world.own.pk), {"item": world.item.pk}, format="json")
    assert submit.status_code == 409
    assert skip.status_code == 409
    _assert_reveals_nothing(submit)
    _assert_reveals_nothing(skip)
    assert _snapshot() == before
