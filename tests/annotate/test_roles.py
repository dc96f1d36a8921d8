"""Roles, enforced on every page and API endpoint of a project.

The routes come from the URL resolver, so a page or endpoint added later is covered without
touching this file, as long as it declares its minimum role: in ROUTES by URL name, or by the
area its route lies in (AREAS). A project route with neither fails
test_every_project_route_declares_a_minimum_role_for_each_method.

For each route and method: anonymous users are sent to log in (pages) or get 401 (API); a user
who is not a member of the project (here: the manager of another project) gets 404, as for a
project that does not exist; members below the minimum role get 403; members at or above it
get past the role check (any answer but 401, 403, 404, 405 or a 5xx).
"""

import re
from dataclasses import dataclass

import pytest
from django.core.files.base import ContentFile
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver, reverse
from rest_framework.test import APIClient

from annotate.models import ExportJob, ImportJob, Membership
from annotate.projects import label_create
from tests.factories import ItemFactory, UserFactory, make_project
from training.models import TrainingRun

pytestmark = pytest.mark.django_db

MEMBER, REVIEW, MANAGE = "annotator", "reviewer", "manager"  # the minimum role
RANK = {MEMBER: 0, REVIEW: 1, MANAGE: 2}
ROLES = (MEMBER, REVIEW, MANAGE)

# Every project route: its minimum role for each method it answers.
ROUTES: dict[str, dict[str, str]] = {
    # Pages.
    "annotate:project": {"GET": MEMBER},
    "annotate:label": {"GET": MEMBER},
    "annotate:item-image": {"GET": MEMBER},
    "annotate:review": {"GET": REVIEW},
    "annotate:browser": {"GET": MANAGE},
    "annotate:browser-item": {"GET": MANAGE},
    "annotate:browser-count": {"GET": MANAGE},
    "annotate:browser-action": {"POST": MANAGE},
    "annotate:browser-note-resolve": {"POST": MANAGE},
    "annotate:dashboards": {"GET": MANAGE},
    "annotate:import": {"GET": MANAGE, "POST": MANAGE},
    "annotate:import-job": {"GET": MANAGE},
    "annotate:export": {"GET": MANAGE},
    "annotate:export-job": {"GET": MANAGE},
    "annotate:export-download": {"GET": MANAGE},
    "annotate:members": {"GET": MANAGE, "POST": MANAGE},
    "annotate:member": {"POST": MANAGE},
    "annotate:settings": {"GET": MANAGE, "POST": MANAGE},
    "annotate:project-delete": {"GET": MANAGE, "POST": MANAGE},
    "annotate:audit": {"GET": MANAGE},
    "annotate:consensus-recompute": {"POST": MANAGE},
    "annotate:gold-mark": {"POST": MANAGE},
    "annotate:gold-clear": {"POST": MANAGE},
    "training:run-request": {"POST": MANAGE},
    "training:run-status": {"GET": MANAGE},
    "training:run-cancel": {"POST": MANAGE},
    "training:model-card": {"GET": REVIEW},
    "training:model-download": {"GET": MANAGE},
    # API.
    "api:project-detail": {"GET": MEMBER, "PATCH": MANAGE, "DELETE": MANAGE},
    "api:label-list": {"GET": MEMBER, "POST": MANAGE},
    "api:label-detail": {"PATCH": MANAGE, "DELETE": MANAGE},
    "api:member-list": {"GET": REVIEW, "POST": MANAGE},
    "api:member-detail": {"PATCH": MANAGE, "DELETE": MANAGE},
    "api:member-deactivate": {"POST": MANAGE},
    "api:item-list": {"GET": MEMBER, "POST": MANAGE},
    "api:item-detail": {"GET": MEMBER},
    "api:item-gold": {"GET": MANAGE, "PUT": MANAGE, "DELETE": MANAGE},
    "api:next": {"POST": MEMBER},
    "api:annotation-list": {"GET": MEMBER, "POST": MEMBER},
    "api:submit-and-next": {"POST": MEMBER},
    "api:skip": {"POST": MEMBER},
    "api:release": {"POST": MEMBER},
    "api:history": {"GET": MEMBER},
    "api:item-notes": {"POST": MEMBER},
    "api:review-next": {"POST": REVIEW},
    "api:review-release": {"POST": REVIEW},
    "api:review-item": {"GET": REVIEW},
    "api:review-decision": {"POST": REVIEW},
    "api:consensus-recompute": {"POST": MANAGE},
    "api:browser": {"GET": MANAGE},
    "api:browser-item": {"GET": MANAGE},
    "api:browser-actions": {"POST": MANAGE},
    "api:import-list": {"POST": MANAGE},
    "api:import-detail": {"GET": MANAGE},
    "api:export": {"GET": MANAGE},
    "api:export-list": {"POST": MANAGE},
    "api:export-detail": {"GET": MANAGE},
    "api:export-download": {"GET": MANAGE},
    "api:dashboards": {"GET": MANAGE},
    "api:audit-list": {"GET": MANAGE},
    "api:training-run-list": {"GET": REVIEW, "POST": MANAGE},
    "api:training-run-detail": {"GET": REVIEW},
    "api:training-run-cancel": {"POST": MANAGE},
    "api:model-version-list": {"GET": REVIEW},
    "api:model-version-download": {"GET": MANAGE},
    "api:predict": {"POST": MANAGE},
}

