"""A project's labels: list, add, rename or recolour, delete."""

from drf_spectacular.utils import extend_schema
from rest_framework import status
from rest_framework.response import Response

from annotate.api import serializers as s
from annotate.api.base import BAD_REQUEST, FORBIDDEN, NOT_FOUND, ProjectApi, found
from annotate.api.permissions import CanManage
from annotate.projects import label_create, label_delete, label_list, label_update


class LabelListApi(ProjectApi):
    role_permissions = {"POST": CanManage}

    @extend_schema(tags=["labels"], responses={200: s.LabelOutput(many=True), 404: NOT_FOUND})
    def get(self, request, project_id):
        """The project's labels, in order."""
        return Response(s.LabelOutput(label_list(project=self.project), many=True).data)

    @extend_schema(
        tags=["labels"],
        request=s.LabelCreateInput,
        responses={201: s.LabelOutput, 400: BAD_REQUEST, 403: FORBIDDEN, 404: NOT_FOUND},
    )
    def post(self, request, project_id):
        """Add a label (managers)."""
        data = s.LabelCreateInput(data=request.data)
        data.is_valid(raise_exception=True)
        label = label_create(project=self.project, **data.validated_data)
        return Response(s.LabelOutput(label).data, status=status.HTTP_201_CREATED)


class LabelDetailApi(ProjectApi):
    role_permissions = {"PATCH": CanManage, "DELETE": CanManage}

    def _label(self, label_id: int):
        return found(label_list(project=self.project).filter(pk=label_id).first())

    @extend_schema(
        tags=["labels"],
        request=s.LabelUpdateInput,
        responses={200: s.LabelOutput, 400: BAD_REQUEST, 403: FORBIDDEN, 404: NOT_FOUND},
    )
    def patch(self, request, project_id, label_id):
        """Change a label (managers); renaming it rewrites its name in the annotations that use it."""
        data = s.LabelUpdateInput(data=request.data, partial=True)
        data.is_valid(raise_exception=True)
        label = label_update(label=self._label(label_id), **data.validated_data)
        return Response(s.LabelOutput(label).data)

    @extend_schema(
        tags=["labels"],
        responses={204: None, 400: BAD_REQUEST, 403: FORBIDDEN, 404: NOT_FOUND},
    )
    def delete(self, request, project_id, label_id):
        """Delete a label (managers); refused (400) while annotations use it, naming their count."""
        label_delete(label=self._label(label_id))
        return Response(status=status.HTTP_204_NO_CONTENT)
