"""Input serializers parse a request; Output serializers render what a service or selector returns.

Inputs never save: a view passes their `validated_data` to one service.
"""

from django.contrib.auth import get_user_model
from django.urls import reverse
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from annotate import exporting, importing
from annotate.models import (
    Annotation,
    Assignment,
    ExportJob,
    ImportJob,
    Item,
    Label,
    Membership,
    Project,
    Review,
    Skip,
)
from annotate.quality.gold import gold_accuracy
from annotate.quality.recompute import SINGLE_LABEL_ONLY

MAX_ITEMS_PER_REQUEST = 10_000
MAX_EXCLUDED_ITEMS = 100

# Errors ----------------------------------------------------------------------------------


class ErrorOutput(serializers.Serializer):
    detail = serializers.CharField()


# Auth ------------------------------------------------------------------------------------


class TokenOutput(serializers.Serializer):
    token = serializers.CharField()


# Projects and labels ---------------------------------------------------------------------


class LabelOutput(serializers.ModelSerializer):
    class Meta:
        model = Label
        fields = ["id", "name", "colour", "hotkey", "order"]


class LabelCreateInput(serializers.Serializer):
    name = serializers.CharField(max_length=100)
    colour = serializers.CharField(max_length=7, required=False)
    hotkey = serializers.CharField(max_length=1, required=False, allow_blank=True)
    order = serializers.IntegerField(min_value=0, required=False)


class LabelUpdateInput(LabelCreateInput):
    name = serializers.CharField(max_length=100, required=False)


class ProjectOutput(serializers.ModelSerializer):
    # A CharField, not a ChoiceField: the schema's RoleEnum already names this choice set.
    my_role = serializers.CharField(read_only=True, help_text="annotator, reviewer or manager")

    class Meta:
        model = Project
        fields = [
            "id",
            "name",
            "instructions",
            "task_type",
            "multi_label",
            "overlap",
            "lease_seconds",
            "created_at",
            "my_role",
        ]


class ProjectDetailOutput(ProjectOutput):
    labels = LabelOutput(many=True, read_only=True)

    class Meta(ProjectOutput.Meta):
        fields = [
            *ProjectOutput.Meta.fields,
            "labels",
            "consensus_method",
            "consensus_every",
            "consensus_computed_at",
            "spans_snap_to_tokens",
            "spans_may_overlap",
        ]


class ProjectUpdateInput(serializers.Serializer):
    name = serializers.CharField(max_length=200, required=False)
    instructions = serializers.CharField(required=False, allow_blank=True)
    task_type = serializers.ChoiceField(choices=Project.TaskType.choices, required=False)
    multi_label = serializers.BooleanField(required=False)
    overlap = serializers.IntegerField(min_value=1, max_value=32767, required=False)
    lease_seconds = serializers.IntegerField(min_value=10, required=False)
    consensus_method = serializers.ChoiceField(
        choices=Project._meta.get_field("consensus_method").choices,
        required=False,
        help_text="majority (kept with every annotation) or dawid_skene (single-label projects only;"
        " recomputed in the background)",
    )
    consensus_every = serializers.IntegerField(
        min_value=0,
        max_value=2**31 - 1,
        required=False,
        help_text="Dawid–Skene: recompute after this many new annotations (0: on demand only).",
    )
    spans_snap_to_tokens = serializers.BooleanField(
        required=False, help_text="Text spans: selections widen to whole tokens (false: character precision)."
    )
    spans_may_overlap = serializers.BooleanField(required=False, help_text="Text spans may overlap.")

    def validate(self, attrs):
        # Dawid–Skene needs one true class per item. A PATCH may name only one of the two
        # fields: the project being changed (context["project"], when the view passes it) says the other.
        project = self.context.get("project")
        multi_label = attrs.get("multi_label", getattr(project, "multi_label", False))
        method = attrs.get("consensus_method", getattr(project, "consensus_method", "majority"))
        if multi_label and method == "dawid_skene":
            if "consensus_method" in attrs:
                raise serializers.ValidationError({"consensus_method": SINGLE_LABEL_ONLY})
            message = (
                "this project uses Dawid–Skene, which applies to single-label projects only;"
                " set consensus_method to majority first"
            )
            raise serializers.ValidationError({"multi_label": message})
        return attrs


