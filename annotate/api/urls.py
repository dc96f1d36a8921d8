"""The REST API under /api/ (namespace "api")."""

from django.urls import path

from annotate.api import (
    audit,
    auth,
    browser,
    consensus,
    dashboards,
    exports,
    gold,
    history,
    imports,
    items,
    labels,
    members,
    notes,
    projects,
    queue,
    review,
)

app_name = "api"

project = "projects/<id:project_id>/"

urlpatterns = [
    path("auth/token/", auth.TokenObtainApi.as_view(), name="token"),
    path("projects/", projects.ProjectListApi.as_view(), name="project-list"),
    path(project, projects.ProjectDetailApi.as_view(), name="project-detail"),
    path(f"{project}labels/", labels.LabelListApi.as_view(), name="label-list"),
    path(f"{project}labels/<id:label_id>/", labels.LabelDetailApi.as_view(), name="label-detail"),
    path(f"{project}members/", members.MemberListApi.as_view(), name="member-list"),
    path(f"{project}members/<id:membership_id>/", members.MemberDetailApi.as_view(), name="member-detail"),
    path(
        f"{project}members/<id:membership_id>/deactivate/",
        members.MemberDeactivateApi.as_view(),
        name="member-deactivate",
    ),
    path(f"{project}items/", items.ItemListApi.as_view(), name="item-list"),
    path(f"{project}items/<id:item_id>/", items.ItemDetailApi.as_view(), name="item-detail"),
    path(f"{project}browser/", browser.BrowserListApi.as_view(), name="browser"),
    path(f"{project}browser/actions/", browser.BrowserActionApi.as_view(), name="browser-actions"),
    path(f"{project}browser/<id:item_id>/", browser.BrowserItemApi.as_view(), name="browser-item"),
    path(f"{project}items/<id:item_id>/gold/", gold.ItemGoldApi.as_view(), name="item-gold"),
    path(f"{project}items/<id:item_id>/notes/", notes.ItemNoteListApi.as_view(), name="item-notes"),
    path(f"{project}next/", queue.NextApi.as_view(), name="next"),
    path(f"{project}annotations/", queue.AnnotationListApi.as_view(), name="annotation-list"),
    path(f"{project}submit-and-next/", queue.SubmitAndNextApi.as_view(), name="submit-and-next"),
    path(f"{project}skip/", queue.SkipApi.as_view(), name="skip"),
    path(f"{project}history/", history.HistoryApi.as_view(), name="history"),
    path(f"{project}release/", queue.ReleaseApi.as_view(), name="release"),
    path(f"{project}review/next/", review.ReviewNextApi.as_view(), name="review-next"),
    path(f"{project}review/release/", review.ReviewReleaseApi.as_view(), name="review-release"),
    path(f"{project}review/items/<id:item_id>/", review.ReviewItemApi.as_view(), name="review-item"),
    path(
        f"{project}review/items/<id:item_id>/decision/",
        review.ReviewDecisionApi.as_view(),
        name="review-decision",
    ),
    path(f"{project}consensus/recompute/", consensus.RecomputeApi.as_view(), name="consensus-recompute"),
    path(f"{project}imports/", imports.ImportListApi.as_view(), name="import-list"),
    path(f"{project}imports/<id:job_id>/", imports.ImportDetailApi.as_view(), name="import-detail"),
    path(f"{project}export/", exports.ExportApi.as_view(), name="export"),
    path(f"{project}exports/", exports.ExportListApi.as_view(), name="export-list"),
    path(f"{project}exports/<id:job_id>/", exports.ExportDetailApi.as_view(), name="export-detail"),
    path(
        f"{project}exports/<id:job_id>/download/",
        exports.ExportDownloadApi.as_view(),
        name="export-download",
    ),
    path(f"{project}audit/", audit.AuditListApi.as_view(), name="audit-list"),
    path(f"{project}dashboards/", dashboards.DashboardsApi.as_view(), name="dashboards"),
    *(path(f"{project}dashboards/{c}/", v.as_view(), name=f"dashboard-{c}") for c, v in dashboards.VIEWS),
]
