"""Review (annotate/review.py): the reviewer's queue and decisions."""

from rest_framework import serializers

from annotate.api.serializers.items import ITEM_FIELDS, QueueItemOutput
from annotate.api.serializers.queue import NextInput
from annotate.converters import DB_ID_MAX
from annotate.models import Annotation, Item, Review


class ReviewReleaseInput(serializers.Serializer):
    item = serializers.IntegerField(
        required=False,
        min_value=1,
        max_value=DB_ID_MAX,
        help_text="Only this item's lease (an item you pass).",
    )


class ReviewNextInput(NextInput):
    """Items the review page already shows (the current and the prefetched one, and those the
    reviewer passed) and does not want back."""


class ReviewDecisionInput(serializers.Serializer):
    decision = serializers.ChoiceField(choices=Review.Decision.choices)
    supersedes = serializers.IntegerField(
        allow_null=True,
        min_value=1,
        max_value=DB_ID_MAX,
        help_text="The id of the decision in force when the item was shown (`in_force.id`), null when"
        " there was none. If another decision has come since, the answer is 409 with the winner.",
    )
    annotation = serializers.IntegerField(
        required=False,
        allow_null=True,
        default=None,
        min_value=1,
        max_value=DB_ID_MAX,
        help_text="The annotation accepted or rejected (accept and reject only).",
    )
    value = serializers.JSONField(
        required=False,
        allow_null=True,
        default=None,
        help_text='A correction\'s value, {"choices": ["<label name>", ...]}: it becomes the final label.',
    )
    reason = serializers.CharField(
        required=False,
        allow_blank=True,
        default="",
        max_length=2000,
        help_text="Why (a reject needs one: the annotator is shown it).",
    )


class ReviewOutput(serializers.ModelSerializer):
    item = serializers.IntegerField(source="item_id", read_only=True)
    reviewer = serializers.CharField(source="reviewer.username", read_only=True)
    annotation = serializers.IntegerField(source="annotation_id", read_only=True, allow_null=True)
    annotator = serializers.SerializerMethodField(help_text="Who gave the accepted or rejected annotation.")
    supersedes = serializers.IntegerField(source="supersedes_id", read_only=True, allow_null=True)

    class Meta:
        model = Review
        fields = [
            "id",
            "item",
            "decision",
            "reviewer",
            "annotation",
            "annotator",
            "value",
            "reason",
            "supersedes",
            "created_at",
        ]

    def get_annotator(self, review: Review) -> str | None:
        annotation = review.annotation
        return None if annotation is None else annotation.annotator.username


class ReviewConflictOutput(serializers.Serializer):
    detail = serializers.CharField()
    winner = ReviewOutput(
        allow_null=True,
        required=False,
        help_text="With a conflict: the decision in force; reload the item and decide again.",
    )


def review_data(review: Review | None) -> dict | None:
    """ReviewOutput's body (None for no decision); the 409 of a conflict carries the winner's."""
    return None if review is None else ReviewOutput(review).data


class ReviewAnnotationOutput(serializers.ModelSerializer):
    annotator = serializers.CharField(source="annotator.username", read_only=True)

    class Meta:
        model = Annotation
        fields = ["id", "annotator", "value", "active_ms", "created_at", "late", "counted", "rejected"]


class ReviewItemOutput(QueueItemOutput):
    class Meta:
        model = Item
        fields = [
            *ITEM_FIELDS,
            "annotation_count",
            "is_complete",
            "final_value",
            "final_source",
            "disagreement",
            "review_state",
            "suspicion",
            "suspect_value",
        ]
        extra_kwargs = {
            "suspicion": {"help_text": "How much the model doubts the final label (higher: more); null"},
            "suspect_value": {
                "help_text": "The model's alternative to the final label, for a suspicious one."
            },
        }


class ReviewLeaseOutput(serializers.Serializer):
    expires_at = serializers.DateTimeField()


class ReviewItemViewOutput(serializers.Serializer):
    lease = ReviewLeaseOutput(allow_null=True, help_text="Your lease of the item (null when only viewed).")
    item = ReviewItemOutput()
    annotations = ReviewAnnotationOutput(many=True, help_text="Every answer, oldest first.")
    in_force = ReviewOutput(
        allow_null=True, help_text="The decision in force: send its id back as `supersedes` (null: none)."
    )
    history = ReviewOutput(many=True, help_text="Every decision on the item, newest first.")
    yours = serializers.BooleanField(help_text="You annotated this item, so another reviewer must decide it.")
    waiting = serializers.IntegerField(help_text="How many items of the project wait for review.")
