"""The leads' dashboards as JSON: one endpoint per chart, and all of them at once.

Managers of the project only (403 for its other members, 404 for everyone else). Every figure
is read from the project's tallies (annotate/dashboards/): a few queries whatever the number of
annotations. An undefined figure (no answers, no shared items) is null, never 0. Model versions
are named here (`model_version_number`), in the web layer: annotate's domain never imports
training.

    GET /api/projects/<id>/dashboards/                      every chart (?charts=progress,gold: some)
    GET /api/projects/<id>/dashboards/<chart>/              one: progress, labels-per-day, seconds,
                                                            agreement, gold, labels, proposals, reviews
"""

from dataclasses import asdict

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers
from rest_framework.exceptions import ValidationError
from rest_framework.response import Response

from annotate.api.base import BAD_REQUEST, FORBIDDEN, NOT_FOUND, ManagerApi
from annotate.dashboards import CHARTS, dashboard_read
from annotate.models import Project
from training.versions import model_version_list

# --- output serializers (one per chart) ----------------------------------------------------------


class ProgressDayOutput(serializers.Serializer):
    day = serializers.DateField()
    completed = serializers.IntegerField(help_text="Items completed that day (less any a reject reopened).")
    cumulative = serializers.IntegerField()


class ProgressOutput(serializers.Serializer):
    total_items = serializers.IntegerField(help_text="The items to label: all but the gold ones.")
    gold_items = serializers.IntegerField()
    completed = serializers.IntegerField()
    days = ProgressDayOutput(many=True, help_text="Every day from the first completion to the last.")


class AnnotatorDaysOutput(serializers.Serializer):
    annotator_id = serializers.IntegerField()
    username = serializers.CharField()
    total = serializers.IntegerField()
    per_day = serializers.ListField(child=serializers.IntegerField(), help_text="Aligned with `days`.")


class LabelsPerDayOutput(serializers.Serializer):
    days = serializers.ListField(child=serializers.DateField())
    annotators = AnnotatorDaysOutput(many=True)


class AnnotatorSecondsOutput(serializers.Serializer):
    annotator_id = serializers.IntegerField()
    username = serializers.CharField()
    annotations = serializers.IntegerField()
    median_seconds = serializers.FloatField(
        allow_null=True, help_text="Approximate: the middle of the histogram bucket holding the median."
    )
    median_low_seconds = serializers.FloatField(allow_null=True)
    median_high_seconds = serializers.FloatField(allow_null=True)


class SecondsOutput(serializers.Serializer):
    buckets_per_doubling = serializers.IntegerField()
    relative_error = serializers.FloatField(help_text="The most a median can be off, as a share of it.")
    annotators = AnnotatorSecondsOutput(many=True)


class AgreementScopeOutput(serializers.Serializer):
    scope = serializers.CharField(allow_blank=True, help_text='"" for the whole value, else a label.')
    items = serializers.IntegerField()
    percent_agreement = serializers.FloatField(allow_null=True)
    krippendorff_alpha = serializers.FloatField(allow_null=True)
    fleiss_kappa = serializers.FloatField(allow_null=True)
    fleiss_m = serializers.IntegerField()
    fleiss_items = serializers.IntegerField()


class AgreementPairOutput(serializers.Serializer):
    annotator_a = serializers.IntegerField()
    annotator_b = serializers.IntegerField()
    username_a = serializers.CharField()
    username_b = serializers.CharField()
    items = serializers.IntegerField()
    agreed = serializers.IntegerField()
    percent_agreement = serializers.FloatField(allow_null=True)
    cohen_kappa = serializers.FloatField(allow_null=True)
    f1 = serializers.FloatField(
        allow_null=True,
        help_text="Boxes and spans: 2 × objects matched with the same label / both annotators' objects"
        " (null for classification).",
    )


class AnnotatorRefOutput(serializers.Serializer):
    annotator_id = serializers.IntegerField()
    username = serializers.CharField()


class AgreementOutput(serializers.Serializer):
    multi_label = serializers.BooleanField()
    overall = AgreementScopeOutput()
    scopes = AgreementScopeOutput(many=True)
    annotators = AnnotatorRefOutput(many=True)
    kappa_matrix = serializers.ListField(
        child=serializers.ListField(child=serializers.FloatField(allow_null=True)),
        help_text="Cohen's kappa, rows and columns in `annotators` order; null on the diagonal and n/a.",
    )
    pairs = AgreementPairOutput(many=True)


class AnnotatorGoldOutput(serializers.Serializer):
    annotator_id = serializers.IntegerField()
    username = serializers.CharField()
    answers = serializers.IntegerField()
    correct = serializers.IntegerField()
    accuracy = serializers.FloatField(allow_null=True)
    low = serializers.FloatField(allow_null=True, help_text="Wilson score interval, 95%.")
    high = serializers.FloatField(allow_null=True)
    paused = serializers.BooleanField()


class GoldOutput(serializers.Serializer):
    pause_below = serializers.FloatField(allow_null=True)
    min_answers_to_pause = serializers.IntegerField()
    annotators = AnnotatorGoldOutput(many=True)


class LabelCountOutput(serializers.Serializer):
    label = serializers.CharField()
    items = serializers.IntegerField()
    share = serializers.FloatField(allow_null=True)


class SourceCountOutput(serializers.Serializer):
    source = serializers.CharField()
    name = serializers.CharField()
    items = serializers.IntegerField()
    share = serializers.FloatField(allow_null=True)


class LabelsOutput(serializers.Serializer):
    total_items = serializers.IntegerField()
    labels = LabelCountOutput(many=True)
    sources = SourceCountOutput(many=True)
    counts = serializers.CharField(
        help_text='What `labels` counts: "items", or "boxes" / "spans" (each object of a final label;'
        " its share is of all of them)."
    )


