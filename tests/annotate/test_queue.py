from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from annotate.items import item_create_bulk
from annotate.models import Annotation, Assignment, Item, Membership, Skip
from annotate.projects import project_update
from annotate.queue import (
    LeaseLimitReached,
    NotAssigned,
    annotation_submit,
    assignment_next,
    assignment_release_all,
    item_skip,
)
from tests.factories import UserFactory, make_project

pytestmark = pytest.mark.django_db

POS = {"choices": ["positive"]}


def _project(items=5, annotators=2, **fields):
    users = [UserFactory() for _ in range(annotators)]
    project = make_project(items=items, members=[(u, Membership.Role.ANNOTATOR) for u in users], **fields)
    return project, users


def _label(project, user, now=None):
    lease = assignment_next(project=project, annotator=user, now=now)
    if lease is None:
        return None
    annotation_submit(project=project, item_id=lease.item.pk, annotator=user, value=POS, now=now)
    return lease.item


def test_next_serves_items_in_import_order_when_priorities_are_equal():
    project, (ann, _) = _project(items=3)
    served = [_label(project, ann).external_id for _ in range(3)]
    assert served == ["t0", "t1", "t2"]


def test_next_serves_highest_priority_first():
    project, (ann, _) = _project(items=4)
    Item.objects.filter(project=project, external_id="t2").update(priority=0.9)
    Item.objects.filter(project=project, external_id="t3").update(priority=0.5)
    served = [_label(project, ann).external_id for _ in range(4)]
    assert served == ["t2", "t3", "t0", "t1"]


def test_overlap_1_gives_each_item_to_one_annotator():
    project, (a, b) = _project(items=2, overlap=1)
    first = assignment_next(project=project, annotator=a).item
    second = assignment_next(project=project, annotator=b).item
    assert first.pk != second.pk
    assert assignment_next(project=project, annotator=b, exclude_item_ids=[second.pk]) is None


def test_overlap_2_gives_each_item_to_two_annotators_and_no_third():
    c = UserFactory()
    project, (a, b) = _project(items=1, overlap=2)
    project.memberships.create(user=c, role=Membership.Role.ANNOTATOR)
    item_a = assignment_next(project=project, annotator=a).item
    item_b = assignment_next(project=project, annotator=b).item
    assert item_a.pk == item_b.pk
    assert assignment_next(project=project, annotator=c) is None
    for user in (a, b):
        annotation_submit(project=project, item_id=item_a.pk, annotator=user, value=POS)
    item_a.refresh_from_db()
    assert (item_a.annotation_count, item_a.lease_count, item_a.is_complete) == (2, 0, True)
    assert assignment_next(project=project, annotator=c) is None


def test_annotator_never_gets_an_item_they_already_labeled():
    project, (a, _) = _project(items=1, overlap=3)
    _label(project, a)
    assert assignment_next(project=project, annotator=a) is None


def test_next_returns_the_lease_already_held_instead_of_a_new_one():
    project, (a, _) = _project(items=3)
    first = assignment_next(project=project, annotator=a)
    again = assignment_next(project=project, annotator=a)
    assert again.assignment.pk == first.assignment.pk and not again.is_new
    assert Item.objects.get(pk=first.item.pk).lease_count == 1


def test_annotator_holds_at_most_two_leases():
    project, (a, _) = _project(items=5)
    one = assignment_next(project=project, annotator=a).item.pk
    two = assignment_next(project=project, annotator=a, exclude_item_ids=[one]).item.pk
    assert one != two
    with pytest.raises(LeaseLimitReached):
        assignment_next(project=project, annotator=a, exclude_item_ids=[one, two])
    assert Assignment.objects.filter(annotator=a, status="open").count() == 2


def test_both_leases_count_against_overlap():
    project, (a, b) = _project(items=2, overlap=1)
    one = assignment_next(project=project, annotator=a).item.pk
    assignment_next(project=project, annotator=a, exclude_item_ids=[one])
    assert assignment_next(project=project, annotator=b) is None


def test_expired_lease_returns_the_item_to_the_queue():
    project, (a, b) = _project(items=1, overlap=1, lease_seconds=60)
    start = timezone.now()
    item = assignment_next(project=project, annotator=a, now=start).item
    assert assignment_next(project=project, annotator=b, now=start + timedelta(seconds=59)) is None
    lease = assignment_next(project=project, annotator=b, now=start + timedelta(seconds=61))
    assert lease.item.pk == item.pk
    old = Assignment.objects.get(annotator=a)
    assert old.status == Assignment.Status.EXPIRED
    assert Item.objects.get(pk=item.pk).lease_count == 1


