"""The audit log's events (annotate/api/audit.py)."""

from rest_framework import serializers

from annotate.audit import audit_describe
from annotate.models import AuditEvent


class AuditEventOutput(serializers.ModelSerializer):
    actor = serializers.CharField(
        source="actor.username",
        allow_null=True,
        read_only=True,
        help_text="null: no user (LabelLoop itself, a script, or a deleted account).",
    )
    detail = serializers.DictField(read_only=True, help_text="What the action was about, as data.")
    description = serializers.SerializerMethodField(help_text="The detail in words.")

    class Meta:
        model = AuditEvent
        fields = ["id", "created_at", "actor", "action", "project_name", "detail", "description"]
        read_only_fields = fields

    def get_description(self, event: AuditEvent) -> str:
        return audit_describe(event)
