"""Proposals: the label the labeling page pre-selects for an item, and how often annotators kept it.

The labeling page (web layer) reads proposals through proposal_for; annotate stores the proposal
an annotation was shown as plain data (Annotation.proposal_value, proposal_model_version_id),
and counts it per model version in the project's tallies, which proposal_acceptance reads.

A random-slice item (annotate/queue_order.py) is served without a proposal; proposal_for records
instead, on its lease, what the active version predicts for it (`Assignment.slice_value`,
`slice_model_version_id`), before its label exists. `random_slice_report` reads them back: per
version, the slice items served while it was active, scored against their final labels, an
unbiased estimate of its accuracy on the pool (Wilson interval); the learning curve of those
estimates; and the stopping advice (consecutive versions' predictions agree, by Cohen's kappa,
and the estimates have flattened).
"""

import json
from dataclasses import dataclass

from django.db import connection

from annotate.dashboards import proposal_acceptance_list
from annotate.models import Assignment, FinalSource, Item, PickKind, Project
from annotate.quality.agreement import cohen_kappa
from annotate.raw_rows import columns, from_row
from training.models import ModelVersion, Prediction


def proposal_for(*, item: Item, assignment: Assignment | None = None) -> dict | None:
    """The label proposed for `item`: the active version's prediction, else one imported with the
    data; none for a gold item, nor for a random-slice one.

    A model's proposal names its version twice: `model_version_id` (the database id an
    annotation stores) and `model_version_number` (the project's vN). An imported one has neither.
    Given the lease of a random-slice item (`assignment`), the active version's hidden prediction
    is recorded on it, once: one statement, as the proposal's lookup would have been.
    """
    if item.pick_kind == PickKind.GOLD:
        return None  # a gold item is served unannounced: a proposal would give its value away
    if item.pick_kind == PickKind.RANDOM:
        # The label must not lean on the model it measures.
        if assignment is not None:
            _slice_prediction_record(assignment_id=assignment.pk, item_id=item.pk)
        return None
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


def _slice_prediction_record(*, assignment_id: int, item_id: int) -> None:
    """Write the active version's prediction for the item onto its lease, unless one is there:
    one UPDATE … FROM (nothing is written before the first model)."""
    table = Assignment._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {table} SET slice_value = q.value, slice_model_version_id = q.model_version_id"
            f" FROM (SELECT p.value, p.model_version_id FROM {Prediction._meta.db_table} p"
            f" JOIN {ModelVersion._meta.db_table} v ON v.id = p.model_version_id"
            " WHERE p.item_id = %s AND v.is_active LIMIT 1) AS q"
            f" WHERE {table}.id = %s AND {table}.slice_model_version_id IS NULL",
            [item_id, assignment_id],
        )


def proposal_acceptance(*, project: Project) -> dict[int, dict]:
    """Per model version id: proposals shown, accepted as they were, and the rate.

    Read from the project's "proposal" tallies, which every submit adds to in its own transaction
    (annotate/quality/tallies.py): one small query, not a count over the annotations.
    """
    return {
        v.model_version_id: {"shown": v.shown, "accepted": v.accepted, "rate": v.rate}
        for v in proposal_acceptance_list(project_id=project.pk)
    }


# Stopping advice: consecutive versions' predictions agree at least this much (Cohen's kappa), and
# the last FLAT_VERSIONS versions' estimates, each on at least MIN_SLICE_ITEMS slice items, lie
# within one another's intervals.
KAPPA_STOP = 0.95
FLAT_VERSIONS = 3
MIN_SLICE_ITEMS = 30


@dataclass(frozen=True)
class SliceEstimate:
    """One version's accuracy on the random-slice items served while it was active."""

    version_id: int
    number: int
    n_labels: int  # the labels the version was trained on
    n: int  # slice items it predicted before their label, now labeled
    correct: int
    accuracy: float
    low: float
    high: float