def test_expiry_gives_back_two_leases_of_one_item():
    project, (a, b) = _project(items=1, overlap=2, lease_seconds=60)
    start = timezone.now()
    assignment_next(project=project, annotator=a, now=start)
    assignment_next(project=project, annotator=b, now=start)
    c = UserFactory()
    assignment_next(project=project, annotator=c, now=start + timedelta(seconds=120))
    assert Item.objects.get(project=project).lease_count == 1
    assert Assignment.objects.filter(status="expired").count() == 2


def test_late_submit_is_stored_and_counted_when_the_item_still_has_room():
    project, (a, _) = _project(items=1, overlap=1, lease_seconds=60)
    start = timezone.now()
    item = assignment_next(project=project, annotator=a, now=start).item
    annotation = annotation_submit(
        project=project, item_id=item.pk, annotator=a, value=POS, now=start + timedelta(minutes=5)
    )
    assert annotation.late and annotation.counted
    item.refresh_from_db()
    assert (item.annotation_count, item.lease_count, item.is_complete) == (1, 0, True)


def test_late_submit_is_stored_but_not_counted_when_the_item_already_has_enough():
    project, (a, b) = _project(items=1, overlap=1, lease_seconds=60)
    start = timezone.now()
    item = assignment_next(project=project, annotator=a, now=start).item
    later = start + timedelta(seconds=61)
    assert _label(project, b, now=later).pk == item.pk
    annotation = annotation_submit(
        project=project, item_id=item.pk, annotator=a, value=POS, now=later + timedelta(seconds=1)
    )
    assert annotation.late and not annotation.counted
    item.refresh_from_db()
    assert (item.annotation_count, item.lease_count) == (1, 0)
    assert Annotation.objects.filter(item=item).count() == 2


def test_late_submit_is_not_counted_while_another_annotator_holds_the_last_slot():
    project, (a, b) = _project(items=1, overlap=1, lease_seconds=60)
    start = timezone.now()
    item = assignment_next(project=project, annotator=a, now=start).item
    later = start + timedelta(seconds=61)
    assignment_next(project=project, annotator=b, now=later)
    annotation = annotation_submit(project=project, item_id=item.pk, annotator=a, value=POS, now=later)
    assert annotation.late and not annotation.counted
    annotation_submit(project=project, item_id=item.pk, annotator=b, value=POS, now=later)
    item.refresh_from_db()
    assert (item.annotation_count, item.lease_count, item.is_complete) == (1, 0, True)


def test_submit_rejects_item_not_assigned_to_user():
    project, (a, b) = _project(items=2)
    item = assignment_next(project=project, annotator=a).item
    with pytest.raises(NotAssigned):
        annotation_submit(project=project, item_id=item.pk, annotator=b, value=POS)
    assert not Annotation.objects.exists()


def test_submit_with_a_bad_value_stores_nothing_and_keeps_the_lease():
    from django.core.exceptions import ValidationError

    project, (a, _) = _project(items=1)
    item = assignment_next(project=project, annotator=a).item
    with pytest.raises(ValidationError, match="unknown label 'neutral'"):
        annotation_submit(project=project, item_id=item.pk, annotator=a, value={"choices": ["neutral"]})
    item.refresh_from_db()
    assert not Annotation.objects.exists()
    assert (item.annotation_count, item.lease_count) == (0, 1)


def test_resubmit_by_the_same_annotator_is_stored_but_counted_once():
    project, (a, _) = _project(items=1, overlap=2)
    item = _label(project, a)
    again = annotation_submit(project=project, item_id=item.pk, annotator=a, value={"choices": ["negative"]})
    assert not again.counted
    item.refresh_from_db()
    assert item.annotation_count == 1
    assert Annotation.objects.filter(item=item, annotator=a).count() == 2


def test_skip_returns_the_slot_and_the_skipper_never_gets_the_item_again():
    project, (a, b) = _project(items=1, overlap=1)
    item = assignment_next(project=project, annotator=a).item
    item_skip(project=project, item_id=item.pk, annotator=a)
    assert Skip.objects.filter(item=item, annotator=a).exists()
    assert Item.objects.get(pk=item.pk).lease_count == 0
    assert assignment_next(project=project, annotator=a) is None
    assert assignment_next(project=project, annotator=b).item.pk == item.pk


def test_skip_rejects_item_not_assigned_to_user():
    project, (a, _) = _project(items=1)
    with pytest.raises(NotAssigned):
        item_skip(project=project, item_id=project.items.get().pk, annotator=a)


def test_release_all_gives_every_held_lease_back():
    project, (a, b) = _project(items=2, overlap=1)
    one = assignment_next(project=project, annotator=a).item.pk
    assignment_next(project=project, annotator=a, exclude_item_ids=[one])
    assert assignment_release_all(project=project, annotator=a) == 2
    assert assignment_next(project=project, annotator=b) is not None


