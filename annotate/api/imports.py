"""The import and export API: uploads that become import jobs, streamed exports and export jobs.

Managers only: non-members get 404, other members 403. The behaviour mirrors the browser pages
(annotate.views.project_import, project_export and the job views): a small upload is imported
at once and a big one queued, and an export streams unless the project is over
LABELLOOP_EXPORT_STREAM_MAX_ITEMS items, when it becomes a background job.
"""

from django.conf import settings
from django.http import FileResponse, StreamingHttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.exceptions import NotFound
from rest_framework.negotiation import DefaultContentNegotiation
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.renderers import JSONRenderer
from rest_framework.response import Response

from annotate import exporters, importers
from annotate.api import serializers as s
from annotate.api.permissions import CanManage
from annotate.api.views import BAD_REQUEST, FORBIDDEN, NOT_FOUND, ProjectApi
from annotate.models import ExportJob, ImportJob

FAILED_IMPORT = OpenApiResponse(
    s.ImportJobOutput,
    description="The file was refused and nothing was stored: `error` names the file, line and field."
    " Invalid form fields answer {field: [messages]} instead.",
)
EXPORT_FILE = OpenApiResponse(OpenApiTypes.STR, description="The export, as an attachment.")
EXPORT_FILE_RESPONSES = {
    (200, content_type): EXPORT_FILE for content_type in exporters.CONTENT_TYPES.values()
}


def _location(code: int) -> OpenApiParameter:
    return OpenApiParameter(
        "Location",
        OpenApiTypes.STR,
        location=OpenApiParameter.HEADER,
        response=[code],
        description="The job's URL.",
    )


class _FileNegotiation(DefaultContentNegotiation):
    """For views whose success is a file and whose errors are JSON.

    `?format=` names the export format here, not a renderer (DRF's URL_FORMAT_OVERRIDE would
    answer 404 to ?format=csv), and an Accept header naming the file's type (text/csv) must
    not turn the request into a 406.
    """

    def select_renderer(self, request, renderers, format_suffix=None):
        renderer = renderers[0]
        return renderer, renderer.media_type


class ManagerApi(ProjectApi):
    """A project-scoped view for managers only. HEAD is listed too: it runs the GET handler, and
    ProjectMemberMixin looks the method up as sent."""

    role_permissions = {"GET": CanManage, "HEAD": CanManage, "POST": CanManage}


def _job(model, project, job_id: int):
    job = model.objects.filter(project=project, pk=job_id).first()
    if job is None:
        raise NotFound()
    return job


def _export_job_response(job: ExportJob, code: int) -> Response:
    body = s.ExportJobOutput(job).data
    return Response(body, status=code, headers={"Location": body["url"]})


# Import ----------------------------------------------------------------------------------


class ImportListApi(ManagerApi):
    parser_classes = [MultiPartParser, FormParser]

    @extend_schema(
        tags=["imports"],
        request={"multipart/form-data": s.ImportInput},
        responses={201: s.ImportJobOutput, 400: FAILED_IMPORT, 403: FORBIDDEN, 404: NOT_FOUND},
    )
    def post(self, request, project_id):
        """Import items from an upload (managers), all or nothing.

        Up to the synchronous limit the job comes back finished (`succeeded`); a bigger file
        comes back `queued`: poll `url`. CSV, JSON and JSON Lines take the column options;
        images come as several `file` parts or one zip.
        """
        data = s.ImportInput(data=request.data)
        data.is_valid(raise_exception=True)
        files, fmt = data.validated_data["file"], data.validated_data["format"]
        job = importers.item_import_start(
            project=self.project,
            uploaded_file=[(f.name, f) for f in files] if fmt == "images" else files[0],
            filename=files[0].name,
            format=fmt,
            options=data.options(),
            created_by=request.user,
        )
        code = (
            status.HTTP_400_BAD_REQUEST if job.status == ImportJob.Status.FAILED else status.HTTP_201_CREATED
        )
        return Response(s.ImportJobOutput(job).data, status=code)


class ImportDetailApi(ManagerApi):
    @extend_schema(
        tags=["imports"],
        responses={200: s.ImportJobOutput, 403: FORBIDDEN, 404: NOT_FOUND},
    )
    def get(self, request, project_id, job_id):
        """An import job: its status and progress, and on failure the error (managers)."""
        return Response(s.ImportJobOutput(_job(ImportJob, self.project, job_id)).data)


# Export ----------------------------------------------------------------------------------


class ExportApi(ManagerApi):
    content_negotiation_class = _FileNegotiation
    renderer_classes = [JSONRenderer]

    @extend_schema(
        tags=["exports"],
        parameters=[s.ExportInput, _location(303)],
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
        job instead (303 to the job).
        """
        query = s.ExportInput(data=request.query_params)
        query.is_valid(raise_exception=True)
        fmt, labeled_only = query.validated_data["format"], query.validated_data["labeled_only"]
        if self.project.items.count() > settings.LABELLOOP_EXPORT_STREAM_MAX_ITEMS:
            job = exporters.item_export_start(
                project=self.project, format=fmt, labeled_only=labeled_only, created_by=request.user
            )
            return _export_job_response(job, status.HTTP_303_SEE_OTHER)
        response = StreamingHttpResponse(
            exporters.export_stream(project=self.project, format=fmt, labeled_only=labeled_only),
            content_type=f"{exporters.CONTENT_TYPES[fmt]}; charset=utf-8",
        )
        filename = exporters.export_filename(self.project, fmt)
        response["Content-Disposition"] = f'attachment; filename="{filename}"'
        return response


class ExportListApi(ManagerApi):
    @extend_schema(
        tags=["exports"],
        request=s.ExportInput,
        parameters=[_location(202)],
        responses={202: s.ExportJobOutput, 400: BAD_REQUEST, 403: FORBIDDEN, 404: NOT_FOUND},
    )
    def post(self, request, project_id):
        """Start a background export to a file (managers); poll `url`, then fetch `download_url`."""
        data = s.ExportInput(data=request.data)
        data.is_valid(raise_exception=True)
        job = exporters.item_export_start(
            project=self.project, created_by=request.user, **data.validated_data
        )
        return _export_job_response(job, status.HTTP_202_ACCEPTED)


class ExportDetailApi(ManagerApi):
    @extend_schema(
        tags=["exports"],
        responses={200: s.ExportJobOutput, 403: FORBIDDEN, 404: NOT_FOUND},
    )
    def get(self, request, project_id, job_id):
        """An export job: its status, progress and, once it has succeeded, `download_url` (managers)."""
        return Response(s.ExportJobOutput(_job(ExportJob, self.project, job_id)).data)


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
        job = _job(ExportJob, self.project, job_id)
        if job.status != ExportJob.Status.SUCCEEDED or not job.file:
            raise NotFound("The export has not succeeded (yet).")
        return FileResponse(
            job.file.open("rb"),
            as_attachment=True,
            filename=exporters.export_filename(self.project, job.format),
            content_type=f"{exporters.CONTENT_TYPES[job.format]}; charset=utf-8",
        )
