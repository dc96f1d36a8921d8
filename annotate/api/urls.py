"""The REST API under /api/ (namespace "api")."""

from django.urls import path

from annotate.api import imports, training, views

app_name = "api"

project = "projects/<int:project_id>/"

urlpatterns = [
    path("auth/token/", views.TokenObtainApi.as_view(), name="token"),
    path("projects/", views.ProjectListApi.as_view(), name="project-list"),
    path(project, views.ProjectDetailApi.as_view(), name="project-detail"),
    path(f"{project}labels/", views.LabelListApi.as_view(), name="label-list"),
    path(f"{project}labels/<int:label_id>/", views.LabelDetailApi.as_view(), name="label-detail"),
    path(f"{project}members/", views.MemberListApi.as_view(), name="member-list"),
    path(f"{project}members/<int:membership_id>/", views.MemberDetailApi.as_view(), name="member-detail"),
    path(f"{project}items/", views.ItemListApi.as_view(), name="item-list"),
    path(f"{project}items/<int:item_id>/", views.ItemDetailApi.as_view(), name="item-detail"),
    path(f"{project}next/", views.NextApi.as_view(), name="next"),
    path(f"{project}annotations/", views.AnnotationListApi.as_view(), name="annotation-list"),
    path(f"{project}submit-and-next/", views.SubmitAndNextApi.as_view(), name="submit-and-next"),
    path(f"{project}skip/", views.SkipApi.as_view(), name="skip"),
    path(f"{project}release/", views.ReleaseApi.as_view(), name="release"),
    path(f"{project}imports/", imports.ImportListApi.as_view(), name="import-list"),
    path(f"{project}training-runs/", training.TrainingRunListApi.as_view(), name="training-run-list"),
    path(
        f"{project}training-runs/<int:run_id>/",
        training.TrainingRunDetailApi.as_view(),
        name="training-run-detail",
    ),
    path(
        f"{project}training-runs/<int:run_id>/cancel/",
        training.TrainingRunCancelApi.as_view(),
        name="training-run-cancel",
    ),
    path(f"{project}model-versions/", training.ModelVersionListApi.as_view(), name="model-version-list"),
    path(f"{project}imports/<int:job_id>/", imports.ImportDetailApi.as_view(), name="import-detail"),
    path(f"{project}export/", imports.ExportApi.as_view(), name="export"),
    path(f"{project}exports/", imports.ExportListApi.as_view(), name="export-list"),
    path(f"{project}exports/<int:job_id>/", imports.ExportDetailApi.as_view(), name="export-detail"),
    path(
        f"{project}exports/<int:job_id>/download/",
        imports.ExportDownloadApi.as_view(),
        name="export-download",
    ),
]