class ProjectCreateInput(ProjectUpdateInput):
    name = serializers.CharField(max_length=200)
    task_type = serializers.ChoiceField(
        choices=Project.TaskType.choices, default=Project.TaskType.TEXT_CLASSIFICATION
    )
    labels = serializers.ListField(
        child=serializers.CharField(max_length=100), required=False, default=list, max_length=200
    )


# Members ---------------------------------------------------------------------------------
# Members (roles, the pause, gold accuracy: annotate/api/members.py) and gold items
# (annotate/api/gold.py), down to "End of members and gold items".


class GoldAccuracyOutput(serializers.Serializer):
    answers = serializers.IntegerField(help_text="Answers given on gold items.")
    correct = serializers.IntegerField()
    accuracy = serializers.FloatField(allow_null=True, help_text="correct / answers; null without answers.")
    low = serializers.FloatField(allow_null=True, help_text="The Wilson score interval (95%): lower end.")
    high = serializers.FloatField(allow_null=True, help_text="The Wilson score interval (95%): upper end.")


class MemberOutput(serializers.ModelSerializer):
    username = serializers.CharField(source="user.username", read_only=True)
    annotation_count = serializers.IntegerField(read_only=True)
    gold = serializers.SerializerMethodField()

    class Meta:
        model = Membership
        fields = [
            "id",
            "username",
            "role",
            "annotation_count",
            "paused",
            "paused_reason",
            "gold",
            "created_at",
        ]

    @extend_schema_field(GoldAccuracyOutput)
    def get_gold(self, membership: Membership) -> dict:
        accuracy = gold_accuracy(answers=membership.gold_answers, correct=membership.gold_correct)
        return GoldAccuracyOutput(accuracy).data


class MemberAddInput(serializers.Serializer):
    username = serializers.SlugRelatedField(
        slug_field="username",
        queryset=get_user_model().objects.all(),
        source="user",
        error_messages={"does_not_exist": "no user is named {value}: add an existing user"},
    )
    role = serializers.ChoiceField(choices=Membership.Role.choices, default=Membership.Role.ANNOTATOR)


class MemberUpdateInput(serializers.Serializer):
    role = serializers.ChoiceField(choices=Membership.Role.choices, required=False)
    paused = serializers.BooleanField(
        required=False, help_text="true pauses the member (their queue serves nothing), false resumes them."
    )
    paused_reason = serializers.CharField(
        required=False,
        allow_blank=True,
        max_length=300,
        help_text='Shown to the paused member; only with "paused": true.',
    )

    def validate(self, data: dict) -> dict:
        if not data:
            raise serializers.ValidationError("give role, paused or both")
        if "paused_reason" in data and data.get("paused") is not True:
            raise serializers.ValidationError({"paused_reason": 'a reason goes with "paused": true only'})
        return data


class GoldInput(serializers.Serializer):
    value = serializers.JSONField(help_text='The true value, {"choices": ["<label name>", ...]}.')


class GoldItemOutput(serializers.ModelSerializer):
    class Meta:
        model = Item
        fields = [
            "id",
            "external_id",
            "pick_kind",
            "gold_value",
            "final_value",
            "final_source",
            "is_complete",
        ]
        read_only_fields = fields


# End of members and gold items.


# Items -----------------------------------------------------------------------------------


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


class QueueItemOutput(serializers.ModelSerializer):
    image_url = serializers.SerializerMethodField()
    # The label proposed for this item, pre-selected on the labeling page: {"value", "score",
    # "model_version_id", "model_version_number"}; null when there is none.
    proposal = ProposalOutput(allow_null=True, read_only=True)

    class Meta:
        model = Item
        fields = ["id", "external_id", "text", "image_url", "width", "height", "metadata", "proposal"]

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


# Queue and annotations -------------------------------------------------------------------


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
        help_text="The model_version_id of the proposal shown (the version's database id).",
    )


class AnnotationInput(serializers.Serializer):
    item = serializers.IntegerField()
    value = serializers.JSONField(help_text='{"choices": ["<label name>", ...]}')
    active_ms = serializers.IntegerField(min_value=0, default=0)
    proposal = ProposalInput(required=False, allow_null=True, default=None)


class SubmitAndNextInput(AnnotationInput, NextInput):
    pass


