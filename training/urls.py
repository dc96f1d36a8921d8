"""Training's browser URLs (namespace "training"): retrain now, the run's status, cancel; a
version's model card and download."""

from django.urls import path

from training import views

app_name = "training"

urlpatterns = [
    path("projects/<id:project_id>/training/runs/", views.run_request, name="run-request"),
    path("projects/<id:project_id>/training/runs/latest/", views.run_status, name="run-status"),
    path("projects/<id:project_id>/training/runs/<id:run_id>/cancel/", views.run_cancel, name="run-cancel"),
    path("projects/<id:project_id>/models/v<id:number>/", views.model_card_page, name="model-card"),
    path(
        "projects/<id:project_id>/models/v<id:number>/download/",
        views.model_download,
        name="model-download",
    ),
]
