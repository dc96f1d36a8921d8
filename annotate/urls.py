"""The browser pages' URLs (namespace "annotate"): home, project, labeling, import, export, images."""

from django.urls import path

from annotate.views import audit as audit_views
from annotate.views import browser as browser_views
from annotate.views import dashboards as dashboard_views
from annotate.views import members as member_views
from annotate.views import projects as views
from annotate.views import review as review_views
from annotate.views import settings as settings_views

app_name = "annotate"

urlpatterns = [
    path("", views.home, name="home"),
    path("projects/<id:project_id>/", views.project_detail, name="project"),
    path("projects/<id:project_id>/label/", views.label, name="label"),
    path("projects/<id:project_id>/review/", review_views.review, name="review"),
    path("projects/<id:project_id>/items/<id:item_id>/image", views.item_image, name="item-image"),
    path("projects/<id:project_id>/items/", browser_views.browser_page, name="browser"),
    path("projects/<id:project_id>/items/actions/", browser_views.browser_action, name="browser-action"),
    path("projects/<id:project_id>/items/count/", browser_views.browser_count, name="browser-count"),
    path("projects/<id:project_id>/items/<id:item_id>/", browser_views.browser_item, name="browser-item"),
    path(
        "projects/<id:project_id>/items/<id:item_id>/flags/resolve/",
        browser_views.browser_note_resolve,
        name="browser-note-resolve",
    ),
    path("projects/<id:project_id>/import/", views.project_import, name="import"),
    path("projects/<id:project_id>/imports/<id:job_id>/", views.import_job, name="import-job"),
    path("projects/<id:project_id>/export/", views.project_export, name="export"),
    path("projects/<id:project_id>/exports/<id:job_id>/", views.export_job, name="export-job"),
    path(
        "projects/<id:project_id>/exports/<id:job_id>/download/",
        views.export_job_download,
        name="export-download",
    ),
    path("projects/<id:project_id>/dashboards/", dashboard_views.dashboards, name="dashboards"),
    path("projects/<id:project_id>/members/", member_views.members, name="members"),
    path("projects/<id:project_id>/members/<id:membership_id>/", member_views.member_change, name="member"),
    path("projects/<id:project_id>/settings/", settings_views.project_settings, name="settings"),
    path(
        "projects/<id:project_id>/settings/recompute/",
        settings_views.consensus_recompute,
        name="consensus-recompute",
    ),
    path("projects/<id:project_id>/settings/delete/", audit_views.project_delete_page, name="project-delete"),
    path("projects/<id:project_id>/audit/", audit_views.audit_page, name="audit"),
    path("projects/<id:project_id>/gold/", settings_views.gold_mark, name="gold-mark"),
    path("projects/<id:project_id>/gold/<id:item_id>/clear/", settings_views.gold_clear, name="gold-clear"),
]
