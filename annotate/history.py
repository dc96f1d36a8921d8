"""An annotator's history in a project: the items they answered, newest first, each with their
latest answer, so the labeling page can go back to one and change it.

A changed answer is an ordinary submit of the item (annotate/queue.py `annotation_submit`): a
new Annotation row that replaces the annotator's vote; the earlier rows stay.
"""

from django.contrib.auth.models import AbstractBaseUser
from django.db.models import Exists, OuterRef

from annotate.models import Annotation, Project

HISTORY_PAGE = 20
HISTORY_MAX_PAGE = 50


def annotation_history(
    *, project: Project, annotator: AbstractBaseUser, before: int | None = None, limit: int = HISTORY_PAGE
) -> list[Annotation]:
    """The annotator's latest answer to each item of `project` they answered through the queue,
    newest first, with its item: a keyset page of the answers with ids below `before`.

    Imported annotations (a `source`) are left out: they were never leased, so they cannot be
    changed from the labeling page. The walk reads the annotator's rows (annotation_user_item_idx);
    a later answer to the same item hides an earlier one.
    """
    later = Annotation.objects.filter(
        item_id=OuterRef("item_id"), annotator_id=annotator.pk, id__gt=OuterRef("id")
    )
    answers = (
        Annotation.objects.filter(project=project, annotator_id=annotator.pk, source="")
        .exclude(Exists(later))
        .select_related("item")
        .order_by("-id")
    )
    if before is not None:
        answers = answers.filter(id__lt=before)
    return list(answers[:limit])
