"""Training's browser URLs (namespace "training"): retrain now, the run's status, cancel."""

from django.urls import path

from training import views

app_name = "training"

urlpatterns = [
    path("projects/<int:project_id>/training/runs/", views.run_request, name="run-request"),
    path("projects/<int:project_id>/training/runs/latest/", views.run_status, name="run-status"),
    path("projects/<int:project_id>/training/runs/<int:run_id>/cancel/", views.run_cancel, name="run-cancel"),
]
