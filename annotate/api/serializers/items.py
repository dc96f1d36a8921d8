"""Items: listed, filtered and created in bulk, and the item as the queue serves it
(`QueueItemOutput`, with the proposal to show).
"""

from django.urls import reverse
from rest_framework import serializers

from annotate.models import Item, PickKind

MAX_ITEMS_PER_REQUEST = 10_000


class ReleaseOutput(serializers.Serializer):
    released = serializers.IntegerField()


class ProposalOutput(serializers.Serializer):
    value = serializers.JSONField()
    score = serializers.FloatField(allow_null=True, required=False)
    model_version_id = serializers.IntegerField(
        allow_null=True,
        required=False,
        help_text="The proposing model version's database id (send it back with the annotation);"
        " null for a proposal imported with the item.",
    )
    model_version_number = serializers.IntegerField(
        allow_null=True,
        required=False,
        help_text="The same version's number within the project (the N of vN), for display.",
    )


# What every item body starts with: the queue's, the review queue's.
ITEM_FIELDS = ["id", "external_id", "text", "image_url", "width", "height", "metadata"]


class QueueItemOutput(serializers.ModelSerializer):
    image_url = serializers.SerializerMethodField()
    # The label proposed for this item, pre-selected on the labeling page: {"value", "score",
    # "model_version_id", "model_version_number"}; null when there is none.
    proposal = ProposalOutput(allow_null=True, read_only=True)
    # Drawn by the random slice (served without a proposal, to measure the model without bias).
    random_slice = serializers.SerializerMethodField()

    class Meta:
        model = Item
        fields = [
            *ITEM_FIELDS,
            "proposal",
            "random_slice",
        ]

    def get_random_slice(self, item: Item) -> bool:
        return item.pick_kind == PickKind.RANDOM

    def get_image_url(self, item: Item) -> str | None:
        if not item.image:
            return None
        return reverse("annotate:item-image", args=[item.project_id, item.pk])


class ItemOutput(QueueItemOutput):
    class Meta(QueueItemOutput.Meta):
        fields = [*QueueItemOutput.Meta.fields, "annotation_count", "is_complete", "created_at"]


class ItemFilterInput(serializers.Serializer):
    status = serializers.ChoiceField(choices=["labeled", "unlabeled", "skipped"], required=False)
    mine = serializers.BooleanField(
        required=False, default=False, help_text="With status: labeled, unlabeled or skipped by me."
    )


class _RawRows(serializers.ListField):
    """A list whose rows stay as the JSON parser made them: item_create_bulk checks each one with
    the import's row rules and names the row and field at fault. (A JSONField per row re-encoded
    each to check it: a quarter of a 10,000-item request.)"""

    def run_child_validation(self, data: list) -> list:
        return list(data)


class ItemCreateBulkInput(serializers.Serializer):
    items = _RawRows(
        child=serializers.JSONField(),
        allow_empty=False,
        max_length=MAX_ITEMS_PER_REQUEST,
        help_text='Rows {"text", "external_id"?, "metadata"?}; one bad row rejects them all.',
    )


class ItemCreateBulkOutput(serializers.Serializer):
    created = serializers.IntegerField()
