"""Training's API routes. config/urls.py serves them under /api/ in the "api" namespace, together
with annotate.api.urls' (one namespace cannot be split over two includes)."""

from django.urls import path

from training.api import predict, views

project = "projects/<id:project_id>/"

urlpatterns = [
    path(f"{project}training-runs/", views.TrainingRunListApi.as_view(), name="training-run-list"),
    path(
        f"{project}training-runs/<id:run_id>/",
        views.TrainingRunDetailApi.as_view(),
        name="training-run-detail",
    ),
    path(
        f"{project}training-runs/<id:run_id>/cancel/",
        views.TrainingRunCancelApi.as_view(),
        name="training-run-cancel",
    ),
    path(f"{project}model-versions/", views.ModelVersionListApi.as_view(), name="model-version-list"),
    path(f"{project}predict/", predict.PredictApi.as_view(), name="predict"),
    path(
        f"{project}model-versions/<id:number>/download/",
        views.ModelVersionDownloadApi.as_view(),
        name="model-version-download",
    ),
]
