"""Imports and exports run in the background, and the states they move through."""

from django.conf import settings
from django.db import models

from annotate.models.projects import Project


class JobStatus(models.TextChoices):
    """The states of a background import or export."""

    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"


class ImportJob(models.Model):
    """An import run in the background (files over the synchronous row limit); the page polls it."""

    Status = JobStatus

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="import_jobs")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    format = models.CharField(max_length=16)
    filename = models.CharField(max_length=255)
    # The uploaded file, kept under MEDIA_ROOT/imports/ until the job ends.
    upload = models.FileField(upload_to="imports/", max_length=500)
    options = models.JSONField(default=dict, blank=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.QUEUED)
    progress = models.PositiveSmallIntegerField(default=0, help_text="0-100")
    rows_done = models.PositiveIntegerField(default=0)
    rows_total = models.PositiveIntegerField(default=0)
    items_created = models.PositiveIntegerField(default=0)
    error = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    # Written when a worker claims the job and with each progress write (PostgreSQL): a running
    # job silent for too long lost its worker, and importing.import_jobs_sweep fails it.
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-id"]

    def __str__(self) -> str:
        return f"import {self.pk} of {self.filename} ({self.status})"


class ExportJob(models.Model):
    """An export written to a file in the background, for exports that would outlast a request."""

    Status = JobStatus

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="export_jobs")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    format = models.CharField(max_length=8)
    labeled_only = models.BooleanField(default=False)
    reviewed_only = models.BooleanField(default=False)
    # The item browser's selection (its filters, as its query string gives them): empty, all items.
    selection = models.JSONField(default=dict, blank=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.QUEUED)
    progress = models.PositiveSmallIntegerField(default=0, help_text="0-100")
    file = models.FileField(upload_to="exports/", blank=True, max_length=500)
    items_written = models.PositiveIntegerField(default=0)
    error = models.TextField(blank=True)
    # Scheme and host of the request that asked for the export ("https://studio.example"), so
    # that its image URLs are absolute; empty: they are paths.
    base_url = models.CharField(max_length=200, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    # Written when a worker claims the job and with its progress: a running job silent for too
    # long lost its worker, and exporting.export_jobs_sweep fails it.
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-id"]

    def __str__(self) -> str:
        return f"export {self.pk} as {self.format} ({self.status})"
