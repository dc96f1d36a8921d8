"""The annotator's queue: next item, submit, submit-and-next, skip, release, and their annotations."""

from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.response import Response

from annotate import queue
from annotate.api import serializers as s
from annotate.api.base import BAD_REQUEST, CONFLICT, NOT_FOUND, ProjectApi, paginated
from annotate.api.pagination import KeysetPagination
from annotate.api.parsers import JSONParserNoNul
from annotate.items import annotation_list
from annotate.models import Annotation, Membership
from training.proposals import proposal_for


def _next_data(lease: queue.Lease | None) -> dict | None:
    if lease is None:
        return None
    # Shown, not saved: the active model's proposal takes the place of one imported with the item.
    lease.item.proposal = proposal_for(item=lease.item, assignment=lease.assignment)
    return s.next_data(lease.assignment, lease.item)


def _submit(request, membership: Membership, data: dict) -> Annotation:
    proposal = data["proposal"] or {}
    project = membership.project
    annotation = queue.annotation_submit(
        project=project,
        item_id=data["item"],
        annotator=request.user,
        membership=membership,
        value=data["value"],
        active_ms=data["active_ms"],
        proposal_value=proposal.get("value"),
        proposal_model_version_id=proposal.get("model_version_id"),
        idempotency_key=data["idempotency_key"],
    )
    return annotation


class NextApi(ProjectApi):
    @extend_schema(
        tags=["queue"],
        request=s.NextInput,
        responses={
            200: s.NextOutput,
            204: OpenApiResponse(description="Nothing left for you in this project."),
            404: NOT_FOUND,
            409: CONFLICT,
        },
    )
    def post(self, request, project_id):
        """Lease the next item (or get back one you hold and did not exclude)."""
        data = s.NextInput(data=request.data)
        data.is_valid(raise_exception=True)
        lease = queue.assignment_next(
            project=self.project,
            annotator=request.user,
            membership=self.membership,
            exclude_item_ids=data.validated_data["exclude"],
        )
        if lease is None:
            return Response(status=status.HTTP_204_NO_CONTENT)
        return Response(_next_data(lease))


class AnnotationListApi(ProjectApi):
    pagination_class = KeysetPagination

    @extend_schema(
        tags=["annotations"],
        parameters=[s.AnnotationFilterInput],
        responses={200: s.AnnotationOutput(many=True), 404: NOT_FOUND},
    )
    def get(self, request, project_id):
        """Reviewers and managers see every annotation of the project; annotators their own."""
        filters = s.AnnotationFilterInput(data=request.query_params)
        filters.is_valid(raise_exception=True)
        annotations = annotation_list(
            project=self.project,
            annotator_id=None if self.membership.can_review else request.user.pk,
            item_id=filters.validated_data.get("item"),
        )
        return paginated(self, annotations, s.AnnotationOutput)

    @extend_schema(
        tags=["annotations"],
        request=s.AnnotationInput,
        responses={201: s.AnnotationOutput, 400: BAD_REQUEST, 404: NOT_FOUND, 409: CONFLICT},
    )
    def post(self, request, project_id):
        """Submit an annotation of an item leased to you (409 if it never was)."""
        data = s.AnnotationInput(data=request.data)
        data.is_valid(raise_exception=True)
        annotation = _submit(request, self.membership, data.validated_data)
        return Response(s.annotation_data(annotation), status=status.HTTP_201_CREATED)


class SubmitAndNextApi(ProjectApi):
    @extend_schema(
        tags=["queue"],
        request=s.SubmitAndNextInput,
        responses={201: s.SubmitAndNextOutput, 400: BAD_REQUEST, 404: NOT_FOUND, 409: CONFLICT},
    )
    def post(self, request, project_id):
        """The labeling page's one call: store the annotation, then lease the next item.

        `next` is null when the queue is empty; when the lease limit stops it, `detail` says why.
        """
        data = s.SubmitAndNextInput(data=request.data)
        data.is_valid(raise_exception=True)
        annotation = _submit(request, self.membership, data.validated_data)
        body = {"annotation": s.annotation_data(annotation), "next": None}
        try:
            lease = queue.assignment_next(
                project=self.project,
                annotator=request.user,
                membership=self.membership,
                exclude_item_ids=data.validated_data["exclude"],
            )
        except queue.LeaseLimitReached as exc:
            # The annotation is stored already: report it, and why no next item came with it.
            body["detail"] = str(exc)
        else:
            body["next"] = _next_data(lease)
        return Response(body, status=status.HTTP_201_CREATED)


class SkipApi(ProjectApi):
    @extend_schema(
        tags=["queue"],
        request=s.SkipInput,
        responses={201: s.SkipOutput, 400: BAD_REQUEST, 404: NOT_FOUND, 409: CONFLICT},
    )
    def post(self, request, project_id):
        """Skip an item leased to you; it goes back to the queue for others."""
        data = s.SkipInput(data=request.data)
        data.is_valid(raise_exception=True)
        skip = queue.item_skip(
            project=self.project,
            item_id=data.validated_data["item"],
            annotator=request.user,
            membership=self.membership,
        )
        return Response(s.SkipOutput(skip).data, status=status.HTTP_201_CREATED)


class ReleaseApi(ProjectApi):
    # The labeling page sends this with navigator.sendBeacon when it is left, which can only
    # post a form (the CSRF token travels as the csrfmiddlewaretoken field).
    parser_classes = [JSONParserNoNul, FormParser, MultiPartParser]

    @extend_schema(tags=["queue"], request=None, responses={200: s.ReleaseOutput, 404: NOT_FOUND})
    def post(self, request, project_id):
        """Give back every item you hold in this project (leaving the labeling page)."""
        released = queue.assignment_release_all(project=self.project, annotator=request.user)
        return Response(s.ReleaseOutput({"released": released}).data)
