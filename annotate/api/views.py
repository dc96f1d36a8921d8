"""The REST API: each view parses input, calls one service or selector, and renders the result.

Views under /projects/<project_id>/ resolve the requester's membership once (ProjectMemberMixin):
non-members get 404, members without the role get 403. Services raise ValidationError (400)
and QueueError (409); annotate.api.exceptions renders both.
"""

from django.db.models import QuerySet
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.authtoken.serializers import AuthTokenSerializer
from rest_framework.authtoken.views import ObtainAuthToken
from rest_framework.exceptions import NotFound
from rest_framework.parsers import FormParser, JSONParser, MultiPartParser
from rest_framework.response import Response
from rest_framework.views import APIView

from annotate import queue
from annotate.api import serializers as s
from annotate.api.pagination import KeysetPagination
from annotate.api.permissions import CanManage, CanReview, ProjectMemberMixin
from annotate.items import annotation_list, item_create_bulk, item_list
from annotate.models import Annotation, Membership, Project
from annotate.projects import (
    label_create,
    label_delete,
    label_list,
    label_update,
    membership_add,
    membership_list,
    membership_remove,
    membership_update,
    project_create,
    project_delete,
    project_list_for_user,
    project_update,
)
from training.services import proposal_for, training_auto_request

NOT_FOUND = OpenApiResponse(s.ErrorOutput, description="Not a member of the project, or no such object.")
FORBIDDEN = OpenApiResponse(s.ErrorOutput, description="A member whose role may not do this.")
CONFLICT = OpenApiResponse(s.ErrorOutput, description="The queue cannot serve this request.")
BAD_REQUEST = OpenApiResponse(description="Invalid input: {'detail': message} or field -> messages.")


def _paginated(view: APIView, queryset: QuerySet, serializer_class) -> Response:
    paginator = view.pagination_class()
    page = paginator.paginate_queryset(queryset, view.request, view=view)
    return paginator.get_paginated_response(serializer_class(page, many=True).data)


def _found(obj):
    if obj is None:
        raise NotFound()
    return obj


def _next_data(lease: queue.Lease | None) -> dict | None:
    if lease is None:
        return None
    # Shown, not saved: the active model's proposal takes the place of one imported with the item.
    lease.item.proposal = proposal_for(item=lease.item)
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
        proposal_model_version_id=proposal.get("model_version"),
    )
    training_auto_request(project=project)
    return annotation


class Api(APIView):
    parser_classes = [JSONParser]


class ProjectApi(ProjectMemberMixin, Api):
    """A view under /projects/<project_id>/ (404 to non-members, 403 to members lacking the role)."""


# Auth ------------------------------------------------------------------------------------


class TokenObtainApi(ObtainAuthToken):
    @extend_schema(
        tags=["auth"], request=AuthTokenSerializer, responses={200: s.TokenOutput, 400: BAD_REQUEST}
    )
    def post(self, request, *args, **kwargs):
        """Exchange a username and password for an API token."""
        return super().post(request, *args, **kwargs)


# Projects --------------------------------------------------------------------------------


class ProjectListApi(Api):
    pagination_class = KeysetPagination

    @extend_schema(tags=["projects"], responses=s.ProjectOutput(many=True))
    def get(self, request):
        """The projects you belong to, with your role in each."""
        return _paginated(self, project_list_for_user(user=request.user), s.ProjectOutput)

    @extend_schema(
        tags=["projects"],
        request=s.ProjectCreateInput,
        responses={201: s.ProjectDetailOutput, 400: BAD_REQUEST},
    )
    def post(self, request):
        """Create a project with its labels; you become its manager."""
        data = s.ProjectCreateInput(data=request.data)
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
        data = s.ProjectUpdateInput(data=request.data, partial=True)
        data.is_valid(raise_exception=True)
        return self._render(project_update(project=self.project, **data.validated_data))

    @extend_schema(tags=["projects"], responses={204: None, 403: FORBIDDEN, 404: NOT_FOUND})
    def delete(self, request, project_id):
        """Delete a project with its items and annotations (managers)."""
        project_delete(project=self.project)
        return Response(status=status.HTTP_204_NO_CONTENT)