@dataclass(frozen=True)
class StoppingAdvice:
    kappa: float
    accuracy: float
    half_width: float
    flat_over: int

    @property
    def text(self) -> str:
        return (
            f"predictions agree \u03ba = {self.kappa:.2f} with the previous version; estimated accuracy"
            f" {self.accuracy:.2f} \u00b1 {self.half_width:.2f}, flat over the last {self.flat_over}"
            " versions: labeling more is unlikely to help"
        )


@dataclass(frozen=True)
class SliceReport:
    estimates: list[SliceEstimate]  # in version order
    active: SliceEstimate | None
    kappa: float | None  # the active version's predictions against the one before it
    advice: StoppingAdvice | None
    curve_svg: str
    # The active version's metrics["random_curve"], re-inverted at its slice estimate when it has
    # one (training/random_curve.py): what random sampling would have needed for its accuracy.
    random_curve: dict | None = None
    measure: str = "accuracy"  # what the slice estimates: SLICE_MEASURE_SPANS for spans


SLICE_MEASURE_SPANS = "exact-match accuracy (texts whose spans are all right)"


def _choices(value) -> tuple | None:
    if isinstance(value, str):
        value = json.loads(value)
    if not isinstance(value, dict) or not isinstance(value.get("choices"), list):
        return None
    return tuple(sorted(value["choices"]))


def spans_key(value) -> tuple | None:
    """A spans value as what exact match compares: its (start, end, label)s, sorted."""
    if isinstance(value, str):
        value = json.loads(value)
    if not isinstance(value, dict) or not isinstance(value.get("spans"), list):
        return None
    from training.backends.spans import spans_exact_key

    return spans_exact_key(value["spans"])


def random_slice_estimates(*, project: Project) -> list[SliceEstimate]:
    """Per model version (in version order), the random-slice items it predicted when they were
    served, scored against their final labels, with a 95% Wilson interval.

    An item counts once, for the version of its first recorded serve (which preceded all of its
    labels, so that version never trained on it), and only once it has a final label. Exact match
    of the choices (subset accuracy for multi-label); for spans, of the text's whole set of spans
    (every span's start, end and label: the share of texts the model gets entirely right, a
    per-item outcome, so the Wilson interval holds; entity F1 pools entities across texts and
    has none). Boxes have no model.
    """
    if project.task_type == Project.TaskType.TEXT_SPANS:
        key = spans_key
    elif project.is_classification:
        key = _choices
    else:
        return []
    from training.evaluation import wilson_interval

    rows = (
        Assignment.objects.filter(
            project=project, item__pick_kind=PickKind.RANDOM, slice_model_version_id__isnull=False
        )
        .exclude(item__final_source__in=[FinalSource.NONE, FinalSource.TIE])
        .order_by("item_id", "id")
        .values_list("item_id", "slice_model_version_id", "slice_value", "item__final_value")
    )
    counts: dict[int, list[int]] = {}
    seen: set[int] = set()
    for item_id, version_id, predicted, final in rows:
        if item_id in seen:
            continue
        seen.add(item_id)
        truth = key(final)
        if truth is None:
            continue
        tally = counts.setdefault(version_id, [0, 0])
        tally[0] += 1
        tally[1] += key(predicted) == truth
    versions = ModelVersion.objects.filter(project=project, pk__in=counts).order_by("number")
    estimates = []
    for version in versions:
        n, correct = counts[version.pk]
        low, high = wilson_interval(correct, n)
        estimates.append(
            SliceEstimate(
                version_id=version.pk,
                number=version.number,
                n_labels=int(version.metrics.get("n_train") or 0),
                n=n,
                correct=correct,
                accuracy=correct / n,
                low=low,
                high=high,
            )
        )
    return estimates


