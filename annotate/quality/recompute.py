"""Recomputing a project's final labels by its consensus method, in the background.

Majority vote is kept with every annotation (annotate/queue.py). Dawid–Skene
(annotate/quality/dawid_skene.py) is a global estimate: every annotator's reliability is measured
on all their answers, so it is recomputed as a whole, by a Celery task, after
`Project.consensus_every` new annotations or on demand.

The recompute reads every item's votes in one streamed pass and fits the model, then applies it
in batches. Each batch is one short transaction that locks its items (FOR UPDATE on PostgreSQL;
SQLite's IMMEDIATE transactions serialise writers), re-reads their final source and their votes,
and rewrites the final label of those whose source is still single, consensus or tie: a review
or a gold value that arrived meanwhile wins, and a vote that arrived meanwhile is weighed by the
fitted model. The label distribution and final-source tallies change in the same transaction.
Between recomputes a submit keeps majority vote on its own item, as it always does.

Items whose truth is known (gold, or a review in force) do not change; their answers (every
annotator's latest, counted or not: a gold answer is outside overlap but measures its annotator
all the same) are fitted with the truth fixed, so they sharpen the annotators' matrices.

Switching back to majority: a recompute with method majority gives the items that hold a
Dawid–Skene decision (source consensus) their majority value again (final_of).
"""

import logging
import time
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime

import numpy as np
from django.db import connection, transaction
from django.db.models import F, Value
from django.db.models.functions import Greatest
from django.utils import timezone

from annotate import tasks
from annotate.models import Annotation, FinalSource, Item, Label, Project
from annotate.quality.consensus import final_of
from annotate.quality.dawid_skene import DawidSkene, dawid_skene_answers, posterior_of
from annotate.quality.finals import final_tallies
from annotate.quality.tallies import tallies_add
from annotate.quality.votes import votes_from_rows

logger = logging.getLogger(__name__)

MAJORITY, DAWID_SKENE = "majority", "dawid_skene"
# Final sources the votes decide: the ones a recompute may rewrite. Review and gold always win.
VOTED_SOURCES = (FinalSource.SINGLE, FinalSource.CONSENSUS, FinalSource.TIE)
KNOWN_SOURCES = (FinalSource.GOLD, FinalSource.REVIEW)
BATCH_SIZE = 1000
_STREAM_CHUNK = 5000

SINGLE_LABEL_ONLY = (
    "Dawid–Skene applies to single-label projects only (a multi-label item has no one true class);"
    " this project is multi-label"
)


@dataclass(frozen=True)
class ConsensusRecompute:
    """What one recompute did."""

    method: str  # the method applied: "majority" or "dawid_skene"
    items_changed: int
    items_fitted: int = 0  # items whose answers the estimate read
    annotators: int = 0
    iterations: int = 0
    converged: bool = True
    computed_at: datetime | None = None  # the project's consensus_computed_at afterwards
    detail: str = ""


@dataclass(frozen=True)
class ConsensusRequest:
    queued: bool
    detail: str


def project_consensus_method(project: Project) -> str:
    """The method in force: Dawid–Skene only on a single-label project that asks for it."""
    if project.consensus_method == DAWID_SKENE and not project.multi_label:
        return DAWID_SKENE
    return MAJORITY


def project_consensus_request(*, project: Project) -> ConsensusRequest:
    """Queue a recompute of the project's final labels (on demand: the pages, the API, a switch
    of method). Dispatched on commit. With majority vote and no Dawid–Skene decision to undo,
    nothing is queued: majority is kept with every annotation."""
    project = Project.objects.get(pk=project.pk)
    if project_consensus_method(project) == MAJORITY and project.consensus_computed_at is None:
        detail = "majority vote is kept with every annotation: there is nothing to recompute"
        if project.consensus_method == DAWID_SKENE:
            detail = SINGLE_LABEL_ONLY + ", so majority vote is used"
        return ConsensusRequest(queued=False, detail=detail)
    tasks.project_consensus_recompute.delay_on_commit(project.pk)
    return ConsensusRequest(queued=True, detail="a recompute of the final labels is queued")