class VersionAcceptanceOutput(serializers.Serializer):
    model_version_id = serializers.IntegerField()
    model_version_number = serializers.IntegerField(
        allow_null=True, help_text="null: a version since deleted."
    )
    shown = serializers.IntegerField()
    accepted = serializers.IntegerField()
    rate = serializers.FloatField(allow_null=True)


class ProposalsOutput(serializers.Serializer):
    versions = VersionAcceptanceOutput(many=True)


class AnnotatorReviewsOutput(serializers.Serializer):
    annotator_id = serializers.IntegerField()
    username = serializers.CharField()
    accepted = serializers.IntegerField()
    corrected = serializers.IntegerField()
    rejected = serializers.IntegerField()
    reviewed = serializers.IntegerField()
    accepted_share = serializers.FloatField(allow_null=True)


class ReviewsOutput(serializers.Serializer):
    annotators = AnnotatorReviewsOutput(many=True)


OUTPUTS: dict[str, type[serializers.Serializer]] = {
    "progress": ProgressOutput,
    "labels_per_day": LabelsPerDayOutput,
    "seconds": SecondsOutput,
    "agreement": AgreementOutput,
    "gold": GoldOutput,
    "labels": LabelsOutput,
    "proposals": ProposalsOutput,
    "reviews": ReviewsOutput,
}

DESCRIPTIONS = {
    "progress": "Items completed per day and in all, against the number of items.",
    "labels_per_day": "Annotations per annotator per day (every stored annotation, on its day).",
    "seconds": "Median active seconds per item per annotator, approximate: read from a histogram with "
    "4 buckets per doubling, so within about 9% of the true median.",
    "agreement": "Cohen's kappa and percent agreement per pair of annotators, Krippendorff's alpha and "
    "Fleiss' kappa per scope (the whole value; each label in multi-label projects).",
    "gold": "Each annotator's gold accuracy with its 95% Wilson interval.",
    "labels": "Items per final label and per source of the final label.",
    "proposals": "Proposals shown and accepted as they were, per model version.",
    "reviews": "Review outcomes (accepted, corrected, rejected) per annotator.",
}


SUMMARIES = {
    "progress": "Progress over time",
    "labels_per_day": "Labels per annotator per day",
    "seconds": "Median seconds per item per annotator (approximate)",
    "agreement": "Agreement between annotators",
    "gold": "Gold accuracy per annotator",
    "labels": "Label distribution",
    "proposals": "Proposal acceptance per model version",
    "reviews": "Review outcomes per annotator",
}


class DashboardsOutput(serializers.Serializer):
    progress = ProgressOutput(required=False)
    labels_per_day = LabelsPerDayOutput(required=False)
    seconds = SecondsOutput(required=False)
    agreement = AgreementOutput(required=False)
    gold = GoldOutput(required=False)
    labels = LabelsOutput(required=False)
    proposals = ProposalsOutput(required=False)
    reviews = ReviewsOutput(required=False)


# --- views ----------------------------------------------------------------------------------------


def _figures(project: Project, charts: list[str]) -> dict[str, dict]:
    """The charts' figures as plain data, the proposals' versions with their numbers."""
    found = {name: asdict(data) for name, data in dashboard_read(project=project, charts=charts).items()}
    if "proposals" in found:
        numbers = dict(model_version_list(project=project).values_list("id", "number"))
        for version in found["proposals"]["versions"]:
            version["model_version_number"] = numbers.get(version["model_version_id"])
    return found


def _charts_param(raw: str | None) -> list[str]:
    if raw is None or not raw.strip():
        return list(CHARTS)
    given = [name.strip() for name in raw.split(",") if name.strip()]
    names = [name.replace("-", "_") for name in given]
    unknown = [name for name, chart in zip(given, names, strict=True) if chart not in CHARTS]
    if unknown:
        known = ", ".join(c.replace("_", "-") for c in CHARTS)
        raise ValidationError({"charts": [f"no chart {unknown[0]!r}; the charts are: {known}"]})
    return names


class DashboardsApi(ManagerApi):
    @extend_schema(
        tags=["dashboards"],
        parameters=[
            OpenApiParameter(
                "charts",
                OpenApiTypes.STR,
                description="Comma-separated chart names (default: all): "
                + ", ".join(c.replace("_", "-") for c in CHARTS),
            )
        ],
        responses={200: DashboardsOutput, 400: BAD_REQUEST, 403: FORBIDDEN, 404: NOT_FOUND},
    )
    def get(self, request, project_id):
        """Every chart of the project's dashboards (managers), read from counts kept up to date."""
        charts = _charts_param(request.query_params.get("charts"))
        return Response(DashboardsOutput(_figures(self.project, charts)).data)


def _chart_api(chart: str) -> type[ManagerApi]:
    output = OUTPUTS[chart]

    class ChartApi(ManagerApi):
        @extend_schema(
            tags=["dashboards"],
            summary=SUMMARIES[chart],
            description=DESCRIPTIONS[chart] + " Managers of the project only.",
            responses={200: output, 403: FORBIDDEN, 404: NOT_FOUND},
        )
        def get(self, request, project_id):
            return Response(output(_figures(self.project, [chart])[chart]).data)

    ChartApi.__name__ = ChartApi.__qualname__ = "".join(p.title() for p in chart.split("_")) + "DashboardApi"
    ChartApi.chart = chart
    return ChartApi


# (URL segment, view) of each chart's endpoint, in the order of annotate.dashboards.CHARTS.
VIEWS = tuple((chart.replace("_", "-"), _chart_api(chart)) for chart in CHARTS)
