"""The Django admin for projects (with their labels and members) and items.

Django's autodiscover imports this package, so it imports the modules that register the
ModelAdmins: projects.py (Project, its labels and members) and items.py (Item, its
annotations), audit.py (the audit log, read-only). base.py holds what they share, and what
training/admin.py builds on: permissions from memberships (`ManagedByLeadAdmin`,
`ManagedProjectFilter`, `may_manage`).
"""

from django.contrib import admin

from annotate.admin.audit import AuditEventAdmin
from annotate.admin.base import ManagedByLeadAdmin, ManagedProjectFilter, managed_project_ids, may_manage
from annotate.admin.items import QUALITY_MODELS, AnnotationInline, ItemAdmin, ItemAdminForm
from annotate.admin.projects import LabelInline, MembershipInline, MembershipInlineForm, ProjectAdmin

admin.site.site_header = "LabelLoop admin"

__all__ = [
    "QUALITY_MODELS",
    "AnnotationInline",
    "AuditEventAdmin",
    "ItemAdmin",
    "ItemAdminForm",
    "LabelInline",
    "ManagedByLeadAdmin",
    "ManagedProjectFilter",
    "MembershipInline",
    "MembershipInlineForm",
    "ProjectAdmin",
    "managed_project_ids",
    "may_manage",
]
