"""Projects and their labels: the Input serializers of create and update, and the Outputs."""

from rest_framework import serializers

from annotate.converters import DB_INT_MAX
from annotate.models import Label, Project
from annotate.models.projects import training_params_refused
from annotate.quality.recompute import SINGLE_LABEL_ONLY


class LabelOutput(serializers.ModelSerializer):
    class Meta:
        model = Label
        fields = ["id", "name", "colour", "hotkey", "order"]


class LabelCreateInput(serializers.Serializer):
    name = serializers.CharField(max_length=100)
    colour = serializers.CharField(max_length=7, required=False)
    hotkey = serializers.CharField(max_length=1, required=False, allow_blank=True)
    order = serializers.IntegerField(min_value=0, max_value=DB_INT_MAX, required=False)


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
            "fetch_image_urls",
            "text_model",
            "training_params",
        ]


class ProjectDeletionOutput(serializers.Serializer):
    detail = serializers.CharField()
    deletes = serializers.DictField(child=serializers.IntegerField(), help_text="What goes: kind -> count.")


class ProjectUpdateInput(serializers.Serializer):
    name = serializers.CharField(max_length=200, required=False)
    instructions = serializers.CharField(required=False, allow_blank=True)
    task_type = serializers.ChoiceField(choices=Project.TaskType.choices, required=False)
    multi_label = serializers.BooleanField(required=False)
    overlap = serializers.IntegerField(min_value=1, max_value=32767, required=False)
    lease_seconds = serializers.IntegerField(min_value=10, max_value=DB_INT_MAX, required=False)
    consensus_method = serializers.ChoiceField(
        choices=Project._meta.get_field("consensus_method").choices,
        required=False,
        help_text="majority (kept with every annotation) or dawid_skene (single-label projects only;"
        " recomputed in the background)",
    )
    consensus_every = serializers.IntegerField(
        min_value=0,
        max_value=DB_INT_MAX,
        required=False,
        help_text="Dawid–Skene: recompute after this many new annotations (0: on demand only).",
    )
    spans_snap_to_tokens = serializers.BooleanField(
        required=False, help_text="Text spans: selections widen to whole tokens (false: character precision)."
    )
    spans_may_overlap = serializers.BooleanField(required=False, help_text="Text spans may overlap.")
    fetch_image_urls = serializers.BooleanField(
        required=False,
        help_text="Image projects: imports may name images by http(s) URL (field or column"
        ' "image_url"); the studio fetches them from public addresses only. Off by default.',
    )
    training_params = serializers.JSONField(
        required=False,
        help_text='Hyper-parameters changed from the backend\'s defaults, e.g. {"lr": 0.001, "epochs": 20};'
        " a name the backend lacks, a wrong type or a value out of range is refused, naming it. Images:"
        ' {"start_from": <model version id>} starts the network from a version of another project you'
        " manage (same input_size).",
    )
    text_model = serializers.ChoiceField(
        choices=Project._meta.get_field("text_model").choices,
        required=False,
        help_text="Text classification: ngrams (hashed n-grams) or encoder (a sentence encoder, where"
        " it is installed); refused, naming why, where it is not.",
    )

    def validate_training_params(self, value):
        # The requester (context["request"], which the view passes) must manage a start_from's
        # project; checked before the model's own checks, so another project's version reads as
        # one that does not exist.
        request = self.context.get("request")
        why = training_params_refused(
            project=self.context.get("project"), params=value, user=getattr(request, "user", None)
        )
        if why:
            raise serializers.ValidationError(why)
        return value

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
