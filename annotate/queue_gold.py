"""The queue's gold items: one to serve, and an annotator's answer to one counted.

Gold items are complete, so the queue's own search (annotate/queue_order.py) never sees them,
and they are outside overlap. Whether a request serves one is a draw at the project's
`gold_share`, made in annotate/queue.py (`_gold_draw`, where tests seed and patch it).
"""

from django.contrib.auth.models import AbstractBaseUser

from annotate.models import Annotation, Assignment, Item, Membership, PickKind, Project, Skip
from annotate.quality.gold import gold_answer_score, gold_pause_reason
from annotate.raw_rows import columns

_ITEM = Item._meta.db_table
_ANNOTATION = Annotation._meta.db_table
_SKIP = Skip._meta.db_table
_MEMBERSHIP = Membership._meta.db_table


def _gold_candidate(cursor, *, project: Project, annotator_id: int, held: list[Assignment]) -> tuple | None:
    """A gold item the annotator has neither answered nor skipped nor holds (item_gold_idx), or None.

    Gold items are complete, so the queue's own search never sees them, and they are outside
    overlap: any number of annotators answer each, each once.
    """
    where = [
        "i.project_id = %s",
        f"i.pick_kind = '{PickKind.GOLD}'",
        f"NOT EXISTS (SELECT 1 FROM {_ANNOTATION} a WHERE a.item_id = i.id AND a.annotator_id = %s)",
        f"NOT EXISTS (SELECT 1 FROM {_SKIP} s WHERE s.item_id = i.id AND s.annotator_id = %s)",
    ]
    params: list = [project.id, annotator_id, annotator_id]
    if held:
        where.append(f"i.id NOT IN ({', '.join(['%s'] * len(held))})")
        params += [a.item_id for a in held]
    cursor.execute(
        f"SELECT {columns(Item, 'i')} FROM {_ITEM} i WHERE {' AND '.join(where)} ORDER BY i.id LIMIT 1",
        params,
    )
    return cursor.fetchone()


def _gold_answer(
    cursor,
    *,
    project: Project,
    item: Item,
    annotator: AbstractBaseUser,
    membership: Membership | None,
    value: dict,
) -> None:
    """Caller holds the item's lock. Count a gold answer (once per annotator and item: the queue
    serves a gold item once) and pause the member when their accuracy is surely below the bar."""
    if membership is None:
        membership = Membership.objects.filter(project_id=project.id, user_id=annotator.pk).first()
        if membership is None:
            return
    # One answer per item for classification; per entity (box or span) for the other types.
    answers, correct = gold_answer_score(value=value, gold_value=item.gold_value)
    cursor.execute(
        f"UPDATE {_MEMBERSHIP} SET gold_answers = gold_answers + %s, gold_correct = gold_correct + %s"
        " WHERE id = %s RETURNING gold_answers, gold_correct",
        [answers, correct, membership.pk],
    )
    membership.gold_answers, membership.gold_correct = cursor.fetchone()
    reason = gold_pause_reason(
        project=project, answers=membership.gold_answers, correct=membership.gold_correct
    )
    if reason and not membership.paused:
        cursor.execute(
            f"UPDATE {_MEMBERSHIP} SET paused = %s, paused_reason = %s WHERE id = %s",
            [True, reason, membership.pk],
        )
        membership.paused, membership.paused_reason = True, reason
