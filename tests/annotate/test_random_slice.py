"""The random slice (issue 15): a share of queue picks served from a uniformly random subset of
the pool marked ahead, never by the strategy's order, without a proposal, marked in the API."""

import random

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from rest_framework.test import APIClient

from annotate import queue, queue_order
from annotate.models import Item, Membership, PickKind, Project
from annotate.queue import annotation_submit, assignment_next, random_slice_redraw
from tests.factories import UserFactory, make_project

pytestmark = pytest.mark.django_db

POS = {"choices": ["positive"]}


class _Always:
    """The queue's draws, always won (0.0) or always lost (0.99)."""

    def __init__(self, value: float):
        self.value = value

    def random(self) -> float:
        return self.value


def _project(items=40, share=0.1, **fields):
    user = UserFactory()
    project = make_project(items=items, random_share=share, members=[(user, "annotator")], **fields)
    membership = project.memberships.get(user=user)
    return project, user, membership


def _slice(project) -> set[int]:
    return set(Item.objects.filter(project=project, pick_kind=PickKind.RANDOM).values_list("id", flat=True))


def _next(project, user, membership):
    project.refresh_from_db()
    return assignment_next(project=project, annotator=user, membership=membership)


def test_the_slice_is_drawn_from_the_pool_only_and_opens_the_draws():
    project, user, membership = _project(items=60)
    labeled = _next(project, user, membership).item
    annotation_submit(project=project, item_id=labeled.pk, annotator=user, value=POS)
    queue_order._slice_random.seed(1)
    marked = random_slice_redraw(project_id=project.pk)
    project.refresh_from_db()
    # A pool of 59 at a share of 0.1: a slice of 6 (a small pool is not mostly held out).
    assert marked == len(_slice(project)) == 6
    assert labeled.pk not in _slice(project) and project.random_slice_open


def test_a_redraw_with_no_share_returns_the_slice_to_the_queue_and_closes_it():
    project, *_ = _project(items=60)
    random_slice_redraw(project_id=project.pk)
    Project.objects.filter(pk=project.pk).update(random_share=0)
    assert random_slice_redraw(project_id=project.pk) == 0
    project.refresh_from_db()
    assert not _slice(project) and not project.random_slice_open


def test_every_item_of_the_pool_is_about_equally_likely_to_be_drawn():
    # 200 draws of about 20 of 100 items (a share of 0.2), on ids with gaps (another project's
    # items between): each item's count is binomial(200, ~0.2), mean 40; bounds at about 4.5 sd.
    project, *_ = _project(items=50, share=0.2)
    make_project(items=30)
    Item.objects.bulk_create(Item(project=project, external_id=f"late{i}", text="x") for i in range(50))
    queue_order._slice_random.seed(5)
    counts = dict.fromkeys(Item.objects.filter(project=project).values_list("id", flat=True), 0)
    for _ in range(200):
        random_slice_redraw(project_id=project.pk)
        for item_id in _slice(project):
            counts[item_id] += 1
    mean = sum(counts.values()) / len(counts)
    assert 30 <= mean <= 50
    assert max(counts.values()) <= mean + 4.5 * (mean * 0.8) ** 0.5
    assert min(counts.values()) >= mean - 4.5 * (mean * 0.8) ** 0.5


def test_the_random_share_is_honoured_over_many_picks(monkeypatch):
    project, user, membership = _project(items=600, share=0.2)
    monkeypatch.setattr(queue, "_random", random.Random(13))
    queue_order._slice_random.seed(13)
    random_slice_redraw(project_id=project.pk)
    served = []
    for _ in range(300):
        lease = _next(project, user, membership)
        served.append(lease.item.pick_kind == PickKind.RANDOM)
        annotation_submit(
            project=project, item_id=lease.item.pk, annotator=user, value=POS, membership=membership
        )
    # Binomial(300, 0.2): mean 60, sd 6.9; the bounds are about 3.6 sd either side.
    assert 35 <= sum(served) <= 85