def prediction_agreement(*, version: ModelVersion, previous: ModelVersion) -> float | None:
    """Cohen's kappa between two versions' predictions on the pool items both scored: one GROUP BY
    over the pairs of predicted values (k x k rows, whatever the pool's size)."""
    table = Prediction._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT a.value, b.value, COUNT(*) FROM {table} a JOIN {table} b ON b.item_id = a.item_id"
            " WHERE a.model_version_id = %s AND b.model_version_id = %s GROUP BY a.value, b.value",
            [version.pk, previous.pk],
        )
        pairs = [(_key(a), _key(b), n) for a, b, n in cursor.fetchall()]
    confusion: dict[tuple[str, str], int] = {}
    for a, b, n in pairs:
        confusion[a, b] = confusion.get((a, b), 0) + n
    if not confusion:
        return None
    kappa = cohen_kappa(confusion)
    if kappa is None:  # one value throughout: agreement is total or none
        return 1.0 if all(a == b for a, b in confusion) else 0.0
    return kappa


def _previous_version(version: ModelVersion) -> ModelVersion | None:
    return (
        ModelVersion.objects.filter(project_id=version.project_id, number__lt=version.number)
        .order_by("-number")
        .first()
    )


def pool_agreement_store(*, version: ModelVersion) -> float | None:
    """Measure the version's agreement with the version before it once, as its pool is scored
    (training/scoring.py), and keep it in metrics["pool_agreement"]: the project page reads it
    there instead of joining two pools' predictions on every view."""
    previous = _previous_version(version)
    if previous is None:
        return None
    kappa = prediction_agreement(version=version, previous=previous)
    version.metrics = {**version.metrics, "pool_agreement": {"previous_id": previous.pk, "kappa": kappa}}
    ModelVersion.objects.filter(pk=version.pk).update(metrics=version.metrics)
    return kappa


def pool_agreement(*, version: ModelVersion) -> float | None:
    """Cohen's kappa between the version's pool predictions and the previous version's: the
    stored figure when it was measured against that same previous version, else measured now."""
    previous = _previous_version(version)
    if previous is None:
        return None
    stored = version.metrics.get("pool_agreement") or {}
    if stored.get("previous_id") == previous.pk:
        return stored["kappa"]
    return prediction_agreement(version=version, previous=previous)


def _key(raw) -> str:
    value = json.loads(raw) if isinstance(raw, str) else raw
    return json.dumps(value, sort_keys=True)


def _flat(estimates: list[SliceEstimate]) -> bool:
    """Each estimate lies inside every other's interval."""
    return all(e.low <= f.accuracy <= e.high for e in estimates for f in estimates)


def random_slice_report(*, project: Project, active: ModelVersion | None) -> SliceReport:
    """The random slice's figures for the project page: estimates, curve, stopping advice."""
    from training.pictures import learning_curve_svg

    estimates = random_slice_estimates(project=project)
    by_version = {e.version_id: e for e in estimates}
    kappa = pool_agreement(version=active) if active is not None else None
    advice = None
    last = [e for e in estimates if e.n >= MIN_SLICE_ITEMS][-FLAT_VERSIONS:]
    current = by_version.get(active.pk) if active is not None else None
    if (
        kappa is not None
        and kappa >= KAPPA_STOP
        and len(last) == FLAT_VERSIONS
        and current is not None
        and last[-1] is current
        and _flat(last)
    ):
        advice = StoppingAdvice(
            kappa=kappa,
            accuracy=current.accuracy,
            half_width=(current.high - current.low) / 2,
            flat_over=FLAT_VERSIONS,
        )
    points = [
        {
            "n_labels": e.n_labels,
            "accuracy": e.accuracy,
            "ci_low": e.low,
            "ci_high": e.high,
            "version": e.number,
        }
        for e in estimates
    ]
    svg = (
        learning_curve_svg(
            points,
            title="Accuracy on the random slice",
            measure="accuracy",
            axis="Random-slice accuracy",
        )
        if points
        else ""
    )
    from training.random_curve import random_curve_for_page

    random_curve = (
        random_curve_for_page(metrics=active.metrics, slice_accuracy=current.accuracy if current else None)
        if active is not None
        else None
    )
    return SliceReport(
        estimates=estimates,
        active=current,
        kappa=kappa,
        advice=advice,
        curve_svg=svg,
        random_curve=random_curve,
        measure=SLICE_MEASURE_SPANS if project.task_type == Project.TaskType.TEXT_SPANS else "accuracy",
    )
