"""Consensus: recompute a project's final labels by its consensus method, on demand (managers)."""

from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.response import Response

from annotate.api.base import FORBIDDEN, NOT_FOUND, ProjectApi
from annotate.api.permissions import CanManage
from annotate.quality.recompute import project_consensus_request


class ConsensusRequestOutput(serializers.Serializer):
    queued = serializers.BooleanField(help_text="Whether a recompute was queued.")
    detail = serializers.CharField()
    consensus_method = serializers.CharField()
    consensus_computed_at = serializers.DateTimeField(
        allow_null=True,
        help_text="When Dawid–Skene last rewrote the final labels (null: never, or majority).",
    )


class RecomputeApi(ProjectApi):
    role_permissions = {"POST": CanManage}

    @extend_schema(
        tags=["quality"],
        request=None,
        responses={202: ConsensusRequestOutput, 200: ConsensusRequestOutput, 403: FORBIDDEN, 404: NOT_FOUND},
    )
    def post(self, request, project_id):
        """Queue a recompute of the final labels (Dawid–Skene runs in the background); with
        majority vote, which is kept with every annotation, nothing is queued (200)."""
        result = project_consensus_request(project=self.project)
        body = {
            "queued": result.queued,
            "detail": result.detail,
            "consensus_method": self.project.consensus_method,
            "consensus_computed_at": self.project.consensus_computed_at,
        }
        return Response(
            ConsensusRequestOutput(body).data,
            status=status.HTTP_202_ACCEPTED if result.queued else status.HTTP_200_OK,
        )