def project_consensus_auto_request(*, project: Project) -> bool:
    """Queue a Dawid–Skene recompute once `consensus_every` annotations have come since the
    last one (counted from `consensus_last_annotation_id`); True when this call queued it.

    Coalesced: the conditional UPDATE that moves `consensus_last_annotation_id` up to the N-th
    new annotation claims the recompute, so of the submits that cross the threshold together
    exactly one queues it, and the next needs N more annotations (the recompute reads all of
    them when it runs, so a second one is at worst redundant, never wrong).
    """
    # The caller's project row (a request loads it afresh): no query at all for majority projects.
    every, last = project.consensus_every, project.consensus_last_annotation_id
    if project_consensus_method(project) != DAWID_SKENE or not every:
        return False
    # The N-th annotation after the last recompute: walking the primary key stops after N rows.
    nth = list(
        Annotation.objects.filter(project_id=project.pk, id__gt=last)
        .order_by("id")
        .values_list("id", flat=True)[every - 1 : every]
    )
    if not nth:
        return False
    # A stale `last` (another submit claimed it since the row was read) claims nothing.
    claimed = Project.objects.filter(
        pk=project.pk, consensus_last_annotation_id=last, consensus_method=DAWID_SKENE
    ).update(consensus_last_annotation_id=nth[0])
    if not claimed:
        return False
    project.consensus_last_annotation_id = nth[0]
    tasks.project_consensus_recompute.delay_on_commit(project.pk)
    logger.info("consensus recompute queued: project=%s after=%s annotations", project.pk, every)
    return True


def project_consensus_auto_request_receiver(*, project: Project, **kwargs) -> None:
    """Receiver of annotate.signals.annotations_stored (connected in AnnotateConfig.ready)."""
    project_consensus_auto_request(project=project)


def project_consensus_recompute(*, project: Project, batch_size: int = BATCH_SIZE) -> ConsensusRecompute:
    """Rewrite the project's voted final labels by its consensus method (see the module's
    docstring); the Celery task project_consensus_recompute calls it.

    Dawid–Skene: fit on every item's votes, rewrite in batches, then set
    `consensus_computed_at` and `consensus_last_annotation_id`. Majority: undo the Dawid–Skene
    decisions if there are any (then `consensus_computed_at` is cleared), else do nothing.
    """
    started = time.perf_counter()
    project = Project.objects.get(pk=project.pk)
    method = project_consensus_method(project)
    label_names = list(
        Label.objects.filter(project_id=project.pk).order_by("order", "id").values_list("name", flat=True)
    )
    if method == MAJORITY:
        result = _majority_restore(project=project, label_names=label_names, batch_size=batch_size)
    else:
        result = _dawid_skene_apply(project=project, label_names=label_names, batch_size=batch_size)
    logger.info(
        "consensus recompute: project=%s method=%s changed=%s fitted=%s iterations=%s seconds=%.2f",
        project.pk,
        result.method,
        result.items_changed,
        result.items_fitted,
        result.iterations,
        time.perf_counter() - started,
    )
    return result


def _majority_restore(*, project: Project, label_names: list[str], batch_size: int) -> ConsensusRecompute:
    if project.consensus_computed_at is None:
        detail = "majority vote is kept with every annotation: there is nothing to recompute"
        if project.consensus_method == DAWID_SKENE:
            detail = SINGLE_LABEL_ONLY + ", so majority vote is used"
        return ConsensusRecompute(method=MAJORITY, items_changed=0, detail=detail)

    def decide(votes_by_item: dict[int, dict]) -> dict[int, tuple[dict | None, str]]:
        return {
            item_id: final_of(
                votes=list(votes.values()), multi_label=project.multi_label, label_order=label_names
            )
            for item_id, votes in votes_by_item.items()
        }

    # Dawid–Skene writes source "consensus" only: those are the items to give back to the majority.
    changed, complete = _rewrite(
        project=project,
        sources=(FinalSource.CONSENSUS,),
        decide=decide,
        method=MAJORITY,
        batch_size=batch_size,
    )
    if complete:
        Project.objects.filter(pk=project.pk).update(consensus_computed_at=None)
    return ConsensusRecompute(
        method=MAJORITY,
        items_changed=changed,
        computed_at=None if complete else project.consensus_computed_at,
        detail="final labels are majority vote again" if complete else "stopped: the method changed",
    )


