"""Training through the API: request a run (coalesced), follow and cancel it, list model versions,
download one.

The API is the web layer, so it calls into training's services; annotate's domain never does.
"""

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.response import Response

from annotate.api.base import FORBIDDEN, NOT_FOUND, ManagerApi, ProjectApi, found
from annotate.api.permissions import CanManage, CanReview
from training.api.serializers import ModelVersionOutput, TrainingRunOutput
from training.download import model_download_response
from training.models import ModelVersion
from training.runs import training_run_cancel, training_run_list, training_run_request
from training.versions import NoModelForTask, model_version_list_with_acceptance


class TrainingRunListApi(ProjectApi):
    role_permissions = {"GET": CanReview, "POST": CanManage}

    @extend_schema(
        tags=["training"], responses={200: TrainingRunOutput(many=True), 403: FORBIDDEN, 404: NOT_FOUND}
    )
    def get(self, request, project_id):
        """The project's training runs, newest first (the last 50)."""
        return Response(TrainingRunOutput(training_run_list(project=self.project)[:50], many=True).data)

    @extend_schema(
        tags=["training"],
        request=None,
        responses={
            201: OpenApiResponse(TrainingRunOutput, description="A run was queued."),
            200: OpenApiResponse(
                TrainingRunOutput, description="A run was already open: the request joins it."
            ),
            403: FORBIDDEN,
            404: NOT_FOUND,
            409: OpenApiResponse(description="No model trains this project's task type (boxes)."),
        },
    )
    def post(self, request, project_id):
        """Retrain now (managers). A second request while a run is queued or running joins that run.
        A boxes project is refused (409): no box model yet."""
        try:
            run, created = training_run_request(
                project=self.project, trigger="api", requested_by=request.user
            )
        except NoModelForTask as exc:
            return Response({"detail": str(exc)}, status=status.HTTP_409_CONFLICT)
        run.coalesced = not created
        return Response(
            TrainingRunOutput(run).data, status=status.HTTP_201_CREATED if created else status.HTTP_200_OK
        )


class TrainingRunDetailApi(ProjectApi):
    role_permissions = {"GET": CanReview}

    @extend_schema(tags=["training"], responses={200: TrainingRunOutput, 403: FORBIDDEN, 404: NOT_FOUND})
    def get(self, request, project_id, run_id):
        """One run, with its progress while it runs."""
        return Response(
            TrainingRunOutput(found(training_run_list(project=self.project).filter(pk=run_id).first())).data
        )


class TrainingRunCancelApi(ProjectApi):
    role_permissions = {"POST": CanManage}

    @extend_schema(
        tags=["training"], request=None, responses={200: TrainingRunOutput, 403: FORBIDDEN, 404: NOT_FOUND}
    )
    def post(self, request, project_id, run_id):
        """Cancel a queued run, or stop a running one at its next step (managers)."""
        run = found(training_run_list(project=self.project).filter(pk=run_id).first())
        return Response(TrainingRunOutput(training_run_cancel(run=run)).data)


class ModelVersionListApi(ProjectApi):
    role_permissions = {"GET": CanReview}

    @extend_schema(
        tags=["training"], responses={200: ModelVersionOutput(many=True), 403: FORBIDDEN, 404: NOT_FOUND}
    )
    def get(self, request, project_id):
        """The project's model versions with their metrics and proposal acceptance, newest first."""
        versions = model_version_list_with_acceptance(project=self.project, limit=50)
        return Response(ModelVersionOutput(versions, many=True).data)


class ModelVersionDownloadApi(ManagerApi):
    @extend_schema(
        tags=["training"],
        responses={
            (200, "application/zip"): OpenApiResponse(
                OpenApiTypes.BINARY,
                description="The version as a zip: its files, download.json and the loader "
                "(python -m labelloop_model); see the README's 'Using a model outside the studio'.",
            ),
            403: FORBIDDEN,
            404: NOT_FOUND,
        },
    )
    def get(self, request, project_id, number):
        """Download model version `number` of the project (managers only)."""
        version = found(ModelVersion.objects.filter(project=self.project, number=number).first())
        return model_download_response(version=version)
