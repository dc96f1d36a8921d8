"""The audit log in the admin, read-only: a lead sees their projects' events, a superuser all
(a deleted project's events too, whose project is gone)."""

from django.contrib import admin

from annotate.admin.base import ManagedByLeadAdmin, ManagedProjectFilter
from annotate.audit import audit_describe
from annotate.models import AuditEvent


@admin.register(AuditEvent)
class AuditEventAdmin(ManagedByLeadAdmin):
    allow_add = allow_delete = False
    list_display = ("created_at", "project_name", "actor", "action", "description")
    list_filter = (("project", ManagedProjectFilter), "action")
    list_select_related = ("actor",)
    search_fields = ("project_name", "actor__username")
    ordering = ("-id",)
    fields = (
        "created_at",
        "actor",
        "project",
        "project_name",
        "project_ref",
        "action",
        "detail",
        "description",
    )
    readonly_fields = fields

    def get_queryset(self, request):
        if request.user.is_superuser:
            return admin.ModelAdmin.get_queryset(self, request)
        return super().get_queryset(request)

    def project_id_of(self, obj: AuditEvent) -> int:
        return obj.project_id

    def has_change_permission(self, request, obj=None):
        return False

    @admin.display(description="detail in words")
    def description(self, obj: AuditEvent) -> str:
        return audit_describe(obj)