def test_raising_overlap_reopens_complete_items():
    project, (a, b) = _project(items=1, overlap=1)
    item = _label(project, a)
    assert assignment_next(project=project, annotator=b) is None
    project_update(project=project, overlap=2)
    assert assignment_next(project=project, annotator=b).item.pk == item.pk


def test_queue_never_serves_another_projects_items():
    project, (a, _) = _project(items=1)
    make_project(items=3)
    _label(project, a)
    assert assignment_next(project=project, annotator=a) is None


def _grow(project, n):
    start = project.items.count()
    item_create_bulk(
        project=project, rows=[{"external_id": f"g{start + i}", "text": f"more {i}"} for i in range(n)]
    )


def _data_statements(ctx):
    """Captured SQL less transaction control (BEGIN [IMMEDIATE], COMMIT), which Django logs too."""
    return [q["sql"] for q in ctx.captured_queries if q["sql"].split()[0] not in ("BEGIN", "COMMIT")]


# transaction=True: the service's atomic block is then the outermost one, as in a request,
# so the count holds no test-only SAVEPOINT statements.
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("size", [5, 2000])
def test_next_runs_at_most_6_statements_whatever_the_project_size(size):
    project, (a, b) = _project(items=size, overlap=2, lease_seconds=60)
    start = timezone.now()
    # Leave an expired lease behind so the expiry path runs too.
    assignment_next(project=project, annotator=b, now=start - timedelta(minutes=5))
    with CaptureQueriesContext(connection) as ctx:
        lease = assignment_next(project=project, annotator=a, now=start)
    assert lease is not None
    statements = _data_statements(ctx)
    assert len(statements) <= 6, statements


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("size", [5, 2000])
def test_submit_runs_at_most_7_statements_whatever_the_project_size(size):
    # The label names, the lease and item (locked), the item's voters, the item, the
    # annotation, the lease closed, the tallies (final label, agreement, dashboards).
    project, (a, _) = _project(items=size)
    lease = assignment_next(project=project, annotator=a)
    with CaptureQueriesContext(connection) as ctx:
        annotation_submit(project=project, item_id=lease.item.pk, annotator=a, value=POS)
    statements = _data_statements(ctx)
    assert len(statements) <= 7, statements


@pytest.mark.django_db(transaction=True)
def test_next_and_submit_statement_counts_do_not_grow_with_the_project():
    project, (a, _) = _project(items=5)

    def cycle():
        with CaptureQueriesContext(connection) as ctx:
            lease = assignment_next(project=project, annotator=a)
            annotation_submit(project=project, item_id=lease.item.pk, annotator=a, value=POS)
        return len(_data_statements(ctx))

    small = cycle()
    _grow(project, 3000)
    assert cycle() == small


def _reorder(project, priorities: dict[int, float]) -> None:
    """Rewrite priorities as a training run's pool scoring does, around queue_reordering."""
    from annotate.queue import queue_reordering

    with queue_reordering(project_id=project.pk):
        for item_id, priority in priorities.items():
            Item.objects.filter(pk=item_id).update(priority=priority)
    project.refresh_from_db()


def test_leases_taken_before_a_reordering_do_not_jump_the_new_order():
    project, (closed_browser, _) = _project(items=6)
    held = [assignment_next(project=project, annotator=closed_browser, exclude_item_ids=[]).item.pk]
    held.append(assignment_next(project=project, annotator=closed_browser, exclude_item_ids=held).item.pk)
    top = Item.objects.filter(project=project).exclude(pk__in=held).order_by("-id").first()
    _reorder(project, {top.pk: 0.9, held[0]: 0.1, held[1]: 0.2})

    # A new page (nothing shown yet) gets the new order's first item, not the old leases.
    lease = assignment_next(project=project, annotator=closed_browser, exclude_item_ids=[])
    assert lease.item.pk == top.pk and lease.is_new
    old = Assignment.objects.filter(item_id__in=held, annotator=closed_browser)
    assert set(old.values_list("status", flat=True)) == {Assignment.Status.EXPIRED}
    assert list(Item.objects.filter(pk__in=held).values_list("lease_count", flat=True)) == [0, 0]


def test_a_page_keeps_the_item_it_shows_across_a_reordering_and_a_later_lease_is_served_again():
    project, (user, _) = _project(items=6)
    shown = assignment_next(project=project, annotator=user).item.pk
    _reorder(
        project, {shown: 0.0, **{i.pk: 0.5 for i in Item.objects.filter(project=project).exclude(pk=shown)}}
    )
    prefetched = assignment_next(project=project, annotator=user, exclude_item_ids=[shown]).item.pk
    assert Assignment.objects.get(item_id=shown, annotator=user).status == Assignment.Status.OPEN
    # Taken after the reordering: a reloaded page gets it back first.
    assert assignment_next(project=project, annotator=user, exclude_item_ids=[shown]).item.pk == prefetched
