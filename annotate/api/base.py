"""What every API view shares: the base views, the documented error responses, pagination and 404.

Views under /projects/<project_id>/ resolve the requester's membership once (ProjectMemberMixin):
non-members get 404, members without the role get 403. Services raise ValidationError (400)
and QueueError (409); annotate.api.exceptions renders both. Each resource has its module
(auth, projects, labels, members, items, queue, imports, exports); each view parses input, calls
one service or selector, and renders the result.
"""

from django.db.models import QuerySet
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse
from rest_framework.exceptions import NotFound
from rest_framework.response import Response
from rest_framework.views import APIView

from annotate.api import serializers as s
from annotate.api.parsers import JSONParserNoNul
from annotate.api.permissions import CanManage, ProjectMemberMixin

NOT_FOUND = OpenApiResponse(s.ErrorOutput, description="Not a member of the project, or no such object.")
FORBIDDEN = OpenApiResponse(s.ErrorOutput, description="A member whose role may not do this.")
CONFLICT = OpenApiResponse(s.ErrorOutput, description="The queue cannot serve this request.")
BAD_REQUEST = OpenApiResponse(description="Invalid input: {'detail': message} or field -> messages.")


def paginated(view: APIView, queryset: QuerySet, serializer_class) -> Response:
    paginator = view.pagination_class()
    page = paginator.paginate_queryset(queryset, view.request, view=view)
    return paginator.get_paginated_response(serializer_class(page, many=True).data)


def found(obj):
    if obj is None:
        raise NotFound()
    return obj


class Api(APIView):
    parser_classes = [JSONParserNoNul]


class ProjectApi(ProjectMemberMixin, Api):
    """A view under /projects/<project_id>/ (404 to non-members, 403 to members lacking the role)."""


class ManagerApi(ProjectApi):
    """A project-scoped view for managers only. HEAD is listed too: it runs the GET handler, and
    ProjectMemberMixin looks the method up as sent."""

    role_permissions = {"GET": CanManage, "HEAD": CanManage, "POST": CanManage}


def location_header(code: int) -> OpenApiParameter:
    """The Location header a response with `code` carries: the job's URL."""
    return OpenApiParameter(
        "Location",
        OpenApiTypes.STR,
        location=OpenApiParameter.HEADER,
        response=[code],
        description="The job's URL.",
    )
