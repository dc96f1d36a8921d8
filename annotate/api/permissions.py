"""Project-scoped access: the requester's membership is looked up once per request.

A user who is not a member of the project gets 404, exactly as for a project that does not
exist, so ids reveal nothing; a member whose role is too low for the method gets 403.
"""

from rest_framework.exceptions import NotFound
from rest_framework.permissions import BasePermission

from annotate.models import Membership, Project
from annotate.projects import membership_get


class CanReview(BasePermission):
    message = "only the project's reviewers and managers may do this"

    def has_permission(self, request, view) -> bool:
        return view.membership.can_review


class CanManage(BasePermission):
    message = "only the project's managers may do this"

    def has_permission(self, request, view) -> bool:
        return view.membership.can_manage


class ProjectMemberMixin:
    """For views under /projects/<project_id>/: sets `self.membership` and `self.project`.

    `role_permissions` maps an HTTP method to the permission a member needs for it (CanReview,
    CanManage); a method not listed is open to every member.
    """

    role_permissions: dict[str, type[BasePermission]] = {}
    membership: Membership
    project: Project

    def check_permissions(self, request) -> None:
        # IsAuthenticated first, so an anonymous request gets 401 before any lookup.
        super().check_permissions(request)
        if not hasattr(self, "membership"):
            membership = membership_get(user=request.user, project_id=self.kwargs["project_id"])
            if membership is None:
                raise NotFound()
            self.membership, self.project = membership, membership.project
        # HEAD runs the GET handler, so it needs what GET needs.
        method = "GET" if request.method == "HEAD" else request.method
        permission_class = self.role_permissions.get(method)
        if permission_class is not None:
            permission = permission_class()
            if not permission.has_permission(request, self):
                self.permission_denied(request, message=permission.message)
