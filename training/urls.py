"""Training's browser URLs (namespace "training"): retrain now, the run's status, cancel; a
version's model card and download."""

from django.urls import path

from training import views

app_name = "training"

urlpatterns = [
    path("projects/<int:project_id>/training/runs/", views.run_request, name="run-request"),
    path("projects/<int:project_id>/training/runs/latest/", views.run_status, name="run-status"),
    path("projects/<int:project_id>/training/runs/<int:run_id>/cancel/", views.run_cancel, name="run-cancel"),
    path("projects/<int:project_id>/models/v<int:number>/", views.model_card_page, name="model-card"),
    path(
        "projects/<int:project_id>/models/v<int:number>/download/",
        views.model_download,
        name="model-download",
    ),
]