def _dawid_skene_apply(*, project: Project, label_names: list[str], batch_size: int) -> ConsensusRecompute:
    classes = {name: index for index, name in enumerate(label_names)}
    fit = _fit(project=project, classes=classes)
    annotator_index, model = fit.annotator_index, fit.model
    unseen = len(annotator_index)  # the column of an annotator the fit never saw
    confusion = np.concatenate([model.confusion, model.unseen_confusion[None]], axis=0)

    def decide(votes_by_item: dict[int, dict]) -> dict[int, tuple[dict | None, str]]:
        decided: dict[int, tuple[dict | None, str]] = {}
        order, items, annotators, answers = [], [], [], []
        for item_id, votes in votes_by_item.items():
            rated = [
                (a, classes[c]) for a, c in ((a, _single_choice(v)) for a, v in votes.items()) if c in classes
            ]
            if not rated:
                # No vote the model can read (none at all, say, after a reject): majority decides.
                decided[item_id] = final_of(
                    votes=list(votes.values()), multi_label=False, label_order=label_names
                )
                continue
            for annotator_id, answer in rated:
                items.append(len(order))
                annotators.append(annotator_index.get(annotator_id, unseen))
                answers.append(answer)
            order.append(item_id)
        if order:
            posterior = posterior_of(
                items=items,
                annotators=annotators,
                classes=answers,
                n_items=len(order),
                priors=model.priors,
                confusion=confusion,
            )
            for item_id, best in zip(order, posterior.argmax(axis=1), strict=True):
                # A Dawid–Skene decision is a consensus, even where the votes were tied.
                decided[item_id] = ({"choices": [label_names[best]]}, FinalSource.CONSENSUS)
        return decided

    changed, complete = _rewrite(
        project=project, sources=VOTED_SOURCES, decide=decide, method=DAWID_SKENE, batch_size=batch_size
    )
    computed_at = None
    if complete:
        computed_at = timezone.now()
        Project.objects.filter(pk=project.pk).update(
            consensus_computed_at=computed_at,
            consensus_last_annotation_id=Greatest(
                F("consensus_last_annotation_id"), Value(fit.last_annotation_id)
            ),
        )
    return ConsensusRecompute(
        method=DAWID_SKENE,
        items_changed=changed,
        items_fitted=fit.items,
        annotators=len(annotator_index),
        iterations=model.iterations,
        converged=model.converged,
        computed_at=computed_at or project.consensus_computed_at,
        detail=(
            f"Dawid–Skene over {fit.items} items and {len(annotator_index)} annotators"
            f" ({model.iterations} iterations{'' if model.converged else ', not converged'})"
            if complete
            else "stopped: the method changed"
        ),
    )


@dataclass(frozen=True)
class _Fit:
    model: DawidSkene
    annotator_index: dict[int, int]  # annotator id -> row of model.confusion
    items: int
    last_annotation_id: int


def _fit(*, project: Project, classes: dict[str, int]) -> _Fit:
    """Read every item's answers in one streamed pass (ordered by item, id) and fit Dawid–Skene."""
    known = {}
    for item_id, value in Item.objects.filter(
        project_id=project.pk, final_source__in=KNOWN_SOURCES
    ).values_list("id", "final_value"):
        choice = _single_choice(value)
        if choice in classes:
            known[item_id] = classes[choice]
    rows = (
        Annotation.objects.filter(project_id=project.pk)
        .order_by("item_id", "id")
        .values_list("id", "item_id", "annotator_id", "value", "counted", "rejected")
        .iterator(chunk_size=_STREAM_CHUNK)
    )
    item_index: dict[int, int] = {}
    annotator_index: dict[int, int] = {}
    items, annotators, answers, truths = [], [], [], []
    last_annotation_id = 0

    def ids(rows) -> Iterator[tuple]:
        nonlocal last_annotation_id
        for annotation_id, *rest in rows:
            last_annotation_id = max(last_annotation_id, annotation_id)
            yield rest

    for item_id, votes in _by_item(ids(rows), known=known):
        rated = [
            (a, classes[c]) for a, c in ((a, _single_choice(v)) for a, v in votes.items()) if c in classes
        ]
        if not rated:
            continue
        index = item_index.setdefault(item_id, len(item_index))
        truths.append(known.get(item_id, -1))
        for annotator_id, answer in rated:
            items.append(index)
            annotators.append(annotator_index.setdefault(annotator_id, len(annotator_index)))
            answers.append(answer)
    model = dawid_skene_answers(
        items=items,
        annotators=annotators,
        classes=answers,
        n_items=len(item_index),
        n_annotators=len(annotator_index),
        n_classes=max(len(classes), 1),
        known=truths,
    )
    return _Fit(
        model=model,
        annotator_index=annotator_index,
        items=len(item_index),
        last_annotation_id=last_annotation_id,
    )