# Labels ----------------------------------------------------------------------------------


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
        return _found(label_list(project=self.project).filter(pk=label_id).first())

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


# Members ---------------------------------------------------------------------------------


class MemberListApi(ProjectApi):
    role_permissions = {"GET": CanReview, "POST": CanManage}
    pagination_class = KeysetPagination

    @extend_schema(
        tags=["members"], responses={200: s.MemberOutput(many=True), 403: FORBIDDEN, 404: NOT_FOUND}
    )
    def get(self, request, project_id):
        """Members with their role and annotation count (reviewers and managers)."""
        return _paginated(self, membership_list(project=self.project), s.MemberOutput)

    @extend_schema(
        tags=["members"],
        request=s.MemberAddInput,
        responses={201: s.MemberOutput, 400: BAD_REQUEST, 403: FORBIDDEN, 404: NOT_FOUND},
    )
    def post(self, request, project_id):
        """Add a user by username (managers); a user who is already a member gets the new role."""
        data = s.MemberAddInput(data=request.data)
        data.is_valid(raise_exception=True)
        membership = membership_add(project=self.project, **data.validated_data)
        membership = membership_list(project=self.project).get(pk=membership.pk)
        return Response(s.MemberOutput(membership).data, status=status.HTTP_201_CREATED)


class MemberDetailApi(ProjectApi):
    role_permissions = {"PATCH": CanManage, "DELETE": CanManage}

    def _membership(self, membership_id: int):
        return _found(membership_list(project=self.project).filter(pk=membership_id).first())

    @extend_schema(
        tags=["members"],
        request=s.MemberUpdateInput,
        responses={200: s.MemberOutput, 400: BAD_REQUEST, 403: FORBIDDEN, 404: NOT_FOUND},
    )
    def patch(self, request, project_id, membership_id):
        """Change a member's role (managers); a project keeps at least one manager."""
        data = s.MemberUpdateInput(data=request.data)
        data.is_valid(raise_exception=True)
        membership = membership_update(membership=self._membership(membership_id), **data.validated_data)
        return Response(s.MemberOutput(membership).data)

    @extend_schema(
        tags=["members"],
        responses={204: None, 400: BAD_REQUEST, 403: FORBIDDEN, 404: NOT_FOUND},
    )
    def delete(self, request, project_id, membership_id):
        """Remove a member (managers); their annotations stay. The last manager cannot be removed."""
        membership_remove(membership=self._membership(membership_id))
        return Response(status=status.HTTP_204_NO_CONTENT)


# Items -----------------------------------------------------------------------------------


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
        return _paginated(self, items, s.ItemOutput)

    @extend_schema(
        tags=["items"],
        request=s.ItemCreateBulkInput,
        responses={201: s.ItemCreateBulkOutput, 400: BAD_REQUEST, 403: FORBIDDEN, 404: NOT_FOUND},
    )
    def post(self, request, project_id):
        """Add text items (managers), all or nothing: a bad row is named by number (from 1) and field."""
        data = s.ItemCreateBulkInput(data=request.data)
        data.is_valid(raise_exception=True)
        created = item_create_bulk(project=self.project, rows=data.validated_data["items"], source="items")
        return Response(
            s.ItemCreateBulkOutput({"created": len(created)}).data, status=status.HTTP_201_CREATED
        )


class ItemDetailApi(ProjectApi):
    @extend_schema(tags=["items"], responses={200: s.ItemOutput, 404: NOT_FOUND})
    def get(self, request, project_id, item_id):
        """One item."""
        item = _found(item_list(project=self.project).filter(pk=item_id).first())
        return Response(s.ItemOutput(item).data)


# Queue -----------------------------------------------------------------------------------


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
        return _paginated(self, annotations, s.AnnotationOutput)

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
    parser_classes = [JSONParser, FormParser, MultiPartParser]

    @extend_schema(tags=["queue"], request=None, responses={200: s.ReleaseOutput, 404: NOT_FOUND})
    def post(self, request, project_id):
        """Give back every item you hold in this project (leaving the labeling page)."""
        released = queue.assignment_release_all(project=self.project, annotator=request.user)
        return Response(s.ReleaseOutput({"released": released}).data)
