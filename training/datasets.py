"""Labeled snapshots for training: each labeled item's final label, frozen with a stable split.

- Final label: the item's own (Item.final_value, kept by annotate/quality/ with every change):
  a gold value, a review's, or the voters' consensus. Ties have none and are left out.
- Split: an item is on the validation side when sha256(project salt, item id) mod 5 = 0, fixed
  forever, whatever else is added. A class with no validation item lends its smallest-hash
  training item to validation for that run only; the snapshot records it.
- A first model as soon as it is useful: the snapshot keeps every class that has a labeled item
  and leaves out the classes nobody has labeled yet, so the model proposes the classes it was
  shown. `snapshot.classes_left_out` says which, with their counts (0; the run's metrics carry
  it), and pool scoring looks for them with the diversity strategy meanwhile
  (training/scoring.py). A class with a single labeled item trains the model but is not judged
  by the cross-validation (training/evaluation.py fold_assignments: its item trains every fold);
  the first model needs MIN_PER_CLASS labeled items of 2 classes (1, multi-label), so that it can
  be judged at all. Too few labels (that, or fewer than the project's minimum) raise
  NotEnoughLabels with a message that says exactly what is missing. Why a single label trains:
  on the digits demo the 20-item seed set leaves one or two classes with one label; left out,
  they kept the first model at 0.76 accuracy (and without the image network's pseudo-labels,
  which need every class); trained, 0.94–0.98 (bench/README.md).
- Text spans: a labeled text is one whose final value holds a spans list, empty lists included
  (an annotator saying "no entity here" teaches the model as much). A spans project trains from
  the project's minimum of labeled texts (`training_min_labels`, never fewer than
  SPANS_MIN_TEXTS, so cross-validation has folds) holding at least SPANS_MIN_ENTITIES entities in
  all; a label with no entity yet is simply never proposed.
"""

import hashlib
import json
from collections import defaultdict
from dataclasses import dataclass

from django.db import transaction

from annotate.models import Item, Label, Project
from training.models import DatasetSnapshot

VALIDATION_MODULUS = 5
MIN_PER_CLASS = 2
SPANS_MIN_TEXTS = 5
SPANS_MIN_ENTITIES = 2


class NotEnoughLabels(Exception):
    """Training cannot start yet; the message says what is missing."""


def item_hash(salt: str, item_id: int) -> int:
    """The stable hash that places an item on its side of the split."""
    return int.from_bytes(hashlib.sha256(f"{salt}:{item_id}".encode()).digest()[:8], "big")


def is_validation(salt: str, item_id: int) -> bool:
    return item_hash(salt, item_id) % VALIDATION_MODULUS == 0


@dataclass(frozen=True)
class FinalLabels:
    classes: list[str]
    item_ids: list[int]
    values: list[dict]


def final_labels(*, project: Project) -> FinalLabels:
    """Every labeled item's final label (Item.final_value), in item id order; ties and items
    without a label have none. Gold items train on their true value, reviewed ones on the review's."""
    classes = list(
        Label.objects.filter(project=project).order_by("order", "id").values_list("name", flat=True)
    )
    rows = (
        Item.objects.filter(project=project, final_value__isnull=False)
        .order_by("id")
        .values_list("id", "final_value")
    )
    spans = project.task_type == Project.TaskType.TEXT_SPANS
    item_ids, values = [], []
    for item_id, value in rows.iterator(chunk_size=5000):
        if (spans and isinstance(value.get("spans"), list)) or (
            not spans and (project.multi_label or value.get("choices"))
        ):
            item_ids.append(item_id)
            values.append(value)
    return FinalLabels(classes=classes, item_ids=item_ids, values=values)


def _value_labels(value: dict) -> list[str]:
    """The label names a final value uses: its choices, or its spans' labels."""
    if "spans" in value:
        return [span["label"] for span in value["spans"]]
    return list(value["choices"])


def _class_counts(labels: FinalLabels) -> dict[str, int]:
    counts = dict.fromkeys(labels.classes, 0)
    for value in labels.values:
        for choice in _value_labels(value):
            if choice in counts:
                counts[choice] += 1
    return counts


def labels_trainable(*, project: Project, labels: FinalLabels) -> tuple[FinalLabels, dict[str, int]]:
    """The labels a model trains on, and the classes left out with their counts.

    Classes with no labeled item are left out (multi-label: an item then says "no" to them only
    by not naming them). Raises NotEnoughLabels, saying exactly what is missing, when fewer than
    2 classes (single-label) or none (multi-label) have MIN_PER_CLASS labeled items, or when the
    project's minimum is not met; for spans, the minimum of labeled texts with
    SPANS_MIN_ENTITIES entities among them (nothing left out).
    """
    if project.task_type == Project.TaskType.TEXT_SPANS:
        _span_labels_check(project=project, labels=labels)
        return labels, {}
    if len(labels.classes) < 2 and not project.multi_label:
        raise NotEnoughLabels(
            "not enough labels yet: a single-label project needs at least 2 labels (classes)"
        )
    counts = _class_counts(labels)
    kept = [name for name in labels.classes if counts[name] > 0]
    left_out = {name: n for name, n in counts.items() if n == 0}
    needed = 1 if project.multi_label else 2
    if sum(counts[name] >= MIN_PER_CLASS for name in kept) < needed:
        listed = ", ".join(f"{name!r} has {n}" for name, n in counts.items())
        what = "at least 1 label" if project.multi_label else "at least 2 labels"
        raise NotEnoughLabels(
            f"not enough labels yet: {what} need {MIN_PER_CLASS} labeled items each to train a first"
            f" model ({listed}); {_missing(counts, needed)}"
        )
    trained = _labels_keep(labels, kept, multi_label=project.multi_label)
    minimum = project.training_min_labels
    if len(trained.item_ids) < minimum:
        left = f" (left out: {_listed(left_out)})" if left_out else ""
        raise NotEnoughLabels(
            f"not enough labels yet: {len(trained.item_ids)} labeled items, this project trains"
            f" from {minimum}{left}"
        )
    return trained, left_out