def _by_item(rows: Iterable[tuple], *, known: dict[int, int]) -> Iterator[tuple[int, dict[int, dict]]]:
    """From (item id, annotator id, value, counted, rejected) rows ordered by item, id: each
    item's answers.

    The voters (votes_from_rows), except on an item whose truth is known: there every
    annotator's latest answer, rejected or not, since each measures its annotator against the
    truth (a rejected answer never votes, but leaving it out would flatter its annotator)."""
    current, group = None, []
    for item_id, *answer in rows:
        if item_id != current:
            if group:
                yield current, _answers(group, known=current in known)
            current, group = item_id, []
        group.append(tuple(answer))
    if group:
        yield current, _answers(group, known=current in known)


def _answers(group: list[tuple], *, known: bool) -> dict[int, dict]:
    if known:
        return {annotator_id: value for annotator_id, value, *_ in group}
    return votes_from_rows(group)


def _single_choice(value) -> str | None:
    choices = (value or {}).get("choices") if isinstance(value, dict) else None
    return choices[0] if isinstance(choices, list) and len(choices) == 1 else None


def _rewrite(
    *, project: Project, sources: Sequence[str], decide, method: str, batch_size: int
) -> tuple[int, bool]:
    """Walk the project's items whose final source is in `sources`, in batches by id, and give
    each the (value, source) `decide` returns for its votes; returns (items changed, whether it
    went through: False when the project's method changed under it)."""
    changed, after = 0, 0
    while True:
        ids = list(
            Item.objects.filter(project_id=project.pk, id__gt=after, final_source__in=sources)
            .order_by("id")
            .values_list("id", flat=True)[:batch_size]
        )
        if not ids:
            return changed, True
        after = ids[-1]
        written = _rewrite_batch(project=project, ids=ids, sources=sources, decide=decide, method=method)
        if written is None:
            return changed, False
        changed += written


def _rewrite_batch(
    *, project: Project, ids: list[int], sources: Sequence[str], decide, method: str
) -> int | None:
    """One batch in one transaction: lock the items, then re-read their sources and votes, so a
    review or a vote that came since the candidates were listed is seen. None when the project's
    method is no longer `method` (a switch queued another recompute, which will do the work)."""
    with transaction.atomic():
        # Rows first, then the method: a switch that commits after this read waits for these
        # locks in its own recompute, and one that committed before is seen here.
        current = {
            item_id: (value, source)
            for item_id, value, source in Item.objects.select_for_update()
            .filter(id__in=ids, final_source__in=sources)
            .order_by("id")
            .values_list("id", "final_value", "final_source")
        }
        fresh = Project.objects.filter(pk=project.pk).first()
        if fresh is None or project_consensus_method(fresh) != method:
            return None
        if not current:
            return 0
        rows = (
            Annotation.objects.filter(item_id__in=list(current))
            .order_by("item_id", "id")
            .values_list("item_id", "annotator_id", "value", "counted", "rejected")
        )
        votes_by_item: dict[int, dict] = {item_id: {} for item_id in current}
        for item_id, votes in _by_item(rows, known={}):
            votes_by_item[item_id] = votes
        decided = decide(votes_by_item)
        groups: dict[tuple, list[int]] = {}
        added: Counter = Counter()
        for item_id, (old_value, old_source) in current.items():
            value, source = decided[item_id]
            if value == old_value and source == old_source:
                continue
            groups.setdefault((_value_key(value), source), []).append(item_id)
            added.update(final_tallies(value, source))
            added.subtract(final_tallies(old_value, old_source))
        for (_, source), group in groups.items():
            value = decided[group[0]][0]
            Item.objects.filter(id__in=group).update(final_value=value, final_source=source)
        with connection.cursor() as cursor:
            tallies_add(cursor, project_id=project.pk, added=added)
        return sum(len(group) for group in groups.values())


def _value_key(value: dict | None) -> tuple:
    return () if value is None else tuple(value.get("choices", []))
