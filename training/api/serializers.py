"""Output serializers of training's API: runs and model versions."""

from rest_framework import serializers

from training.models import ModelVersion, TrainingRun


class TrainingRunOutput(serializers.ModelSerializer):
    model_version = serializers.IntegerField(
        source="model_version.number",
        allow_null=True,
        default=None,
        help_text="The number (the N of vN) of the version it trained or activates; null until it has one.",
    )
    coalesced = serializers.BooleanField(required=False)

    class Meta:
        model = TrainingRun
        fields = [
            "id", "status", "phase", "progress", "trigger", "created_at", "started_at", "finished_at",
            "heartbeat_at", "error", "dataset_size", "items_scored", "model_version", "coalesced",
        ]  # fmt: skip


class ModelVersionOutput(serializers.ModelSerializer):
    accuracy = serializers.FloatField(allow_null=True)
    metrics = serializers.JSONField()
    acceptance = serializers.JSONField(allow_null=True, required=False)

    class Meta:
        model = ModelVersion
        fields = ["id", "number", "backend", "is_active", "created_at", "accuracy", "metrics", "acceptance"]
