"""Proposals: the label the labeling page pre-selects for an item, and how often annotators kept it.

The labeling page (web layer) reads proposals through proposal_for; annotate stores the proposal
an annotation was shown as plain data (Annotation.proposal_value, proposal_model_version_id),
and counts it per model version in the project's tallies, which proposal_acceptance reads.
"""

from django.db import connection

from annotate.dashboards import proposal_acceptance_list
from annotate.models import Item, PickKind, Project
from annotate.raw_rows import columns, from_row
from training.models import ModelVersion, Prediction


def proposal_for(*, item: Item) -> dict | None:
    """The label proposed for `item`: the active version's prediction, else one imported with the
    data; none for a gold item.

    A model's proposal names its version twice: `model_version_id` (the database id an
    annotation stores) and `model_version_number` (the project's vN). An imported one has neither.
    """
    if item.pick_kind == PickKind.GOLD:
        return None  # a gold item is served unannounced: a proposal would give its value away
    # On the labeling page's path (next item): SQL, see annotate/raw_rows.py.
    fields = ("value", "score", "model_version_id")
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT {columns(Prediction, 'p', fields)}, v.number FROM {Prediction._meta.db_table} p"
            f" JOIN {ModelVersion._meta.db_table} v ON v.id = p.model_version_id"
            " WHERE p.item_id = %s AND v.is_active LIMIT 1",
            [item.pk],
        )
        row = cursor.fetchone()
    if row is not None:
        prediction = from_row(Prediction, row[:-1], fields)
        return {
            "value": prediction.value,
            "score": round(prediction.score, 4),
            "model_version_id": prediction.model_version_id,
            "model_version_number": row[-1],
        }
    return item.proposal


def proposal_acceptance(*, project: Project) -> dict[int, dict]:
    """Per model version id: proposals shown, accepted as they were, and the rate.

    Read from the project's "proposal" tallies, which every submit adds to in its own transaction
    (annotate/quality/tallies.py): one small query, not a count over the annotations.
    """
    return {
        v.model_version_id: {"shown": v.shown, "accepted": v.accepted, "rate": v.rate}
        for v in proposal_acceptance_list(project_id=project.pk)
    }
