"""Recomputing a project's final labels and tallies from its annotations, all at once.

For the migration that introduced them (historical models passed in) and the
`quality_rebuild` command (a repair). The running studio never calls it: it keeps both up to
date with every change (annotate/quality/finals.py).
"""

from collections import Counter

from django.db import transaction
from django.utils import timezone

from annotate.quality.consensus import disagree, final_of
from annotate.quality.finals import completed_day, final_tallies
from annotate.quality.tallies import annotation_tallies, key
from annotate.quality.votes import agreement_tallies, votes_from_rows

_BATCH = 2000


def project_quality_rebuild(*, project, models) -> int:
    """Rewrite the project's items' final columns and its tallies; returns the items written.

    `models` maps "Item", "Annotation", "Label", "Tally" and "Review" to model classes (the
    current ones or a migration's historical ones).
    """
    Item, Annotation, Label, Tally = (models[name] for name in ("Item", "Annotation", "Label", "Tally"))
    label_names = list(
        Label.objects.filter(project_id=project.pk).order_by("order", "id").values_list("name", flat=True)
    )
    multi_label = project.multi_label
    tallies: Counter = Counter()
    rows_by_item: dict[int, list] = {}
    for row in (
        Annotation.objects.filter(project_id=project.pk)
        .order_by("item_id", "id")
        .values_list(
            "item_id",
            "annotator_id",
            "value",
            "counted",
            "rejected",
            "created_at",
            "active_ms",
            "proposal_model_version_id",
            "proposal_accepted",
        )
        .iterator(chunk_size=5000)
    ):
        item_id, annotator_id, value, counted, rejected, created_at, active_ms, version_id, accepted = row
        rows_by_item.setdefault(item_id, []).append((annotator_id, value, counted, rejected, created_at))
        tallies.update(
            annotation_tallies(
                annotator_id=annotator_id,
                day=timezone.localdate(created_at).isoformat(),
                active_ms=active_ms,
                proposal_version_id=version_id,
                proposal_accepted=accepted,
            )
        )
    Review = models.get("Review")
    if Review is not None:
        # The dashboards count the outcomes of the decisions in force (the items' last ones).
        items = Item.objects.filter(project_id=project.pk, last_review__isnull=False)
        in_force = items.values("last_review_id")
        for outcomes in Review.objects.filter(pk__in=in_force).values_list("outcomes", flat=True):
            for annotator, outcome in outcomes.items():
                tallies["review", key(int(annotator), outcome)] += 1
    written = 0
    with transaction.atomic():
        batch = []
        for item in Item.objects.filter(project_id=project.pk).order_by("id").iterator(chunk_size=_BATCH):
            rows = rows_by_item.get(item.pk, [])
            votes = votes_from_rows(row[:4] for row in rows)
            gold = item.gold_value if item.pick_kind == "gold" else None
            item.final_value, item.final_source = final_of(
                votes=list(votes.values()),
                multi_label=multi_label,
                label_order=label_names,
                gold_value=gold,
                reviewed_value=item.reviewed_value,
            )
            item.disagreement = disagree(list(votes.values()))
            tallies.update(final_tallies(item.final_value, item.final_source))
            tallies.update(agreement_tallies(votes, multi_label=multi_label, label_names=label_names))
            if gold is None and item.is_complete:
                day = completed_day(created_at for _, _, counted, _, created_at in rows if counted)
                if day is not None:
                    tallies["completed_day", day] += 1
                if item.review_state == "none" and item.last_review_id is None:
                    item.review_state = "queued"
            batch.append(item)
            if len(batch) >= _BATCH:
                written += _write(Item, batch)
                batch = []
        written += _write(Item, batch)
        Tally.objects.filter(project_id=project.pk).delete()
        Tally.objects.bulk_create(
            [
                Tally(project_id=project.pk, kind=kind, key=k, n=n)
                for (kind, k), n in sorted(tallies.items())
                if n
            ],
            batch_size=1000,
        )
    return written


def _write(Item, batch: list) -> int:
    Item.objects.bulk_update(batch, ["final_value", "final_source", "disagreement", "review_state"])
    return len(batch)