# Areas of a project whose every route (any method) needs at least this role: pages and
# endpoints added there later are covered by these lines. Matched on the route after
# "projects/<id:project_id>/".
AREAS = (
    ("review/", REVIEW),
    ("dashboards/", MANAGE),
    ("browser/", MANAGE),
    ("items/actions/", MANAGE),
    ("gold/", MANAGE),
    ("members/", MANAGE),
    ("settings/", MANAGE),
    ("consensus/", MANAGE),
    ("training/", MANAGE),
)

# Routes that answer members lacking the role 404 instead of 403 (a change is asked for).
KNOWN_404_TO_LOWER_ROLES: dict[str, str] = {}

_PARAM = re.compile(r"<(?:\w+:)?(\w+)>")
_PROJECT = "projects/<id:project_id>/"
_VIEW_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")


@dataclass(frozen=True)
class Route:
    name: str
    route: str
    view_class: type | None  # None for a function view

    @property
    def is_api(self) -> bool:
        return self.name.startswith("api:")

    @property
    def params(self) -> list[str]:
        return _PARAM.findall(self.route)

    def implemented_methods(self) -> list[str] | None:
        """The methods a class-based view answers (None for a function view: the table says)."""
        if self.view_class is None:
            return None
        return [m for m in _VIEW_METHODS if hasattr(self.view_class, m.lower())]

    def area(self) -> str | None:
        rest = self.route.split(_PROJECT, 1)[-1]
        return next((role for prefix, role in AREAS if rest.startswith(prefix)), None)

    def roles(self) -> dict[str, str] | None:
        """The minimum role per method: the table's, else the area's; None when undeclared."""
        if self.name in ROUTES:
            return ROUTES[self.name]
        role = self.area()
        if role is None:
            return None
        return {method: role for method in (self.implemented_methods() or ["GET"])}


def _walk(patterns, namespaces: list[str], prefix: str):
    for pattern in patterns:
        if isinstance(pattern, URLResolver):
            namespace = [pattern.namespace] if pattern.namespace else []
            yield from _walk(pattern.url_patterns, namespaces + namespace, prefix + str(pattern.pattern))
        elif isinstance(pattern, URLPattern):
            callback = pattern.callback
            view_class = getattr(callback, "cls", None) or getattr(callback, "view_class", None)
            yield Route(
                ":".join([*namespaces, pattern.name or "?"]), prefix + str(pattern.pattern), view_class
            )


def project_routes() -> list[Route]:
    """Every route under projects/<project_id>/, pages and API, as the resolver has them."""
    return [r for r in _walk(get_resolver().url_patterns, [], "") if "<id:project_id>" in r.route]


def _cases():
    for route in project_routes():
        for method, role in sorted((route.roles() or {}).items()):
            marks = []
            if route.name in KNOWN_404_TO_LOWER_ROLES:
                marks.append(pytest.mark.xfail(strict=True, reason=KNOWN_404_TO_LOWER_ROLES[route.name]))
            yield pytest.param(route, method, role, id=f"{route.name} {method}", marks=marks)


# The declarations -------------------------------------------------------------------------


def test_every_project_route_declares_a_minimum_role_for_each_method():
    undeclared, mismatched = [], []
    for route in project_routes():
        roles = route.roles()
        if roles is None:
            undeclared.append(f"{route.name} ({route.route})")
            continue
        implemented = route.implemented_methods()
        if implemented is not None and sorted(implemented) != sorted(roles):
            mismatched.append(f"{route.name}: answers {implemented}, declared {sorted(roles)}")
    assert not undeclared, f"declare a minimum role in ROUTES or AREAS for: {undeclared}"
    assert not mismatched, f"declare every method the view answers: {mismatched}"


def test_the_table_names_only_routes_that_exist_or_are_expected_later():
    names = {route.name for route in project_routes()}
    expected_later = sorted(set(ROUTES) - names)
    if expected_later:
        pytest.skip(f"expected later (not routed yet): {expected_later}")


