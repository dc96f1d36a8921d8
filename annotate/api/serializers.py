"""Input serializers parse a request; Output serializers render what a service or selector returns.

Inputs never save: a view passes their `validated_data` to one service.
"""

from django.contrib.auth import get_user_model
from django.urls import reverse
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
    Skip,
)

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
        fields = [*ProjectOutput.Meta.fields, "labels"]


class ProjectUpdateInput(serializers.Serializer):
    name = serializers.CharField(max_length=200, required=False)
    instructions = serializers.CharField(required=False, allow_blank=True)
    task_type = serializers.ChoiceField(choices=Project.TaskType.choices, required=False)
    multi_label = serializers.BooleanField(required=False)
    overlap = serializers.IntegerField(min_value=1, max_value=32767, required=False)
    lease_seconds = serializers.IntegerField(min_value=10, required=False)


class ProjectCreateInput(ProjectUpdateInput):
    name = serializers.CharField(max_length=200)
    task_type = serializers.ChoiceField(
        choices=Project.TaskType.choices, default=Project.TaskType.TEXT_CLASSIFICATION
    )
    labels = serializers.ListField(
        child=serializers.CharField(max_length=100), required=False, default=list, max_length=200
    )


# Members ---------------------------------------------------------------------------------


class MemberOutput(serializers.ModelSerializer):
    username = serializers.CharField(source="user.username", read_only=True)
    annotation_count = serializers.IntegerField(read_only=True)

    class Meta:
        model = Membership
        fields = ["id", "username", "role", "annotation_count", "created_at"]


class MemberAddInput(serializers.Serializer):
    username = serializers.SlugRelatedField(
        slug_field="username", queryset=get_user_model().objects.all(), source="user"
    )
    role = serializers.ChoiceField(choices=Membership.Role.choices, default=Membership.Role.ANNOTATOR)


class MemberUpdateInput(serializers.Serializer):
    role = serializers.ChoiceField(choices=Membership.Role.choices)


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
