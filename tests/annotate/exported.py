"""What the export tests share: a small labeled project (`studio`) and labeling through the queue."""

from datetime import UTC, datetime

import pytest

from annotate.models import Item, Membership
from annotate.queue import annotation_submit, assignment_next
from tests.factories import AnnotationFactory, UserFactory, make_project

T0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
CAT = {"choices": ["cat"]}


def label(project, user, choices, *, proposal=None, version=None, active_ms=1500, now=T0):
    lease = assignment_next(project=project, annotator=user, now=now)
    return annotation_submit(
        project=project,
        item_id=lease.item.pk,
        annotator=user,
        value={"choices": choices},
        active_ms=active_ms,
        proposal_value=proposal,
        proposal_model_version_id=version,
        now=now,
    )


@pytest.fixture
def studio():
    """Three items, overlap 3: t0 labeled cat by a majority, t1 a three-way tie, t2 unlabeled.

    On t0 `ann` accepts the model's proposal (cat, version 7) and `cy` overrides it with dog.
    t1 also holds an imported, late, uncounted annotation by `dee`, which does not vote.
    """
    ann, bob, cy = (UserFactory(username=name) for name in ("ann", "bob", "cy"))
    project = make_project(
        labels=["cat", "dog", "bird"],
        items=3,
        overlap=3,
        members=[(u, Membership.Role.ANNOTATOR) for u in (ann, bob, cy)],
    )
    label(project, ann, ["cat"], proposal=CAT, version=7)
    label(project, bob, ["cat"])
    label(project, cy, ["dog"], proposal=CAT, version=7, active_ms=900)
    label(project, ann, ["cat"])
    label(project, bob, ["dog"])
    label(project, cy, ["bird"])
    t1 = Item.objects.get(project=project, external_id="t1")
    AnnotationFactory(
        item=t1,
        annotator=UserFactory(username="dee"),
        value={"choices": ["dog"]},
        created_at=T0,
        late=True,
        counted=False,
        source="import:batch-1",
    )
    return project