def test_the_resolver_walk_finds_pages_and_endpoints_of_both_apps():
    names = {route.name for route in project_routes()}
    assert {"annotate:members", "annotate:settings", "api:member-detail", "api:item-gold"} <= names
    assert {"training:run-request", "api:training-run-list"} <= names


# The requests -----------------------------------------------------------------------------


@dataclass
class World:
    project: object
    users: dict  # role (or "stranger") -> user
    kwargs: dict


PNG = (
    b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x06\x00\x00\x00\x1f\x15"
    b"\xc4\x89\x00\x00\x00\rIDATx\x9cc\xf8\x0f\x00\x00\x01\x01\x00\x05\x18\xd8N\x00\x00\x00\x00IEND\xaeB`\x82"
)


@pytest.fixture
def world() -> World:
    users = {role: UserFactory() for role in ROLES}
    spare = UserFactory()
    project = make_project(
        items=1, members=[*((user, role) for role, user in users.items()), (spare, MEMBER)]
    )
    # A lead elsewhere: managing another project gives no access to this one.
    users["stranger"] = UserFactory()
    make_project(members=[(users["stranger"], MANAGE)])
    item = ItemFactory(project=project, image=ContentFile(PNG, name="pixel.png"), width=1, height=1)
    export_job = ExportJob.objects.create(
        project=project, format="json", status=ExportJob.Status.SUCCEEDED, items_written=0
    )
    export_job.file.save("export.json", ContentFile(b"[]"), save=True)
    import_job = ImportJob.objects.create(
        project=project, format="csv", filename="x.csv", upload="imports/x.csv"
    )
    kwargs = {
        "number": version_with_files(project).number,
        "project_id": project.pk,
        "item_id": item.pk,
        "membership_id": Membership.objects.get(project=project, user=spare).pk,
        "label_id": label_create(project=project, name="unused").pk,
        "run_id": TrainingRun.objects.create(project=project).pk,
        "import_job_id": import_job.pk,
        "export_job_id": export_job.pk,
    }
    return World(project=project, users=users, kwargs=kwargs)


def version_with_files(project):
    """A model version with real files in the storage (a logistic regression on four texts), for
    the model card and the downloads."""
    import numpy as np

    from training.artifact_store import artifact_prefix_new, artifact_staging, artifact_upload
    from training.backends.text import TextLogRegBackend
    from training.models import DatasetSnapshot, ModelVersion

    backend = TextLogRegBackend()
    backend.fit(
        ["good", "fine", "bad", "awful"], np.array([0, 0, 1, 1]), classes=["a", "b"], multi_label=False
    )
    prefix = artifact_prefix_new(project_id=project.pk)
    with artifact_staging() as folder:
        backend.save(folder)
        artifact_upload(folder=folder, prefix=prefix)
    dataset = DatasetSnapshot.objects.create(
        project=project, classes=["a", "b"], item_ids=[], values=[], validation_ids=[], fingerprint="roles"
    )
    return ModelVersion.objects.create(
        project=project, number=1, backend=backend.name, params=backend.params, dataset=dataset,
        metrics={"classes": ["a", "b"], "n_train": 4}, artifact_path=prefix, is_active=True,
    )  # fmt: skip


def _url(route: Route, world: World) -> str:
    kwargs = {}
    for param in route.params:
        if param == "job_id":
            kwargs[param] = world.kwargs["import_job_id" if "import" in route.name else "export_job_id"]
        elif param in world.kwargs:
            kwargs[param] = world.kwargs[param]
        else:
            pytest.fail(f"{route.name}: give the world fixture an object for <{param}>")
    return reverse(route.name, kwargs=kwargs)


def _request(route: Route, method: str, url: str, user):
    if route.is_api:
        client = APIClient()
        if user is not None:
            client.force_authenticate(user)
    else:
        client = Client()
        if user is not None:
            client.force_login(user)
    call = getattr(client, method.lower())
    if method in ("POST", "PUT", "PATCH"):
        return call(url, {}, format="json") if route.is_api else call(url, {})
    return call(url)


@pytest.mark.parametrize("route,method,role", list(_cases()))
def test_each_role_gets_what_the_route_allows_it(world, route, method, role):
    url = _url(route, world)

    anonymous = _request(route, method, url, None)
    if route.is_api:
        assert anonymous.status_code == 401, "anonymous"
    else:
        assert anonymous.status_code == 302 and "/accounts/login/" in anonymous["Location"], "anonymous"
    assert _request(route, method, url, world.users["stranger"]).status_code == 404, "not a member"
    # Lower roles first and the allowed ones from the lowest up: only allowed requests change
    # anything, and a manager's DELETE comes last.
    for member_role in ROLES:
        response = _request(route, method, url, world.users[member_role])
        if RANK[member_role] < RANK[role]:
            assert response.status_code == 403, (member_role, response.status_code)
        else:
            assert response.status_code not in (401, 403, 404, 405), (member_role, response.status_code)
            assert response.status_code < 500, (member_role, response.status_code)


