"""A project's items: keyset pages with status filters, creating items from a JSON body, one item."""

from drf_spectacular.utils import extend_schema
from rest_framework import status
from rest_framework.response import Response

from annotate.api import serializers as s
from annotate.api.base import BAD_REQUEST, FORBIDDEN, NOT_FOUND, ProjectApi, found, paginated
from annotate.api.pagination import KeysetPagination
from annotate.api.permissions import CanManage
from annotate.items import item_create_bulk, item_list


class ItemListApi(ProjectApi):
    role_permissions = {"POST": CanManage}
    pagination_class = KeysetPagination

    @extend_schema(
        tags=["items"],
        parameters=[s.ItemFilterInput],
        responses={200: s.ItemOutput(many=True), 400: BAD_REQUEST, 404: NOT_FOUND},
    )
    def get(self, request, project_id):
        """Items in import order, filtered by status (for everyone, or for you with mine=1)."""
        filters = s.ItemFilterInput(data=request.query_params)
        filters.is_valid(raise_exception=True)
        items = item_list(
            project=self.project,
            status=filters.validated_data.get("status"),
            annotator_id=request.user.pk if filters.validated_data["mine"] else None,
        )
        return paginated(self, items, s.ItemOutput)

    @extend_schema(
        tags=["items"],
        request=s.ItemCreateBulkInput,
        responses={201: s.ItemCreateBulkOutput, 400: BAD_REQUEST, 403: FORBIDDEN, 404: NOT_FOUND},
    )
    def post(self, request, project_id):
        """Add text items (managers), all or nothing: a bad row is named by number (from 1) and field.

        The rows pass the rules of a file import (a text project only; text and ids without NUL;
        ids unique and new) and are written as an import writes them.
        """
        data = s.ItemCreateBulkInput(data=request.data)
        data.is_valid(raise_exception=True)
        created = item_create_bulk(project=self.project, rows=data.validated_data["items"], source="items")
        return Response(
            s.ItemCreateBulkOutput({"created": created.items_created}).data, status=status.HTTP_201_CREATED
        )


class ItemDetailApi(ProjectApi):
    @extend_schema(tags=["items"], responses={200: s.ItemOutput, 404: NOT_FOUND})
    def get(self, request, project_id, item_id):
        """One item."""
        item = found(item_list(project=self.project).filter(pk=item_id).first())
        return Response(s.ItemOutput(item).data)
