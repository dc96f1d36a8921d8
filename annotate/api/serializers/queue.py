"""The queue and annotations (annotate/api/queue.py): lease the next item, submit, skip.

The labeling page's hot path builds its bodies as dicts (`next_data`, `annotation_data`): see
the comment above them.
"""

from django.urls import reverse
from rest_framework import serializers

from annotate.api.serializers.items import QueueItemOutput
from annotate.converters import DB_ID_MAX, DB_INT_MAX
from annotate.models import Annotation, Assignment, Item, PickKind, Skip

MAX_EXCLUDED_ITEMS = 100


class AssignmentOutput(serializers.ModelSerializer):
    class Meta:
        model = Assignment
        fields = ["id", "expires_at"]


class NextInput(serializers.Serializer):
    exclude = serializers.ListField(
        child=serializers.IntegerField(),
        required=False,
        default=list,
        max_length=MAX_EXCLUDED_ITEMS,
        help_text="Items the client already holds (e.g. the prefetched one) and does not want back.",
    )


class NextOutput(serializers.Serializer):
    assignment = AssignmentOutput()
    item = QueueItemOutput()


class ProposalInput(serializers.Serializer):
    value = serializers.JSONField()
    model_version_id = serializers.IntegerField(
        required=False,
        allow_null=True,
        default=None,
        min_value=1,
        max_value=DB_ID_MAX,
        help_text="The model_version_id of the proposal shown (the version's database id).",
    )


class AnnotationInput(serializers.Serializer):
    item = serializers.IntegerField(min_value=1, max_value=DB_ID_MAX)
    value = serializers.JSONField(help_text='{"choices": ["<label name>", ...]}')
    active_ms = serializers.IntegerField(min_value=0, max_value=DB_INT_MAX, default=0)
    proposal = ProposalInput(required=False, allow_null=True, default=None)
    idempotency_key = serializers.RegexField(
        r"^[A-Za-z0-9._:-]{1,64}$",
        required=False,
        default="",
        help_text="Your key for this submit, 1 to 64 of A-Z a-z 0-9 . _ : - (a UUID, say): the same key"
        " again stores nothing and answers with the annotation stored the first time.",
        error_messages={"invalid": "idempotency_key: use 1 to 64 of A-Z a-z 0-9 . _ : -"},
    )


class SubmitAndNextInput(AnnotationInput, NextInput):
    pass


class AnnotationOutput(serializers.ModelSerializer):
    item = serializers.IntegerField(source="item_id", read_only=True)
    annotator = serializers.CharField(source="annotator.username", read_only=True)

    class Meta:
        model = Annotation
        fields = ["id", "item", "annotator", "value", "active_ms", "created_at", "late", "counted"]


class AnnotationFilterInput(serializers.Serializer):
    item = serializers.IntegerField(required=False, min_value=1, max_value=DB_ID_MAX)


class SubmitAndNextOutput(serializers.Serializer):
    annotation = AnnotationOutput()
    next = NextOutput(allow_null=True)
    detail = serializers.CharField(
        required=False, help_text="Why `next` is null although the queue may not be empty."
    )


# The labeling page's hot path: NextOutput and AnnotationOutput describe these bodies (and the
# schema), but building them through DRF cost 0.8 and 0.55 ms a call (a ModelSerializer makes
# its fields anew each time), so the queue views build the same dicts here. test_api checks
# that both ways give the same body.
_DATETIME = serializers.DateTimeField()


def next_data(assignment: Assignment, item: Item) -> dict:
    """NextOutput's body for a lease; `item.proposal` is the one to show."""
    proposal = item.proposal
    return {
        "assignment": {"id": assignment.pk, "expires_at": _DATETIME.to_representation(assignment.expires_at)},
        "item": {
            "id": item.pk,
            "external_id": item.external_id,
            "text": item.text,
            "image_url": reverse("annotate:item-image", args=[item.project_id, item.pk])
            if item.image
            else None,
            "width": item.width,
            "height": item.height,
            "metadata": item.metadata,
            "proposal": None
            if proposal is None
            else {
                "value": proposal["value"],
                "score": None if proposal.get("score") is None else float(proposal["score"]),
                "model_version_id": _int_or_none(proposal.get("model_version_id")),
                "model_version_number": _int_or_none(proposal.get("model_version_number")),
            },
            "random_slice": item.pick_kind == PickKind.RANDOM,
        },
    }


def _int_or_none(value) -> int | None:
    return None if value is None else int(value)


def annotation_data(annotation: Annotation) -> dict:
    """AnnotationOutput's body."""
    return {
        "id": annotation.pk,
        "item": annotation.item_id,
        "annotator": annotation.annotator.username,
        "value": annotation.value,
        "active_ms": annotation.active_ms,
        "created_at": _DATETIME.to_representation(annotation.created_at),
        "late": annotation.late,
        "counted": annotation.counted,
    }


class SkipInput(serializers.Serializer):
    item = serializers.IntegerField(min_value=1, max_value=DB_ID_MAX)


class SkipOutput(serializers.ModelSerializer):
    item = serializers.IntegerField(source="item_id", read_only=True)

    class Meta:
        model = Skip
        fields = ["id", "item", "created_at"]
