"""Annotators' bookmarks in the queue: the next-item search starts where the annotator's
finished prefix ends, and never hides an item they may still be given.

Each "request" here loads the membership with its project afresh, as the API does.
"""

import json
import random
from datetime import timedelta

import pytest
from django.db import connection, transaction
from django.db.models import F
from django.utils import timezone

from annotate import queue
from annotate.items import item_create_bulk
from annotate.models import Annotation, Assignment, Item, Membership
from annotate.projects import project_update
from annotate.queue import (
    annotation_submit,
    assignment_next,
    item_candidates_sql,
    item_skip,
    queue_reordering,
)
from tests.factories import UserFactory, make_project

pytestmark = pytest.mark.django_db

POS = {"choices": ["positive"]}


def _member(project, user) -> Membership:
    return Membership.objects.select_related("project").get(project=project, user=user)


def _project(items, annotators, **fields):
    users = [UserFactory() for _ in range(annotators)]
    project = make_project(items=items, members=[(u, Membership.Role.ANNOTATOR) for u in users], **fields)
    return project, users


def _next(project, user, *, exclude=(), now=None):
    membership = _member(project, user)
    return assignment_next(
        project=membership.project, annotator=user, membership=membership, exclude_item_ids=exclude, now=now
    )


def _submit(project, user, item_id, now=None):
    membership = _member(project, user)
    annotation_submit(
        project=membership.project, item_id=item_id, annotator=user, membership=membership, value=POS, now=now
    )


def _label(project, user, now=None):
    lease = _next(project, user, now=now)
    assert lease is not None
    _submit(project, user, lease.item.pk, now=now)
    return lease.item


def _full_walk_first(project, user, exclude=()):
    """The oracle, written with the ORM and no bookmark: the first item `user` may be given."""
    return (
        Item.objects.filter(project=project, is_complete=False)
        .alias(load=F("annotation_count") + F("lease_count"))
        .filter(load__lt=project.overlap)
        .exclude(annotations__annotator=user)
        .exclude(skips__annotator=user)
        .exclude(id__in=exclude)
        .order_by("-priority", "id")
        .values_list("id", flat=True)
        .first()
    )