class AnnotationOutput(serializers.ModelSerializer):
    item = serializers.IntegerField(source="item_id", read_only=True)
    annotator = serializers.CharField(source="annotator.username", read_only=True)

    class Meta:
        model = Annotation
        fields = ["id", "item", "annotator", "value", "active_ms", "created_at", "late", "counted"]


class AnnotationFilterInput(serializers.Serializer):
    item = serializers.IntegerField(required=False)


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
    item = serializers.IntegerField()


class SkipOutput(serializers.ModelSerializer):
    item = serializers.IntegerField(source="item_id", read_only=True)

    class Meta:
        model = Skip
        fields = ["id", "item", "created_at"]


# Import and export -----------------------------------------------------------------------


class ImportInput(serializers.Serializer):
    """The upload and its options as sent; importing.import_options_validate judges them."""

    file = serializers.ListField(
        child=serializers.FileField(),
        allow_empty=False,
        help_text='One file; several `file` parts only for format "images".',
    )
    format = serializers.CharField(
        required=False,
        allow_blank=True,
        help_text=f"One of {', '.join(importing.FORMATS)}; told from the (first) file's name when left out.",
    )
    text_column = serializers.CharField(required=False, allow_blank=True)
    id_column = serializers.CharField(
        required=False, allow_blank=True, help_text="The external id column or field."
    )
    label_column = serializers.CharField(
        required=False,
        allow_blank=True,
        help_text="Existing labels, imported as counted annotations by the user source:<label_source>.",
    )
    prediction_column = serializers.CharField(
        required=False, allow_blank=True, help_text="Proposals shown to annotators."
    )
    gold_column = serializers.CharField(
        required=False, allow_blank=True, help_text="True values: rows with one become gold items."
    )
    label_source = serializers.CharField(required=False, allow_blank=True)
    import_as = serializers.CharField(
        required=False,
        allow_blank=True,
        help_text='COCO, YOLO, CoNLL, spaCy: "labels" (the default) or "predictions" (proposals).',
    )

    def options(self) -> dict:
        """The import options given (blank ones are dropped by the service)."""
        return {
            name: self.validated_data[name] for name in importing.OPTION_NAMES if name in self.validated_data
        }


class ImportJobOutput(serializers.ModelSerializer):
    url = serializers.SerializerMethodField()

    class Meta:
        model = ImportJob
        fields = ["id", "status", "progress", "rows_done", "rows_total", "items_created", "error", "url"]
        read_only_fields = fields

    def get_url(self, job: ImportJob) -> str:
        return reverse("api:import-detail", kwargs={"project_id": job.project_id, "job_id": job.pk})


class ExportInput(serializers.Serializer):
    format = serializers.ChoiceField(choices=exporting.FORMATS, default="json")
    labeled_only = serializers.BooleanField(
        default=False, help_text="Only items with at least one annotation."
    )
    reviewed_only = serializers.BooleanField(
        default=False, help_text="Only items whose final label a reviewer decided (source review)."
    )


class ExportJobOutput(serializers.ModelSerializer):
    url = serializers.SerializerMethodField()
    download_url = serializers.SerializerMethodField(help_text="Null until the job has succeeded.")

    class Meta:
        model = ExportJob
        fields = ["id", "status", "progress", "items_written", "error", "url", "download_url"]
        read_only_fields = fields

    def get_url(self, job: ExportJob) -> str:
        return reverse("api:export-detail", kwargs={"project_id": job.project_id, "job_id": job.pk})

    def get_download_url(self, job: ExportJob) -> str | None:
        if job.status != ExportJob.Status.SUCCEEDED or not job.file:
            return None
        return reverse("api:export-download", kwargs={"project_id": job.project_id, "job_id": job.pk})


# Review (annotate/review.py): the reviewer's queue and decisions --------------------------


class ReviewReleaseInput(serializers.Serializer):
    item = serializers.IntegerField(
        required=False,
        min_value=1,
        max_value=2**63 - 1,
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
        help_text="The id of the decision in force when the item was shown (`in_force.id`), null when"
        " there was none. If another decision has come since, the answer is 409 with the winner.",
    )
    annotation = serializers.IntegerField(
        required=False,
        allow_null=True,
        default=None,
        min_value=1,
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
            "id",
            "external_id",
            "text",
            "image_url",
            "width",
            "height",
            "metadata",
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
