"""Labeled snapshots for training: each labeled item's final label, frozen with a stable split.

- Final label: the item's own (Item.final_value, kept by annotate/quality/ with every change):
  a gold value, a review's, or the voters' consensus. Ties have none and are left out.
- Split: an item is on the validation side when sha256(project salt, item id) mod 5 = 0, fixed
  forever, whatever else is added. A class with no validation item lends its smallest-hash
  training item to validation for that run only; the snapshot records it.
- Too few labels (fewer than 2 per class, or fewer than the project's minimum) raise
  NotEnoughLabels with a message that says what is missing.
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


def labels_check(*, project: Project, labels: FinalLabels) -> None:
    """Raise NotEnoughLabels unless every class has 2 labels and the project's minimum is met
    (for spans: the minimum of labeled texts, with SPANS_MIN_ENTITIES entities among them)."""
    if project.task_type == Project.TaskType.TEXT_SPANS:
        _span_labels_check(project=project, labels=labels)
        return
    if len(labels.classes) < 2 and not project.multi_label:
        raise NotEnoughLabels(
            "not enough labels yet: a single-label project needs at least 2 labels (classes)"
        )
    minimum = project.training_min_labels
    if len(labels.item_ids) < minimum:
        raise NotEnoughLabels(
            f"not enough labels yet: {len(labels.item_ids)} labeled items, this project trains from {minimum}"
        )
    short = {name: n for name, n in _class_counts(labels).items() if n < 2}
    if short:
        listed = ", ".join(f"{name!r} has {n}" for name, n in short.items())
        raise NotEnoughLabels(f"not enough labels yet: every label needs at least 2 labeled items ({listed})")


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
    """Freeze the project's final labels and split; an identical earlier snapshot is reused."""
    labels = final_labels(project=project)
    labels_check(project=project, labels=labels)
    validation, lent = _split(project=project, labels=labels)
    fingerprint = _fingerprint(labels, validation)
    existing = DatasetSnapshot.objects.filter(project=project, fingerprint=fingerprint).first()
    if existing is not None:
        return existing
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
