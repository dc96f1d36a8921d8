"""Eight annotators ask and submit at once; no item ever goes past its overlap, and every
item gets its full overlap (none hidden behind an annotator's bookmark).

Runs in both test passes: on PostgreSQL (FOR UPDATE SKIP LOCKED on the Item row's own
counters) and on the SQLite file database (IMMEDIATE transactions).
"""

import threading
from collections import Counter

import pytest
from django.db import connection
from django.db.models import Count, Q

from annotate.models import Annotation, Assignment, Item, Membership
from annotate.queue import annotation_submit, assignment_next
from tests.factories import UserFactory, make_project

ANNOTATORS = 8
ITEMS = 24


def _label_like_the_page(project, user, errors, served, bookmarks, marked):
    """Hold the current item and a prefetched next one, as the labeling page does. With
    `bookmarks`, each call passes the membership loaded afresh, as each API request does, and
    `marked` gets (user id, whether the submit left them a bookmark) for each submit made while
    they held a prefetched item: that item is still open to them, so the bookmark must stop at it."""

    def request():
        """(project, membership) as one API request loads them."""
        if not bookmarks:
            return {"project": project, "membership": None}
        membership = Membership.objects.select_related("project").get(project=project, user=user)
        return {"project": membership.project, "membership": membership}

    try:
        current = assignment_next(annotator=user, **request())
        while current is not None:
            prefetched = assignment_next(annotator=user, exclude_item_ids=[current.item.pk], **request())
            submit = request()
            annotation_submit(
                item_id=current.item.pk, annotator=user, value={"choices": ["positive"]}, **submit
            )
            if bookmarks and prefetched is not None:
                marked.append((user.pk, submit["membership"].queue_mark_item_id is not None))
            served.append((user.pk, current.item.pk))
            current = prefetched
    except Exception as exc:
        errors.append(repr(exc))
    finally:
        connection.close()


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("overlap", [1, 2])
@pytest.mark.parametrize("repeat", range(20))
def test_eight_annotators_at_once_never_push_an_item_past_its_overlap(overlap, repeat):
    users = [UserFactory() for _ in range(ANNOTATORS)]
    project = make_project(
        items=ITEMS, overlap=overlap, members=[(u, Membership.Role.ANNOTATOR) for u in users]
    )
    errors: list[str] = []
    served: list[tuple[int, int]] = []
    marked: list[tuple[int, bool]] = []
    barrier = threading.Barrier(ANNOTATORS)

    def run(user):
        barrier.wait()
        _label_like_the_page(project, user, errors, served, bookmarks=repeat % 2 == 0, marked=marked)

    threads = [threading.Thread(target=run, args=(u,)) for u in users]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)

    assert not errors, errors
    assert not any(t.is_alive() for t in threads)
    per_item = Counter(item_id for _, item_id in served)
    assert max(per_item.values()) <= overlap
    assert len(set(served)) == len(served), "an annotator labeled the same item twice"
    stored = Item.objects.filter(project=project).annotate(
        n=Count("annotations"), counted=Count("annotations", filter=Q(annotations__counted=True))
    )
    for item in stored:
        assert item.n == item.counted == item.annotation_count == overlap, (item.pk, item.n)
        assert item.lease_count == 0 and item.is_complete
    assert Annotation.objects.filter(project=project).count() == ITEMS * overlap
    assert not Assignment.objects.filter(project=project, status="open").exists()
    if repeat % 2 == 0:
        # The bookmarks were in play for every annotator they are about: each submit made while
        # the annotator held a next item left them a bookmark, in the request and in the row.
        assert marked and all(has for _, has in marked), marked
        labeled_twice = {user for user, n in Counter(user for user, _ in served).items() if n >= 2}
        assert labeled_twice <= {user for user, _ in marked}
        marks = Membership.objects.filter(project=project, user_id__in=labeled_twice)
        assert not marks.filter(queue_mark_item_id=None).exists()
