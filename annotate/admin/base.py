"""What the annotate and training admins share: permissions from memberships, and refusals.

Permissions come from memberships, not from Django's model permissions: a superuser may do
everything, a lead (a staff user who manages projects) may do everything in the projects
they manage and sees nothing else, and any other staff user sees no LabelLoop model.

A write a service refuses is shown as an error message (`_refuse`) and the form is shown again
(`_was_refused`, read by each ModelAdmin's response_add and response_change).
"""

from django.contrib import admin, messages
from django.core.exceptions import ValidationError
from django.db import models

from annotate.projects import project_list_managed_by

# Request attributes: the managed project ids (read once per request) and the refusals
# collected while saving (so the response shows the form again instead of "saved").
_MANAGED_IDS = "_labelloop_managed_project_ids"
_REFUSALS = "_labelloop_admin_refusals"


def managed_project_ids(request) -> frozenset[int]:
    if not hasattr(request, _MANAGED_IDS):
        ids = project_list_managed_by(user=request.user).values_list("id", flat=True)
        setattr(request, _MANAGED_IDS, frozenset(ids))
    return getattr(request, _MANAGED_IDS)


def may_manage(request, project_id: int | None) -> bool:
    """Whether the admin user may manage the project; with None, whether they manage any."""
    user = request.user
    if not (user.is_active and user.is_staff):
        return False
    if user.is_superuser:
        return True
    managed = managed_project_ids(request)
    return bool(managed) if project_id is None else project_id in managed


def _refuse(request, error: ValidationError) -> None:
    for message in error.messages:
        messages.error(request, message)
    setattr(request, _REFUSALS, True)


def _was_refused(request) -> bool:
    return getattr(request, _REFUSALS, False)


def _adopt(target: models.Model, saved: models.Model) -> None:
    """Make the admin's unsaved form instance stand for the row a service created."""
    for field in saved._meta.concrete_fields:
        setattr(target, field.attname, getattr(saved, field.attname))
    target._state.adding = False
    target._state.db = saved._state.db


class ManagedProjectFilter(admin.RelatedFieldListFilter):
    """The project filter, offering only the projects the admin user manages."""

    def field_choices(self, field, request, model_admin):
        return field.get_choices(
            include_blank=False,
            ordering=self.field_admin_ordering(field, request, model_admin),
            limit_choices_to={"pk__in": project_list_managed_by(user=request.user)},
        )


class ManagedByLeadAdmin(admin.ModelAdmin):
    """Permissions from memberships: a superuser may do everything, a lead everything in the
    projects they manage (`project_id_of` names an object's project); read-only models turn
    `allow_add` / `allow_delete` off."""

    allow_add = True
    allow_delete = True

    def project_id_of(self, obj) -> int:
        return obj.project_id

    def get_queryset(self, request):
        managed = project_list_managed_by(user=request.user)
        return super().get_queryset(request).filter(project__in=managed.values("pk"))

    def _may(self, request, obj) -> bool:
        return may_manage(request, self.project_id_of(obj) if obj is not None else None)

    def has_module_permission(self, request):
        return may_manage(request, None)

    def has_view_permission(self, request, obj=None):
        return self._may(request, obj)

    def has_change_permission(self, request, obj=None):
        return self._may(request, obj)

    def has_delete_permission(self, request, obj=None):
        return self.allow_delete and self._may(request, obj)

    def has_add_permission(self, request):
        return self.allow_add and may_manage(request, None)