def _search(membership, user):
    sql, params = item_candidates_sql(
        project=membership.project, annotator_id=user.pk, membership=membership, select="i.external_id"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return sql, cursor.fetchone()[0]


def _bookmark(project, user):
    return _member(project, user).queue_mark_item_id


def _id(project, external_id):
    return Item.objects.get(project=project, external_id=external_id).pk


def test_the_bookmark_moves_past_what_the_annotator_labeled_and_skipped():
    project, (a, b) = _project(items=10, annotators=2, overlap=2)
    for _ in range(3):
        _label(project, a)
    lease = _next(project, a)
    membership = _member(project, a)
    item_skip(project=project, item_id=lease.item.pk, annotator=a, membership=membership)
    # t0–t2 labeled, t3 skipped: the first item still open to `a` is t4.
    assert _bookmark(project, a) == _id(project, "t4")
    # Others' bookmarks are theirs: b has done nothing.
    assert _bookmark(project, b) is None
    assert _label(project, b).external_id == "t0"


def test_the_search_starts_at_the_bookmark_and_still_serves_the_first_open_item():
    project, (a, _) = _project(items=30, annotators=2, overlap=2)
    served = [_label(project, a).external_id for _ in range(25)]
    assert served == [f"t{n}" for n in range(25)]
    sql, first = _search(_member(project, a), a)
    # The bookmark is in the query (a row comparison from t25), and the answer is unchanged.
    assert "(-i.priority, i.id) >= (" in sql
    assert first == "t25"


def test_an_item_leased_to_someone_else_stops_the_bookmark_and_comes_back_when_the_lease_expires():
    project, (a, b) = _project(items=8, annotators=2, overlap=1, lease_seconds=60)
    start = timezone.now()
    held_by_b = _next(project, b, now=start).item
    assert held_by_b.external_id == "t0"
    for _ in range(4):
        _label(project, a, now=start)
    # a labeled t1–t4 but never t0: the bookmark must not pass it.
    assert _bookmark(project, a) == held_by_b.pk
    later = start + timedelta(seconds=61)
    assert _label(project, a, now=later).external_id == "t0"


def test_an_item_held_by_the_annotator_stops_their_bookmark():
    project, (a,) = _project(items=6, annotators=1, overlap=1)
    first = _next(project, a).item
    second = _next(project, a, exclude=[first.pk]).item
    _submit(project, a, second.pk)
    assert _bookmark(project, a) == first.pk
    assert _next(project, a, exclude=[]).item.pk == first.pk


def test_a_raised_overlap_brings_back_items_the_bookmark_passed_as_complete():
    project, (a, b) = _project(items=6, annotators=2, overlap=1)
    for _ in range(3):
        _label(project, b)
    # t0–t2 are complete at overlap 1, so a's bookmark passes them.
    assert _label(project, a).external_id == "t3"
    assert _bookmark(project, a) == _id(project, "t4")
    project_update(project=project, overlap=2)
    assert _label(project, a).external_id == "t0"


def test_items_added_ahead_of_a_bookmark_are_served():
    project, (a,) = _project(items=4, annotators=1, overlap=1)
    with queue_reordering(project_id=project.pk):
        Item.objects.filter(project=project).update(priority=-1.0)
    for _ in range(2):
        _label(project, a)
    assert _bookmark(project, a) == _id(project, "t2")
    # New items get priority 0, ahead of every item at -1.
    item_create_bulk(project=project, rows=[{"text": "new one", "external_id": "new"}])
    assert _label(project, a).external_id == "new"


def test_a_priority_rewrite_retires_bookmarks_and_none_is_used_or_written_during_it():
    project, (a,) = _project(items=10, annotators=1, overlap=1)
    for _ in range(5):
        _label(project, a)
    assert _bookmark(project, a) == _id(project, "t5")
    with queue_reordering(project_id=project.pk):
        Item.objects.filter(project=project, external_id="t2").update(priority=5.0)
        Item.objects.filter(project=project, external_id="t8").update(priority=3.0)
        before = _member(project, a)
        # Mid-rewrite the search walks from the start and the bookmark stays as it was.
        assert _label(project, a).external_id == "t8"
        after = _member(project, a)
        assert (after.queue_mark_item_id, after.queue_mark_epoch) == (
            before.queue_mark_item_id,
            before.queue_mark_epoch,
        )
    assert _label(project, a).external_id == "t5"
    assert _bookmark(project, a) == _id(project, "t6")


def test_a_bookmark_of_an_older_epoch_is_never_used():
    project, (a,) = _project(items=6, annotators=1, overlap=1)
    for _ in range(3):
        _label(project, a)
    assert _bookmark(project, a) == _id(project, "t3")
    # Whatever may move an item ahead of bookmarks bumps the epoch. Here the move is made by
    # hand (t1 open to `a` again, which no service does), so only the epoch check can find it.
    queue.queue_order_changed(project_id=project.pk)
    Annotation.objects.filter(item__external_id="t1", annotator=a).delete()
    Item.objects.filter(project=project, external_id="t1").update(annotation_count=0, is_complete=False)
    membership = _member(project, a)
    assert membership.queue_mark_epoch != membership.project.queue_epoch
    assert _label(project, a).external_id == "t1"


def test_a_membership_of_someone_else_is_refused():
    project, (a, b) = _project(items=2, annotators=2)
    with pytest.raises(ValueError, match="membership"):
        assignment_next(project=project, annotator=a, membership=_member(project, b))


# transaction=True: each service call commits, as in production.
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("seed", [1, 2, 3, 4])
def test_with_bookmarks_every_pick_is_the_first_item_a_full_walk_finds(seed):
    """A random day of work: labels, skips, abandoned and expired leases, late submits,
    priority rewrites, new items and a raised overlap. Every pick through the bookmark must
    equal the first item of the full search without one."""
    rng = random.Random(seed)
    project, users = _project(items=40, annotators=3, overlap=2, lease_seconds=60)
    now = timezone.now()
    stale: dict[int, set[int]] = {u.pk: set() for u in users}
    added = 0
    picks = 0
    for _ in range(300):
        user = rng.choice(users)
        held = list(
            Assignment.objects.filter(
                project=project, annotator=user, status=Assignment.Status.OPEN
            ).values_list("item_id", flat=True)
        )
        op = rng.choices(
            ["next", "submit", "skip", "expire", "late", "reorder", "add", "overlap"],
            weights=[40, 30, 6, 3, 3, 2, 2, 1],
        )[0]
        if op == "next" and len(held) < 2:
            # The page excludes the items it holds (`exclude` names held leases not to give back).
            exclude = held
            project.refresh_from_db()
            expected = _full_walk_first(project, user, exclude)
            lease = _next(project, user, exclude=exclude, now=now)
            assert (lease.item.pk if lease else None) == expected, f"pick {picks}"
            picks += 1
        elif op in ("submit", "skip") and held:
            item_id = rng.choice(held)
            if op == "submit":
                _submit(project, user, item_id, now=now)
            else:
                membership = _member(project, user)
                item_skip(
                    project=membership.project,
                    item_id=item_id,
                    annotator=user,
                    membership=membership,
                    now=now,
                )
        elif op == "expire":
            now += timedelta(seconds=61)
            with transaction.atomic():
                queue._expire_leases(project_id=project.pk, now=now)
            for u in users:
                stale[u.pk].update(
                    Assignment.objects.filter(project=project, annotator=u, status=Assignment.Status.EXPIRED)
                    .exclude(item__annotations__annotator=u)
                    .values_list("item_id", flat=True)
                )
        elif op == "late" and stale[user.pk]:
            item_id = stale[user.pk].pop()
            _submit(project, user, item_id, now=now)
        elif op == "reorder":
            with queue_reordering(project_id=project.pk):
                for item_id in Item.objects.filter(project=project).values_list("id", flat=True):
                    Item.objects.filter(pk=item_id).update(priority=rng.choice([-1.0, 0.0, 0.3, 0.7]))
        elif op == "add":
            added += 1
            item_create_bulk(project=project, rows=[{"text": f"added {added}", "external_id": f"a{added}"}])
        elif op == "overlap" and project.overlap < 3:
            project_update(project=project, overlap=project.overlap + 1)
    assert picks > 50
    assert Annotation.objects.filter(project=project).count() > 30


def _index_rows_read(sql, params) -> int:
    """Rows the query's plan read from the queue index (EXPLAIN ANALYZE)."""
    with connection.cursor() as cursor:
        cursor.execute("EXPLAIN (ANALYZE, FORMAT JSON) " + sql, params)
        plan = cursor.fetchone()[0]
    if isinstance(plan, str):
        plan = json.loads(plan)

    def walk(node):
        own = (
            node.get("Actual Rows", 0) * node.get("Actual Loops", 1)
            if node.get("Index Name") == "item_queue_idx"
            else 0
        )
        return own + sum(walk(child) for child in node.get("Plans", []))

    return walk(plan[0]["Plan"])


@pytest.mark.postgres_only
@pytest.mark.django_db(transaction=True)
def test_on_postgresql_an_annotator_far_ahead_is_served_without_walking_what_they_did():
    project, (ahead, other) = _project(items=3000, annotators=2, overlap=3)
    # 2,500 earlier labels, written as the queue would have left them.
    items = list(Item.objects.filter(project=project).order_by("id").values_list("id", flat=True)[:2500])
    Annotation.objects.bulk_create(
        [
            Annotation(project=project, item_id=i, annotator=ahead, value=POS, created_at=timezone.now())
            for i in items
        ]
    )
    Item.objects.filter(id__in=items).update(annotation_count=1)
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE annotate_item; ANALYZE annotate_annotation")
    # The first submit finds the bookmark (one walk); from then on the search starts there.
    assert _label(project, ahead).external_id == "t2500"
    membership = _member(project, ahead)
    assert membership.queue_mark_item_id == _id(project, "t2501")
    assert _search(membership, ahead)[1] == "t2501"
    assert Item.objects.get(pk=_full_walk_first(project, ahead)).external_id == "t2501"
    with_bookmark = item_candidates_sql(
        project=membership.project, annotator_id=ahead.pk, membership=membership
    )
    without = item_candidates_sql(project=membership.project, annotator_id=ahead.pk)
    assert _index_rows_read(*with_bookmark) <= 5
    assert _index_rows_read(*without) > 2500
