"""The reviewer's queue: lease the next item to review, see an item with every answer, decide, release.

Reviewers and managers only (annotators 403, non-members 404). An item is shown with every
annotation side by side, its final value and source, the model's doubt and alternative, the
decision in force and the history. A decision names the decision it saw in force (`supersedes`):
when another came first the answer is 409 with the winner (annotate.api.exceptions), so two
reviewers cannot both win.
"""

from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.exceptions import NotFound
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.response import Response

from annotate import review
from annotate.api import serializers as s
from annotate.api.base import BAD_REQUEST, FORBIDDEN, NOT_FOUND, ProjectApi, found
from annotate.api.parsers import JSONParserNoNul
from annotate.api.permissions import CanReview
from annotate.items import item_list
from annotate.models import Item, Project
from annotate.quality.matching import differing, value_kind

# Ids past a bigint name no row; SQLite's driver cannot even bind them (OverflowError, a 500).
_MAX_ID = 2**63 - 1

REVIEW_CONFLICT = OpenApiResponse(
    s.ReviewConflictOutput,
    description="Another decision came first (`winner`), or the item cannot be decided now (no winner:"
    " not complete, a gold item, an annotation rejected already).",
)


def review_view_data(*, project: Project, item: Item, reviewer, lease: review.ReviewLease | None) -> dict:
    """ReviewItemViewOutput's body: the item, every answer, the decision in force and the history."""
    annotations = list(review.review_item_annotations(item=item))
    history = list(review.review_history(item=item))
    in_force = next((r for r in history if r.pk == item.last_review_id), None)
    body = {
        "lease": None if lease is None else {"expires_at": lease.expires_at},
        "item": item,
        "annotations": annotations,
        "in_force": in_force,
        "history": history,
        "yours": any(a.annotator_id == reviewer.pk for a in annotations),
        "waiting": review.review_queue_count(project=project),
    }
    data = s.ReviewItemViewOutput(body).data
    if project.task_type in (Project.TaskType.IMAGE_BOXES, Project.TaskType.TEXT_SPANS):
        data["differences"] = _differences(annotations)
    return data


def _differences(annotations) -> dict[str, list[int]]:
    """Per annotation shown, the indices of its objects that differ (see the module's docstring):
    compared across each annotator's latest answer not rejected; the other answers mark nothing."""
    latest = {a.annotator_id: a for a in annotations if not a.rejected}
    values = {a.pk: a.value for a in latest.values() if value_kind(a.value) != "choices"}
    found = differing(values) if len(values) > 1 else {pk: [] for pk in values}
    return {str(pk): found.get(pk, []) for pk in (a.pk for a in annotations)}


class _ReviewApi(ProjectApi):
    role_permissions = {"GET": CanReview, "HEAD": CanReview, "POST": CanReview}


def _item_id_checked(item_id: int) -> int:
    if item_id > _MAX_ID:
        raise NotFound(f"item {item_id} is not an item of this project")
    return item_id


class ReviewNextApi(_ReviewApi):
    @extend_schema(
        tags=["review"],
        request=s.ReviewNextInput,
        responses={
            200: s.ReviewItemViewOutput,
            204: OpenApiResponse(description="Nothing waits for review that you may review."),
            400: BAD_REQUEST,
            403: FORBIDDEN,
            404: NOT_FOUND,
        },
    )
    def post(self, request, project_id):
        """Lease the next item to review (or get back one you hold and did not exclude).

        Disagreements first, then what the model doubts, then the rest; never an item you annotated.
        """
        data = s.ReviewNextInput(data=request.data)
        data.is_valid(raise_exception=True)
        exclude = [i for i in data.validated_data["exclude"] if 0 < i <= _MAX_ID]
        lease = review.review_next(project=self.project, reviewer=request.user, exclude_item_ids=exclude)
        if lease is None:
            return Response(status=status.HTTP_204_NO_CONTENT)
        return Response(
            review_view_data(project=self.project, item=lease.item, reviewer=request.user, lease=lease)
        )


class ReviewItemApi(_ReviewApi):
    @extend_schema(tags=["review"], responses={200: s.ReviewItemViewOutput, 403: FORBIDDEN, 404: NOT_FOUND})
    def get(self, request, project_id, item_id):
        """One item as the review page shows it, without leasing it (e.g. to reload it after a 409)."""
        item = found(item_list(project=self.project).filter(pk=_item_id_checked(item_id)).first())
        return Response(review_view_data(project=self.project, item=item, reviewer=request.user, lease=None))


class ReviewDecisionApi(_ReviewApi):
    @extend_schema(
        tags=["review"],
        request=s.ReviewDecisionInput,
        responses={
            201: s.ReviewOutput,
            400: BAD_REQUEST,
            403: OpenApiResponse(s.ErrorOutput, description="Not a reviewer, or you annotated the item."),
            404: NOT_FOUND,
            409: REVIEW_CONFLICT,
        },
    )
    def post(self, request, project_id, item_id):
        """Accept an annotation, correct (your value becomes the final label) or reject one with a reason.

        Send back as `supersedes` the id of the decision in force you saw (null for none); a later
        decision reverses an earlier one, and accepting a rejected annotation takes the reject back.
        A reject stops the annotation counting and sends the item back to the labeling queue.
        """
        data = s.ReviewDecisionInput(data=request.data)
        data.is_valid(raise_exception=True)
        fields = data.validated_data
        decision = review.review_decide(
            project=self.project,
            item_id=_item_id_checked(item_id),
            reviewer=request.user,
            decision=fields["decision"],
            supersedes=fields["supersedes"],
            annotation_id=fields["annotation"],
            value=fields["value"],
            reason=fields["reason"],
        )
        return Response(s.review_data(decision), status=status.HTTP_201_CREATED)


class ReviewReleaseApi(_ReviewApi):
    # The review page sends this with navigator.sendBeacon when it is left, which can only post
    # a form (the CSRF token travels as the csrfmiddlewaretoken field).
    parser_classes = [JSONParserNoNul, FormParser, MultiPartParser]

    @extend_schema(
        tags=["review"],
        request=s.ReviewReleaseInput,
        responses={200: s.ReleaseOutput, 400: BAD_REQUEST, 403: FORBIDDEN, 404: NOT_FOUND},
    )
    def post(self, request, project_id):
        """Give back the review items you hold in this project: all of them (leaving the review
        page), or the one named by `item` (an item you pass)."""
        data = s.ReviewReleaseInput(data=request.data)
        data.is_valid(raise_exception=True)
        released = review.review_release(
            project=self.project, reviewer=request.user, item_id=data.validated_data.get("item")
        )
        return Response(s.ReleaseOutput({"released": released}).data)
