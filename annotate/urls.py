"""The browser pages' URLs (namespace "annotate"): home, project, labeling, import, export, images."""

from django.urls import path

from annotate.views import projects as views

app_name = "annotate"

urlpatterns = [
    path("", views.home, name="home"),
    path("projects/<int:project_id>/", views.project_detail, name="project"),
    path("projects/<int:project_id>/label/", views.label, name="label"),
    path("projects/<int:project_id>/items/<int:item_id>/image", views.item_image, name="item-image"),
    path("projects/<int:project_id>/import/", views.project_import, name="import"),
    path("projects/<int:project_id>/imports/<int:job_id>/", views.import_job, name="import-job"),
    path("projects/<int:project_id>/export/", views.project_export, name="export"),
    path("projects/<int:project_id>/exports/<int:job_id>/", views.export_job, name="export-job"),
    path(
        "projects/<int:project_id>/exports/<int:job_id>/download/",
        views.export_job_download,
        name="export-download",
    ),
]