# Leads manage members of their own projects, from the studio -----------------------------


def _memberships(project) -> list[tuple]:
    return list(project.memberships.order_by("id").values_list("user__username", "role", "paused"))


def test_a_lead_who_is_neither_staff_nor_superuser_manages_members_from_the_studio(client):
    lead = UserFactory(username="plain-lead")
    project = make_project(members=[(lead, MANAGE)])
    UserFactory(username="recruit")
    assert not (lead.is_staff or lead.is_superuser)
    client.force_login(lead)

    added = client.post(
        reverse("annotate:members", args=[project.pk]), {"username": "recruit", "role": REVIEW}
    )
    recruit = project.memberships.get(user__username="recruit")
    member_url = reverse("annotate:member", args=[project.pk, recruit.pk])
    demoted = client.post(member_url, {"action": "role", "role": MEMBER})
    paused = client.post(member_url, {"action": "pause", "reason": "on leave"})
    resumed = client.post(member_url, {"action": "resume"})
    page = client.get(reverse("annotate:members", args=[project.pk]))
    removed = client.post(member_url, {"action": "remove"})

    assert [r.status_code for r in (added, demoted, paused, resumed, removed)] == [302] * 5
    assert page.status_code == 200 and "recruit" in page.text
    assert not project.memberships.filter(user__username="recruit").exists()


def test_a_lead_manages_only_their_own_projects_members(client):
    lead = UserFactory(username="lead-of-a")
    mine = make_project(members=[(lead, MANAGE)])
    annotated = make_project(members=[(lead, MEMBER), (UserFactory(username="b-member"), MEMBER)])
    foreign = make_project(members=[(UserFactory(username="c-member"), MEMBER)])
    UserFactory(username="recruit")
    before = {p.pk: _memberships(p) for p in (mine, annotated, foreign)}
    client.force_login(lead)
    api = APIClient()
    api.force_authenticate(lead)

    for project, expected in ((annotated, 403), (foreign, 404)):
        target = project.memberships.exclude(user=lead).first()
        page_add = client.post(reverse("annotate:members", args=[project.pk]), {"username": "recruit"})
        page_remove = client.post(
            reverse("annotate:member", args=[project.pk, target.pk]), {"action": "remove"}
        )
        api_add = api.post(
            reverse("api:member-list", kwargs={"project_id": project.pk}),
            {"username": "recruit"},
            format="json",
        )
        api_patch = api.patch(
            reverse("api:member-detail", kwargs={"project_id": project.pk, "membership_id": target.pk}),
            {"paused": True},
            format="json",
        )
        assert [r.status_code for r in (page_add, page_remove, api_add, api_patch)] == [expected] * 4, project
        # Another project's member through the lead's own project: 404, as if it did not exist.
        through_mine = client.post(
            reverse("annotate:member", args=[mine.pk, target.pk]), {"action": "remove"}
        )
        api_through_mine = api.delete(
            reverse("api:member-detail", kwargs={"project_id": mine.pk, "membership_id": target.pk})
        )
        assert through_mine.status_code == api_through_mine.status_code == 404

    assert {p.pk: _memberships(p) for p in (mine, annotated, foreign)} == before


@pytest.mark.parametrize(
    "name,data",
    [
        ("annotate:settings", {"name": "renamed", "overlap": 4}),
        ("annotate:members", {"username": "recruit", "role": MANAGE}),
        ("annotate:import", {"format": "text"}),
        ("annotate:gold-mark", {"item": "t0", "labels": "positive"}),
    ],
)
def test_reviewers_review_but_cannot_change_settings_members_import_or_gold(client, name, data):
    reviewer = UserFactory(username="checker")
    project = make_project(items=1, members=[(reviewer, REVIEW)])
    UserFactory(username="recruit")
    before = (_memberships(project), project.name, project.overlap, project.items.count())
    client.force_login(reviewer)

    response = client.post(reverse(name, args=[project.pk]), data)

    project.refresh_from_db()
    assert response.status_code == 403
    assert (_memberships(project), project.name, project.overlap, project.items.count()) == before
    assert not project.items.filter(pick_kind="gold").exists()
    assert client.get(reverse("annotate:review", args=[project.pk])).status_code == 200