def test_the_strategy_never_orders_slice_items(monkeypatch):
    project, user, membership = _project(items=30)
    random_slice_redraw(project_id=project.pk)
    picked = _slice(project)
    assert 0 < len(picked) < 30
    Item.objects.filter(pk__in=picked).update(priority=100.0)  # the strategy's favourites
    monkeypatch.setattr(queue, "_random", _Always(0.99))  # no draw is won
    served = []
    while (lease := _next(project, user, membership)) is not None:
        served.append(lease.item.pk)
        annotation_submit(
            project=project, item_id=lease.item.pk, annotator=user, value=POS, membership=membership
        )
    # Every queue item first, whatever its priority; the slice's leftovers only once they are done.
    assert set(served[: 30 - len(picked)]).isdisjoint(picked)
    assert set(served[30 - len(picked) :]) == picked


def test_a_won_draw_serves_a_slice_item_and_tops_the_slice_up_when_it_is_empty(monkeypatch):
    project, user, membership = _project(items=80)
    random_slice_redraw(project_id=project.pk)
    monkeypatch.setattr(queue, "_random", _Always(0.0))
    first = _slice(project)
    for _ in range(len(first)):
        lease = _next(project, user, membership)
        assert lease.item.pk in first
        annotation_submit(
            project=project, item_id=lease.item.pk, annotator=user, value=POS, membership=membership
        )
    lease = _next(project, user, membership)  # the slice is used up: a fresh batch is marked
    assert lease.item.pick_kind == PickKind.RANDOM and lease.item.pk not in first


def test_a_slice_item_has_no_proposal_and_the_api_says_it_is_a_slice_item(monkeypatch):
    project, user, membership = _project(items=60)
    Item.objects.filter(project=project).update(proposal={"value": POS, "score": 0.9})
    random_slice_redraw(project_id=project.pk)
    api = APIClient()
    api.force_authenticate(user)
    monkeypatch.setattr(queue, "_random", _Always(0.0))
    body = api.post(f"/api/projects/{project.pk}/next/", {}, format="json").json()
    assert body["item"]["random_slice"] is True and body["item"]["proposal"] is None
    monkeypatch.setattr(queue, "_random", _Always(0.99))
    body = api.post(
        f"/api/projects/{project.pk}/next/", {"exclude": [body["item"]["id"]]}, format="json"
    ).json()
    assert body["item"]["random_slice"] is False and body["item"]["proposal"]["value"] == POS


# transaction=True: the service's atomic block is the outermost one, as in a request.
@pytest.mark.django_db(transaction=True)
def test_serving_a_slice_item_runs_no_more_statements_than_a_queue_item(monkeypatch):
    project, user, membership = _project(items=200)
    random_slice_redraw(project_id=project.pk)
    counts = {}
    for name, draw in (("queue", 0.99), ("slice", 0.0)):
        monkeypatch.setattr(queue, "_random", _Always(draw))
        with CaptureQueriesContext(connection) as ctx:
            lease = _next(project, user, membership)
        assert (lease.item.pick_kind == PickKind.RANDOM) == (name == "slice")
        annotation_submit(
            project=project, item_id=lease.item.pk, annotator=user, value=POS, membership=membership
        )
        counts[name] = len(
            [q for q in ctx.captured_queries if q["sql"].split()[0] not in ("BEGIN", "COMMIT")]
        )
    # _next reads the project back first (one statement), outside the service.
    assert counts["slice"] == counts["queue"] <= 7, counts


def test_without_a_membership_the_slice_is_plain_queue():
    project, user, _ = _project(items=5)
    random_slice_redraw(project_id=project.pk)
    served = set()
    while (lease := assignment_next(project=project, annotator=user)) is not None:
        served.add(lease.item.pk)
        annotation_submit(project=project, item_id=lease.item.pk, annotator=user, value=POS)
    assert len(served) == 5


def test_members_of_a_project_without_a_slice_never_draw(monkeypatch):
    project, user, membership = _project(items=5)
    monkeypatch.setattr(queue, "_random", _Always(0.0))
    lease = _next(project, user, membership)
    assert lease.item.pick_kind == PickKind.QUEUE and not Project.objects.get(pk=project.pk).random_slice_open
    assert Membership.objects.get(pk=membership.pk).project_id == project.pk
