"""A project's audit log (managers): exports, deletions, member and role changes, retraining."""

from drf_spectacular.utils import extend_schema

from annotate.api import serializers as s
from annotate.api.base import BAD_REQUEST, FORBIDDEN, NOT_FOUND, ProjectApi, paginated
from annotate.api.pagination import KeysetPagination
from annotate.api.permissions import CanManage
from annotate.audit import audit_list


class AuditPagination(KeysetPagination):
    ordering = "-id"
    page_size = 50


class AuditListApi(ProjectApi):
    role_permissions = {"GET": CanManage}
    pagination_class = AuditPagination

    @extend_schema(
        tags=["audit"],
        responses={200: s.AuditEventOutput(many=True), 400: BAD_REQUEST, 403: FORBIDDEN, 404: NOT_FOUND},
    )
    def get(self, request, project_id):
        """The project's audit log, newest first (managers): who did what, when, with the detail
        as data and in words. `actor` is null for LabelLoop's own actions (retraining every N labels)."""
        return paginated(self, audit_list(project=self.project), s.AuditEventOutput)
