"""Label values: one JSON shape per task type, validated on the way in.

Classification (text or image): {"choices": ["label name", ...]}; exactly one choice in a
single-label project, any number of distinct choices in a multi-label one.
"""

from collections.abc import Sequence
from typing import Any

from django.core.exceptions import ValidationError

from annotate.models import Project

CLASSIFICATION_TYPES = frozenset(
    {Project.TaskType.TEXT_CLASSIFICATION, Project.TaskType.IMAGE_CLASSIFICATION}
)


def annotation_value_validate(
    *, project: Project, label_names: Sequence[str], value: Any, field: str = "value"
) -> dict:
    """Return `value` normalised (choices in label order), or raise ValidationError naming the problem."""
    if project.task_type not in CLASSIFICATION_TYPES:
        raise ValidationError({field: f"task type {project.task_type!r} has no value shape yet"})
    if not isinstance(value, dict) or set(value) != {"choices"}:
        raise ValidationError(
            {field: 'must be an object with exactly one key, "choices": {"choices": ["<label>"]}'}
        )
    choices = value["choices"]
    if not isinstance(choices, list) or not all(isinstance(c, str) for c in choices):
        raise ValidationError({field: '"choices" must be a list of label names (strings)'})
    known = {name: position for position, name in enumerate(label_names)}
    unknown = [c for c in choices if c not in known]
    if unknown:
        raise ValidationError(
            {field: f"unknown label {unknown[0]!r}; this project's labels are: " + ", ".join(label_names)}
        )
    if len(set(choices)) != len(choices):
        raise ValidationError({field: '"choices" lists a label twice'})
    if not project.multi_label and len(choices) != 1:
        raise ValidationError(
            {field: f"this project is single-label: choose exactly one label, not {len(choices)}"}
        )
    return {"choices": sorted(choices, key=known.__getitem__)}
