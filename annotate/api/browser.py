"""The item browser's API (managers only): the filtered, keyset-paginated item list, one item
with its annotations, reviews and proposal, and the actions on a selection.

The same services as the page (annotate/browser/) with the page's query parameters. The
serializers live here, beside the one resource they describe.
"""

from django.urls import reverse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_field
from rest_framework import serializers, status
from rest_framework.response import Response
from rest_framework.utils.urls import replace_query_param

from annotate import browser, exporting
from annotate.api.base import BAD_REQUEST, FORBIDDEN, NOT_FOUND, ManagerApi, found
from annotate.api.serializers import ExportJobOutput
from annotate.models import FinalSource, PickKind, ReviewState
from annotate.views.browser import browser_proposals, item_proposal

# Serializers -----------------------------------------------------------------------------


class BrowserProposalOutput(serializers.Serializer):
    value = serializers.JSONField(help_text='{"choices": [...]}')
    score = serializers.FloatField(allow_null=True, help_text="The model's confidence, 0–1.")
    model_version_id = serializers.IntegerField(allow_null=True, required=False)
    model_version_number = serializers.IntegerField(allow_null=True, required=False)


class BrowserItemOutput(serializers.Serializer):
    id = serializers.IntegerField()
    external_id = serializers.CharField()
    text = serializers.CharField()
    image_url = serializers.SerializerMethodField()
    final_value = serializers.JSONField(allow_null=True, help_text='{"choices": [...]}, or null')
    final_source = serializers.CharField(help_text=", ".join(FinalSource.values))
    disagreement = serializers.BooleanField()
    gold = serializers.SerializerMethodField()
    suspicion = serializers.FloatField(
        allow_null=True, help_text="How much the model doubts the final label."
    )
    suspect_value = serializers.JSONField(
        allow_null=True, help_text="The model's alternative, if suspicious."
    )
    annotation_count = serializers.IntegerField()
    is_complete = serializers.BooleanField()
    review_state = serializers.CharField(help_text=", ".join(ReviewState.values))
    proposal = serializers.SerializerMethodField()
    created_at = serializers.DateTimeField()
    url = serializers.SerializerMethodField()

    def get_image_url(self, item) -> str | None:
        return reverse("annotate:item-image", args=[item.project_id, item.pk]) if item.image else None

    def get_gold(self, item) -> bool:
        return item.pick_kind == PickKind.GOLD

    @extend_schema_field(BrowserProposalOutput(allow_null=True))
    def get_proposal(self, item) -> dict | None:
        """The active model's proposal (null without a model, or none for this item)."""
        if getattr(item, "proposal_value", None) is None:
            return None
        return {"value": item.proposal_value, "score": item.proposal_score}

    def get_url(self, item) -> str:
        """This item with its annotations and reviews."""
        return reverse("api:browser-item", kwargs={"project_id": item.project_id, "item_id": item.pk})


class BrowserPageOutput(serializers.Serializer):
    count = serializers.IntegerField(
        allow_null=True, help_text="Items that pass the filters, when asked with count=true; else null."
    )
    next_cursor = serializers.CharField(allow_null=True, help_text="Send as `cursor` for the next page.")
    next = serializers.URLField(allow_null=True, help_text="The next page's URL; null on the last page.")
    results = BrowserItemOutput(many=True)


class BrowserAnnotationOutput(serializers.Serializer):
    id = serializers.IntegerField()
    annotator = serializers.CharField(source="annotator.username")
    annotator_id = serializers.IntegerField()
    value = serializers.JSONField()
    active_ms = serializers.IntegerField(help_text="Time spent on it, in ms.")
    created_at = serializers.DateTimeField()
    counted = serializers.BooleanField()
    late = serializers.BooleanField()
    rejected = serializers.BooleanField()


class BrowserReviewOutput(serializers.Serializer):
    id = serializers.IntegerField()
    reviewer = serializers.CharField(source="reviewer.username")
    decision = serializers.CharField()
    annotation = serializers.IntegerField(source="annotation_id", allow_null=True)
    annotator = serializers.CharField(source="annotation.annotator.username", allow_null=True, default=None)
    value = serializers.JSONField(allow_null=True)
    reason = serializers.CharField()
    created_at = serializers.DateTimeField()


class BrowserItemDetailOutput(BrowserItemOutput):
    gold_value = serializers.JSONField(allow_null=True)
    metadata = serializers.JSONField()
    annotations = BrowserAnnotationOutput(many=True, source="browser_annotations")
    reviews = BrowserReviewOutput(many=True, source="browser_reviews")

    @extend_schema_field(BrowserProposalOutput(allow_null=True))
    def get_proposal(self, item) -> dict | None:
        """The active model's proposal, else one imported with the item; null when neither."""
        return item.browser_proposal


class BrowserSelectionInput(serializers.Serializer):
    ids = serializers.ListField(
        child=serializers.IntegerField(min_value=1),
        required=False,
        max_length=browser.MAX_IDS,
        help_text="The ticked items; or else:",
    )
    filters = serializers.DictField(
        required=False, help_text='"All N matching": the list\'s filters, e.g. {"labeled": true, "q": "cat"}.'
    )


class BrowserActionInput(serializers.Serializer):
    action = serializers.ChoiceField(choices=sorted(browser.ACTIONS))
    selection = BrowserSelectionInput(help_text='Exactly one of "ids" and "filters".')
    format = serializers.ChoiceField(
        choices=exporting.FORMATS, default="json", help_text="For action export: the file's format."
    )


class BrowserActionOutput(serializers.Serializer):
    action = serializers.CharField()
    changed = serializers.IntegerField(help_text="Items the action changed (export: items selected).")
    skipped = serializers.IntegerField(help_text="Selected items it left as they were, as `message` says.")
    message = serializers.CharField()
    job = ExportJobOutput(allow_null=True, help_text="For action export: the job; poll its url.")