def labels_check(*, project: Project, labels: FinalLabels) -> None:
    """Raise NotEnoughLabels unless a first model can train (labels_trainable)."""
    labels_trainable(project=project, labels=labels)


def _listed(counts: dict[str, int]) -> str:
    return ", ".join(f"{name!r} has {n}" for name, n in counts.items())


def _missing(counts: dict[str, int], needed: int) -> str:
    """What to label next: the fewest labels that give `needed` classes MIN_PER_CLASS each."""
    have = sum(n >= MIN_PER_CLASS for n in counts.values())
    closest = sorted((n for n in counts.values() if n < MIN_PER_CLASS), reverse=True)[: needed - have]
    more = sum(MIN_PER_CLASS - n for n in closest)
    return f"{more} more label{'s' if more != 1 else ''} of the labels short of {MIN_PER_CLASS} would do"


def _labels_keep(labels: FinalLabels, kept: list[str], *, multi_label: bool) -> FinalLabels:
    if len(kept) == len(labels.classes):
        return labels
    keep = set(kept)
    item_ids, values = [], []
    for item_id, value in zip(labels.item_ids, labels.values, strict=True):
        if multi_label:
            value = {**value, "choices": [c for c in value["choices"] if c in keep]}
        elif value["choices"][0] not in keep:
            continue
        item_ids.append(item_id)
        values.append(value)
    return FinalLabels(classes=kept, item_ids=item_ids, values=values)


def _span_labels_check(*, project: Project, labels: FinalLabels) -> None:
    texts = len(labels.item_ids)
    entities = sum(len(value["spans"]) for value in labels.values)
    minimum = max(project.training_min_labels, SPANS_MIN_TEXTS)
    if texts < minimum or entities < SPANS_MIN_ENTITIES:
        raise NotEnoughLabels(
            f"not enough labels yet: a spans project trains from {minimum} labeled texts with at least"
            f" {SPANS_MIN_ENTITIES} spans among them; it has {texts} labeled text{'s' if texts != 1 else ''}"
            f" and {entities} span{'s' if entities != 1 else ''}"
        )


def _split(*, project: Project, labels: FinalLabels) -> tuple[list[int], dict[str, int]]:
    """Validation ids (stable by hash) and the items lent for classes without one."""
    validation = {i for i in labels.item_ids if is_validation(project.salt, i)}
    by_class: dict[str, list[int]] = defaultdict(list)
    for item_id, value in zip(labels.item_ids, labels.values, strict=True):
        for choice in _value_labels(value):
            by_class[choice].append(item_id)
    lent: dict[str, int] = {}
    for name in labels.classes:
        members = by_class.get(name, [])
        if members and not any(i in validation for i in members):
            borrowed = min(members, key=lambda i: item_hash(project.salt, i))
            lent[name] = borrowed
            validation.add(borrowed)
    return sorted(validation), lent


def _fingerprint(labels: FinalLabels, validation: list[int]) -> str:
    payload = json.dumps([labels.classes, labels.item_ids, labels.values, validation], separators=(",", ":"))
    return hashlib.sha256(payload.encode()).hexdigest()


@transaction.atomic
def dataset_snapshot_create(*, project: Project) -> DatasetSnapshot:
    """Freeze the project's final labels and split; an identical earlier snapshot is reused.

    The snapshot holds the classes with a labeled item; `classes_left_out` (an attribute of the
    returned object, not stored) names the others with their counts.
    """
    labels, left_out = labels_trainable(project=project, labels=final_labels(project=project))
    validation, lent = _split(project=project, labels=labels)
    fingerprint = _fingerprint(labels, validation)
    snapshot = DatasetSnapshot.objects.filter(project=project, fingerprint=fingerprint).first()
    if snapshot is None:
        snapshot = _snapshot_store(project=project, labels=labels, validation=validation, lent=lent,
                                   fingerprint=fingerprint)  # fmt: skip
    snapshot.classes_left_out = left_out
    return snapshot


def _snapshot_store(*, project, labels, validation, lent, fingerprint) -> DatasetSnapshot:
    return DatasetSnapshot.objects.create(
        project=project,
        classes=labels.classes,
        multi_label=project.multi_label,
        item_ids=labels.item_ids,
        values=labels.values,
        validation_ids=validation,
        lent=lent,
        fingerprint=fingerprint,
    )
