"""Gold items: a manager gives an item its true value (PUT) or makes it ordinary again (DELETE).

Both go through annotate.gold, which keeps the item's final label (source "gold") and the
tallies right in the same transaction; a raw write would leave them behind.
"""

from django.core.exceptions import ValidationError
from drf_spectacular.utils import extend_schema
from rest_framework.response import Response

from annotate.api import serializers as s
from annotate.api.base import BAD_REQUEST, FORBIDDEN, NOT_FOUND, ProjectApi, found
from annotate.api.permissions import CanManage
from annotate.gold import item_gold_clear, item_gold_set
from annotate.items import item_list


def _as_value_error(error: ValidationError) -> ValidationError:
    """The service names the model field (gold_value); this endpoint's field is `value`."""
    if hasattr(error, "error_dict") and "gold_value" in error.error_dict:
        return ValidationError({"value": error.message_dict["gold_value"]})
    return error


class ItemGoldApi(ProjectApi):
    role_permissions = {"GET": CanManage, "HEAD": CanManage, "PUT": CanManage, "DELETE": CanManage}

    def _item_id(self, item_id: int) -> int:
        # 404 for another project's item, as every item URL answers.
        return found(item_list(project=self.project).filter(pk=item_id).values_list("pk", flat=True).first())

    @extend_schema(tags=["gold"], responses={200: s.GoldItemOutput, 403: FORBIDDEN, 404: NOT_FOUND})
    def get(self, request, project_id, item_id):
        """The item's gold state: pick_kind "gold" with its true value, or "queue" (managers)."""
        return Response(
            s.GoldItemOutput(found(item_list(project=self.project).filter(pk=item_id).first())).data
        )

    @extend_schema(
        tags=["gold"],
        request=s.GoldInput,
        responses={200: s.GoldItemOutput, 400: BAD_REQUEST, 403: FORBIDDEN, 404: NOT_FOUND},
    )
    def put(self, request, project_id, item_id):
        """Make the item gold with `value` as its true value, or change a gold item's value (managers).

        The value becomes the item's final label (source "gold"); annotators meet the item as
        part of their queue's gold share, unannounced, and their answers are checked against it.
        A value with a label the project does not have is refused (400 naming `value`)."""
        data = s.GoldInput(data=request.data)
        data.is_valid(raise_exception=True)
        item_id = self._item_id(item_id)
        try:
            item = item_gold_set(project=self.project, item_id=item_id, value=data.validated_data["value"])
        except ValidationError as error:
            raise _as_value_error(error) from error
        return Response(s.GoldItemOutput(item).data)

    @extend_schema(
        tags=["gold"],
        request=None,
        responses={200: s.GoldItemOutput, 400: BAD_REQUEST, 403: FORBIDDEN, 404: NOT_FOUND},
    )
    def delete(self, request, project_id, item_id):
        """Make a gold item ordinary again (managers): its final label is its voters' once more.
        400 when the item is not gold."""
        item = item_gold_clear(project=self.project, item_id=self._item_id(item_id))
        return Response(s.GoldItemOutput(item).data)
