"""Notes on an item: any member of the project writes a comment, or flags the item for its leads."""

from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.exceptions import NotFound
from rest_framework.response import Response

from annotate.api.base import BAD_REQUEST, NOT_FOUND, ProjectApi
from annotate.models import ItemNote
from annotate.notes import NOTE_MAX_LENGTH, NoteTargetMissing, item_note_add


class NoteInput(serializers.Serializer):
    # Length and emptiness are the service's to check, so the page and the API say the same.
    text = serializers.CharField(
        allow_blank=True,
        trim_whitespace=False,
        help_text=f"What the lead should know (at most {NOTE_MAX_LENGTH}).",
    )
    flagged = serializers.BooleanField(default=False, help_text="Flag the item for the project's leads.")


class NoteOutput(serializers.ModelSerializer):
    item = serializers.IntegerField(source="item_id", read_only=True)
    author = serializers.CharField(source="author.username", read_only=True)

    class Meta:
        model = ItemNote
        fields = ["id", "item", "author", "text", "flagged", "created_at", "resolved_at"]


class ItemNoteListApi(ProjectApi):
    @extend_schema(
        tags=["items"],
        request=NoteInput,
        responses={201: NoteOutput, 400: BAD_REQUEST, 404: NOT_FOUND},
    )
    def post(self, request, project_id, item_id):
        """Comment on an item of the project, or flag it for the leads (`flagged`)."""
        data = NoteInput(data=request.data)
        data.is_valid(raise_exception=True)
        try:
            note = item_note_add(
                project=self.project,
                item_id=item_id,
                author=request.user,
                text=data.validated_data["text"],
                flagged=data.validated_data["flagged"],
            )
        except NoteTargetMissing as exc:
            raise NotFound(str(exc)) from None
        return Response(NoteOutput(note).data, status=status.HTTP_201_CREATED)
