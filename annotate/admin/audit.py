"""The audit log in the admin, read-only: a lead sees their projects' events and every event they
caused (the deletion of a project they managed, whose project is gone), a superuser all."""

from django.contrib import admin
from django.db.models import Q

from annotate.admin.base import ManagedByLeadAdmin, ManagedProjectFilter
from annotate.audit import audit_describe
from annotate.models import AuditEvent
from annotate.projects import project_list_managed_by


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
        managed = project_list_managed_by(user=request.user).values("pk")
        return admin.ModelAdmin.get_queryset(self, request).filter(
            Q(project__in=managed) | Q(actor=request.user)
        )

    def _caused_any(self, request) -> bool:
        user = request.user
        return user.is_active and user.is_staff and AuditEvent.objects.filter(actor=user).exists()

    def has_module_permission(self, request):
        return super().has_module_permission(request) or self._caused_any(request)

    def has_view_permission(self, request, obj=None):
        if obj is not None and obj.actor_id == request.user.pk and request.user.is_staff:
            return request.user.is_active
        if obj is None:
            return super().has_view_permission(request) or self._caused_any(request)
        return super().has_view_permission(request, obj)

    def project_id_of(self, obj: AuditEvent) -> int:
        return obj.project_id

    def has_change_permission(self, request, obj=None):
        return False

    @admin.display(description="detail in words")
    def description(self, obj: AuditEvent) -> str:
        return audit_describe(obj)
