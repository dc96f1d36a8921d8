"""The annotator's history in a project: the items they answered, newest first, with their latest
answers (the labeling page goes back to one, and a changed answer is posted to annotations/)."""

from django.urls import reverse
from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.response import Response

from annotate.api.base import BAD_REQUEST, NOT_FOUND, ProjectApi
from annotate.history import HISTORY_MAX_PAGE, HISTORY_PAGE, annotation_history
from annotate.models import Annotation

_DATETIME = serializers.DateTimeField()


class HistoryInput(serializers.Serializer):
    before = serializers.IntegerField(
        required=False,
        min_value=1,
        help_text="The `next_before` of the previous page (answers older than it).",
    )
    page_size = serializers.IntegerField(
        required=False, min_value=1, max_value=HISTORY_MAX_PAGE, default=HISTORY_PAGE
    )


class HistoryItemOutput(serializers.Serializer):
    id = serializers.IntegerField()
    external_id = serializers.CharField()
    text = serializers.CharField()
    image_url = serializers.CharField(allow_null=True)
    width = serializers.IntegerField(allow_null=True)
    height = serializers.IntegerField(allow_null=True)
    metadata = serializers.JSONField()
    answer = serializers.JSONField(help_text="Your latest answer: the editor shows it pre-filled.")
    proposal = serializers.JSONField(allow_null=True, help_text="Always null: your answer is shown instead.")


class HistoryEntryOutput(serializers.Serializer):
    annotation = serializers.IntegerField(help_text="Your latest annotation of the item.")
    answered_at = serializers.DateTimeField()
    item = HistoryItemOutput()


class HistoryOutput(serializers.Serializer):
    results = HistoryEntryOutput(many=True)
    next_before = serializers.IntegerField(allow_null=True, help_text="Pass as `before` for older answers.")


def history_entry_data(annotation: Annotation) -> dict:
    """HistoryEntryOutput's body: the item as the labeling page's editors take it."""
    item = annotation.item
    return {
        "annotation": annotation.pk,
        "answered_at": _DATETIME.to_representation(annotation.created_at),
        "item": {
            "id": item.pk,
            "external_id": item.external_id,
            "text": item.text,
            "image_url": reverse("annotate:item-image", args=[item.project_id, item.pk])
            if item.image
            else None,
            "width": item.width,
            "height": item.height,
            "metadata": item.metadata,
            "answer": annotation.value,
            "proposal": None,
        },
    }


class HistoryApi(ProjectApi):
    @extend_schema(
        tags=["annotations"],
        parameters=[HistoryInput],
        responses={200: HistoryOutput, 400: BAD_REQUEST, 404: NOT_FOUND},
    )
    def get(self, request, project_id):
        """Your answered items, newest first, each once with your latest answer (keyset pages).

        To change an answer, POST it to annotations/ with the item's id: a new annotation that
        replaces your vote (the earlier one stays).
        """
        params = HistoryInput(data=request.query_params)
        params.is_valid(raise_exception=True)
        size = params.validated_data["page_size"]
        answers = annotation_history(
            project=self.project,
            annotator=request.user,
            before=params.validated_data.get("before"),
            limit=size + 1,
        )
        more = len(answers) > size
        answers = answers[:size]
        return Response(
            {
                "results": [history_entry_data(a) for a in answers],
                "next_before": answers[-1].pk if more else None,
            }
        )
