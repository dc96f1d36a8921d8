"""The audit log: who exported, deleted, changed a role or asked for retraining, and when.

An event keeps the project's name and id as plain columns, so a deletion's event outlives the
project (its foreign key is then NULL)."""

from django.conf import settings
from django.db import models

from annotate.models.projects import Project


class AuditEvent(models.Model):
    class Action(models.TextChoices):
        EXPORT = "export", "Export"
        PROJECT_DELETED = "project_deleted", "Project deleted"
        ROLE_CHANGED = "role_changed", "Role changed"
        MEMBER_ADDED = "member_added", "Member added"
        MEMBER_REMOVED = "member_removed", "Member removed"
        MEMBER_PAUSED = "member_paused", "Member paused"
        MEMBER_RESUMED = "member_resumed", "Member resumed"
        ACCOUNT_DEACTIVATED = "account_deactivated", "Account deactivated"
        RETRAINING_REQUESTED = "retraining_requested", "Retraining requested"
        MODEL_ACTIVATED = "model_activated", "Model activation requested"

    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    project = models.ForeignKey(
        Project, null=True, blank=True, on_delete=models.SET_NULL, related_name="audit_events"
    )
    # The project as it was: these stay when the project is deleted.
    project_name = models.CharField(max_length=200, blank=True)
    project_ref = models.BigIntegerField(null=True, blank=True)
    action = models.CharField(max_length=32, choices=Action.choices)
    detail = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["-id"]
        indexes = [models.Index(fields=["project", "-id"], name="auditevent_project_id_idx")]

    def __str__(self) -> str:
        return f"{self.get_action_display()} · {self.project_name or '–'} · {self.created_at:%Y-%m-%d %H:%M}"
