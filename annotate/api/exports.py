"""The export API: a streamed export, or a background export job for a big project, and its file.

Managers only. exporting.export_request decides, as for annotate.views.project_export: an export
streams unless the project is over LABELLOOP_EXPORT_STREAM_MAX_ITEMS items, when it becomes a
background job. In image projects, each record's `image_url` is the studio's absolute URL of the
image, which answers only to a logged-in member of the project (session or token).
"""

from django.http import FileResponse, StreamingHttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.exceptions import NotFound
from rest_framework.negotiation import DefaultContentNegotiation
from rest_framework.renderers import JSONRenderer
from rest_framework.response import Response

from annotate import exporting
from annotate.api import serializers as s
from annotate.api.base import BAD_REQUEST, FORBIDDEN, NOT_FOUND, ManagerApi, found, location_header
from annotate.models import ExportJob

# The export as an attachment: a JSON document (JSON, COCO) is any JSON value, every other format
# a file of its own type.
EXPORT_FILE_RESPONSES = {
    (200, content_type): OpenApiResponse(
        OpenApiTypes.ANY if content_type == "application/json" else OpenApiTypes.STR,
        description="The export, as an attachment.",
    )
    for content_type in exporting.CONTENT_TYPES.values()
}


class _FileNegotiation(DefaultContentNegotiation):
    """For views whose success is a file and whose errors are JSON.

    `?format=` names the export format here, not a renderer (DRF's URL_FORMAT_OVERRIDE would
    answer 404 to ?format=csv), and an Accept header naming the file's type (text/csv) must
    not turn the request into a 406.
    """

    def select_renderer(self, request, renderers, format_suffix=None):
        renderer = renderers[0]
        return renderer, renderer.media_type


def _content_type(content_type: str) -> str:
    """With the charset, except for a zip (YOLO), which is bytes."""
    return content_type if content_type == "application/zip" else f"{content_type}; charset=utf-8"


def _export_job_response(job: ExportJob, code: int) -> Response:
    body = s.ExportJobOutput(job).data
    return Response(body, status=code, headers={"Location": body["url"]})


class ExportApi(ManagerApi):
    content_negotiation_class = _FileNegotiation
    renderer_classes = [JSONRenderer]

    @extend_schema(
        tags=["exports"],
        parameters=[s.ExportInput, location_header(303)],
        responses={
            **EXPORT_FILE_RESPONSES,
            303: OpenApiResponse(
                s.ExportJobOutput,
                description="Too many items to stream: an export job was started; follow Location.",
            ),
            400: BAD_REQUEST,
            403: FORBIDDEN,
            404: NOT_FOUND,
        },
    )
    def get(self, request, project_id):
        """Download the project's items with their annotations and final labels (managers).

        Streamed as one consistent snapshot; a project over the stream limit gets a background
        job instead (303 to the job). In an image project, `image_url` is the studio's URL of
        the image: fetching it needs a logged-in member of the project (session or token).
        """
        query = s.ExportInput(data=request.query_params)
        query.is_valid(raise_exception=True)
        answer = exporting.export_request(
            project=self.project,
            requested_by=request.user,
            base_url=request.build_absolute_uri("/"),
            **query.validated_data,
        )
        if answer.job is not None:
            return _export_job_response(answer.job, status.HTTP_303_SEE_OTHER)
        response = StreamingHttpResponse(answer.chunks, content_type=_content_type(answer.content_type))
        response["Content-Disposition"] = f'attachment; filename="{answer.filename}"'
        return response


class ExportListApi(ManagerApi):
    @extend_schema(
        tags=["exports"],
        request=s.ExportInput,
        parameters=[location_header(202)],
        responses={202: s.ExportJobOutput, 400: BAD_REQUEST, 403: FORBIDDEN, 404: NOT_FOUND},
    )
    def post(self, request, project_id):
        """Start a background export to a file (managers); poll `url`, then fetch `download_url`."""
        data = s.ExportInput(data=request.data)
        data.is_valid(raise_exception=True)
        answer = exporting.export_request(
            project=self.project,
            requested_by=request.user,
            background=True,
            base_url=request.build_absolute_uri("/"),
            **data.validated_data,
        )
        return _export_job_response(answer.job, status.HTTP_202_ACCEPTED)


class ExportDetailApi(ManagerApi):
    @extend_schema(
        tags=["exports"],
        responses={200: s.ExportJobOutput, 403: FORBIDDEN, 404: NOT_FOUND},
    )
    def get(self, request, project_id, job_id):
        """An export job: its status, progress and, once it has succeeded, `download_url` (managers)."""
        return Response(
            s.ExportJobOutput(found(exporting.export_job_get(project=self.project, job_id=job_id))).data
        )


class ExportDownloadApi(ManagerApi):
    content_negotiation_class = _FileNegotiation
    renderer_classes = [JSONRenderer]

    @extend_schema(
        tags=["exports"],
        responses={
            **EXPORT_FILE_RESPONSES,
            403: FORBIDDEN,
            404: OpenApiResponse(s.ErrorOutput, description="No such job, or it has not succeeded (yet)."),
        },
    )
    def get(self, request, project_id, job_id):
        """The file a succeeded export job wrote (managers); 404 until then."""
        job = found(exporting.export_job_get(project=self.project, job_id=job_id))
        if job.status != ExportJob.Status.SUCCEEDED or not job.file:
            raise NotFound("The export has not succeeded (yet).")
        return FileResponse(
            job.file.open("rb"),
            as_attachment=True,
            filename=exporting.export_filename(self.project, job.format),
            content_type=_content_type(exporting.CONTENT_TYPES[job.format]),
        )
