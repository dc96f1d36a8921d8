"""The import API: an upload becomes an import job, imported at once when small, else by a worker.

Managers only: non-members get 404, other members 403. It mirrors the browser pages
(annotate.views.project_import and the job views).
"""

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.response import Response

from annotate import importing
from annotate.api import serializers as s
from annotate.api.base import FORBIDDEN, NOT_FOUND, ManagerApi, found
from annotate.models import ImportJob

# Two shapes, so the schema says only "an object": a failed job (ImportJobOutput) or field -> messages.
FAILED_IMPORT = OpenApiResponse(
    OpenApiTypes.OBJECT,
    description="The file was refused and nothing was stored: `error` names the file, line and field."
    " An invalid format or option answers {field: [message]} instead.",
)


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
        job = importing.item_import_start(
            project=self.project,
            files=[(f.name, f) for f in data.validated_data["file"]],
            format=data.validated_data.get("format"),
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
        return Response(
            s.ImportJobOutput(found(importing.import_job_get(project=self.project, job_id=job_id))).data
        )
