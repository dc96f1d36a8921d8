"""A project's members: their roles, the pause, and each one's gold accuracy."""

from drf_spectacular.utils import extend_schema
from rest_framework import status
from rest_framework.response import Response

from annotate.accounts import account_deactivate
from annotate.api import serializers as s
from annotate.api.base import BAD_REQUEST, FORBIDDEN, NOT_FOUND, ProjectApi, found, paginated
from annotate.api.pagination import KeysetPagination
from annotate.api.permissions import CanManage, CanReview
from annotate.projects import (
    membership_add,
    membership_change,
    membership_list,
    membership_remove,
)


class MemberListApi(ProjectApi):
    role_permissions = {"GET": CanReview, "POST": CanManage}
    pagination_class = KeysetPagination

    @extend_schema(
        tags=["members"], responses={200: s.MemberOutput(many=True), 403: FORBIDDEN, 404: NOT_FOUND}
    )
    def get(self, request, project_id):
        """Members with their role, annotation count, pause and gold accuracy (reviewers and managers)."""
        return paginated(self, membership_list(project=self.project), s.MemberOutput)

    @extend_schema(
        tags=["members"],
        request=s.MemberAddInput,
        responses={201: s.MemberOutput, 400: BAD_REQUEST, 403: FORBIDDEN, 404: NOT_FOUND},
    )
    def post(self, request, project_id):
        """Add an existing user by username (managers); a user who is already a member gets the new role."""
        data = s.MemberAddInput(data=request.data)
        data.is_valid(raise_exception=True)
        membership = membership_add(project=self.project, actor=request.user, **data.validated_data)
        membership = membership_list(project=self.project).get(pk=membership.pk)
        return Response(s.MemberOutput(membership).data, status=status.HTTP_201_CREATED)


class MemberDeactivateApi(ProjectApi):
    role_permissions = {"POST": CanManage}

    @extend_schema(
        tags=["members"],
        request=None,
        responses={200: s.MemberOutput, 400: BAD_REQUEST, 403: FORBIDDEN, 404: NOT_FOUND},
    )
    def post(self, request, project_id, membership_id):
        """Deactivate the member's account (managers: only an account whose every membership is in
        a project they manage; staff: any): it is signed out everywhere and its token revoked; its
        annotations stay. 400 says why not."""
        membership = found(membership_list(project=self.project).filter(pk=membership_id).first())
        account_deactivate(actor=request.user, user=membership.user)
        membership = membership_list(project=self.project).get(pk=membership_id)
        return Response(s.MemberOutput(membership).data)


class MemberDetailApi(ProjectApi):
    role_permissions = {"PATCH": CanManage, "DELETE": CanManage}

    def _membership(self, membership_id: int):
        return found(membership_list(project=self.project).filter(pk=membership_id).first())

    @extend_schema(
        tags=["members"],
        request=s.MemberUpdateInput,
        responses={200: s.MemberOutput, 400: BAD_REQUEST, 403: FORBIDDEN, 404: NOT_FOUND},
    )
    def patch(self, request, project_id, membership_id):
        """Change a member's role, or pause / resume them (managers): {"role"}, {"paused": true,
        "paused_reason"}, {"paused": false}. A project keeps at least one manager; a paused
        member's queue serves nothing and tells them the reason."""
        data = s.MemberUpdateInput(data=request.data)
        data.is_valid(raise_exception=True)
        membership = membership_change(
            membership=self._membership(membership_id), actor=request.user, **data.validated_data
        )
        return Response(s.MemberOutput(membership).data)

    @extend_schema(
        tags=["members"],
        responses={204: None, 400: BAD_REQUEST, 403: FORBIDDEN, 404: NOT_FOUND},
    )
    def delete(self, request, project_id, membership_id):
        """Remove a member (managers); their annotations stay. The last manager cannot be removed."""
        membership_remove(membership=self._membership(membership_id), actor=request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)