# Views -----------------------------------------------------------------------------------

_BOOL = "true or false"
FILTER_PARAMETERS = [
    OpenApiParameter("q", str, description="Case-insensitive substring of the item's text."),
    OpenApiParameter("labeled", bool, description=f"Has a final label ({_BOOL})."),
    OpenApiParameter("final_label", str, description="The final label holds this label (a label name)."),
    OpenApiParameter(
        "final_source", str, enum=FinalSource.values, description="Where the final label came from."
    ),
    OpenApiParameter("annotator", int, description="Has an annotation by this user (id)."),
    OpenApiParameter("disagreement", bool, description=f"Its voters disagree ({_BOOL})."),
    OpenApiParameter("gold", bool, description=f"Is a gold item ({_BOOL})."),
    OpenApiParameter("suspicious", bool, description=f"The model doubts its final label ({_BOOL})."),
    OpenApiParameter("proposal", str, description="The active model proposes this label."),
    OpenApiParameter("confidence_min", float, description="The proposal's score is at least this (0–1)."),
    OpenApiParameter("confidence_max", float, description="The proposal's score is at most this (0–1)."),
    OpenApiParameter("ids", str, description="Only these items (comma-separated ids)."),
    OpenApiParameter(
        "sort",
        str,
        enum=list(browser.SORTS),
        description="created_at (default), -created_at, confidence (least confident first; items without"
        " a proposal last either way), -confidence.",
    ),
    OpenApiParameter("cursor", str, description="The previous page's next_cursor."),
    OpenApiParameter(
        "count",
        bool,
        description="Also count every matching item (a scan of the matches: ask on the first page only).",
    ),
    OpenApiParameter(
        "page_size", int, description=f"1 to {browser.MAX_PAGE_SIZE} (default {browser.PAGE_SIZE})."
    ),
]


class BrowserListApi(ManagerApi):
    @extend_schema(
        tags=["browser"],
        operation_id="browser_list",
        parameters=FILTER_PARAMETERS,
        responses={200: BrowserPageOutput, 400: BAD_REQUEST, 403: FORBIDDEN, 404: NOT_FOUND},
    )
    def get(self, request, project_id):
        """The project's items, filtered and sorted, in keyset pages (managers).

        Follow `next` (or send `next_cursor` as `cursor` with the same parameters) for the next
        page: a page never repeats or skips an item, ties in the sort included. A bad value
        answers 400 naming its parameter.
        """
        params = request.query_params
        filters = browser.item_filters_parse(
            project=self.project, params=params, proposals=browser_proposals(self.project)
        )
        page = browser.item_page(
            project=self.project,
            filters=filters,
            cursor=params.get("cursor", ""),
            page_size=browser.page_size_parse(params.get("page_size")),
        )
        count = None
        if browser.flag_parse("count", params.get("count")):
            count = browser.item_count(project=self.project, filters=filters)
        next_url = None
        if page.next_cursor:
            next_url = replace_query_param(request.build_absolute_uri(), "cursor", page.next_cursor)
        body = {
            "count": count,
            "next_cursor": page.next_cursor,
            "next": next_url,
            "results": BrowserItemOutput(page.items, many=True).data,
        }
        return Response(body)


class BrowserItemApi(ManagerApi):
    @extend_schema(
        tags=["browser"],
        operation_id="browser_item",
        responses={200: BrowserItemDetailOutput, 403: FORBIDDEN, 404: NOT_FOUND},
    )
    def get(self, request, project_id, item_id):
        """One item with its annotations (who, value, time spent), reviews and the model's proposal."""
        detail = found(browser.item_detail_get(project=self.project, item_id=item_id))
        item = detail.item
        item.browser_annotations, item.browser_reviews = detail.annotations, detail.reviews
        item.browser_proposal = item_proposal(item)
        return Response(BrowserItemDetailOutput(item).data)


class BrowserActionApi(ManagerApi):
    @extend_schema(
        tags=["browser"],
        operation_id="browser_action",
        request=BrowserActionInput,
        responses={
            200: BrowserActionOutput,
            202: BrowserActionOutput,
            400: BAD_REQUEST,
            403: FORBIDDEN,
            404: NOT_FOUND,
        },
        parameters=[OpenApiParameter("Location", OpenApiTypes.STR, OpenApiParameter.HEADER, response=[202])],
    )
    def post(self, request, project_id):
        """Act on a selection (managers): `review` (queue it for review), `gold` (make it gold with
        its final labels; refused if any has none) or `export` (a background export job, 202).

        `selection` is {"ids": [...]} (at most 10,000) or {"filters": {...}} with the list's
        parameters ("all N matching"; {} is every item). Each action is one statement over the
        selection; nothing is changed when the request is refused.
        """
        data = BrowserActionInput(data=request.data)
        data.is_valid(raise_exception=True)
        action = data.validated_data["action"]
        selection = browser.selection_parse(
            project=self.project,
            data=data.validated_data["selection"],
            proposals=browser_proposals(self.project),
        )
        if action == "export":
            result = browser.selection_export(
                project=self.project,
                selection=selection,
                format=data.validated_data["format"],
                requested_by=request.user,
                base_url=request.build_absolute_uri("/"),
            )
        else:
            result = browser.ACTIONS[action](project=self.project, selection=selection)
        job = ExportJobOutput(result.job).data if result.job is not None else None
        body = {
            "action": action,
            "changed": result.changed,
            "skipped": result.skipped,
            "message": result.message,
            "job": job,
        }
        if job is not None:
            return Response(body, status=status.HTTP_202_ACCEPTED, headers={"Location": job["url"]})
        return Response(body)
