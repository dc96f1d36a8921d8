"""Projects: the ones you belong to, creating one, its settings, deleting it."""

from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.response import Response

from annotate.api import serializers as s
from annotate.api.base import BAD_REQUEST, FORBIDDEN, NOT_FOUND, Api, ProjectApi, paginated
from annotate.api.pagination import KeysetPagination
from annotate.api.permissions import CanManage
from annotate.models import Membership, Project
from annotate.projects import (
    project_create,
    project_delete,
    project_deletion_counts,
    project_list_for_user,
    project_update,
)


class ProjectListApi(Api):
    pagination_class = KeysetPagination

    @extend_schema(tags=["projects"], responses=s.ProjectOutput(many=True))
    def get(self, request):
        """The projects you belong to, with your role in each."""
        return paginated(self, project_list_for_user(user=request.user), s.ProjectOutput)

    @extend_schema(
        tags=["projects"],
        request=s.ProjectCreateInput,
        responses={201: s.ProjectDetailOutput, 400: BAD_REQUEST},
    )
    def post(self, request):
        """Create a project with its labels; you become its manager."""
        data = s.ProjectCreateInput(data=request.data, context={"request": request})
        data.is_valid(raise_exception=True)
        project = project_create(created_by=request.user, **data.validated_data)
        project.my_role = Membership.Role.MANAGER
        return Response(s.ProjectDetailOutput(project).data, status=status.HTTP_201_CREATED)


class ProjectDetailApi(ProjectApi):
    role_permissions = {"PATCH": CanManage, "DELETE": CanManage}

    def _render(self, project: Project) -> Response:
        project.my_role = self.membership.role
        return Response(s.ProjectDetailOutput(project).data)

    @extend_schema(tags=["projects"], responses={200: s.ProjectDetailOutput, 404: NOT_FOUND})
    def get(self, request, project_id):
        """A project's settings and labels."""
        return self._render(self.project)

    @extend_schema(
        tags=["projects"],
        request=s.ProjectUpdateInput,
        responses={200: s.ProjectDetailOutput, 400: BAD_REQUEST, 403: FORBIDDEN, 404: NOT_FOUND},
    )
    def patch(self, request, project_id):
        """Change a project's settings (managers)."""
        data = s.ProjectUpdateInput(
            data=request.data, partial=True, context={"project": self.project, "request": request}
        )
        data.is_valid(raise_exception=True)
        return self._render(project_update(project=self.project, **data.validated_data))

    @extend_schema(
        tags=["projects"],
        parameters=[
            OpenApiParameter(
                "confirm",
                str,
                description="The project's name, exactly: without it the answer is 400 with what the"
                " deletion takes.",
            )
        ],
        responses={
            204: None,
            400: OpenApiResponse(
                s.ProjectDeletionOutput, description="Not confirmed: `deletes` names what the deletion takes."
            ),
            403: FORBIDDEN,
            404: NOT_FOUND,
        },
    )
    def delete(self, request, project_id):
        """Delete a project with its items, annotations, models and files (managers), confirmed by
        `?confirm=<the project's name>`; without it, or with another name, nothing goes and the
        answer (400) counts what would."""
        if request.query_params.get("confirm", "") != self.project.name:
            deletes = dict(project_deletion_counts(project=self.project))
            detail = f"confirm the deletion with ?confirm= and the project's name ({self.project.name!r})"
            return Response({"detail": detail, "deletes": deletes}, status=status.HTTP_400_BAD_REQUEST)
        project_delete(project=self.project, actor=request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)
