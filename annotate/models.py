"""Labeling projects, their labels and members, items, leases, annotations and skips.

Item carries the counters the queue reads (`annotation_count`, `lease_count`,
`is_complete`) so that choosing the next item is one indexed query; the services in
queue.py keep them right in the same transaction as the change.
"""

import secrets

from django.conf import settings
from django.db import models
from django.db.models import F, Q


def _new_salt() -> str:
    return secrets.token_hex(8)


class Project(models.Model):
    class TaskType(models.TextChoices):
        TEXT_CLASSIFICATION = "text_classification", "Text classification"
        IMAGE_CLASSIFICATION = "image_classification", "Image classification"

    name = models.CharField(max_length=200)
    instructions = models.TextField(blank=True, help_text="Markdown, shown beside every item.")
    task_type = models.CharField(max_length=32, choices=TaskType.choices)
    multi_label = models.BooleanField(
        default=False, help_text="Annotators may choose several labels per item."
    )
    overlap = models.PositiveSmallIntegerField(default=1, help_text="How many annotators label each item.")
    lease_seconds = models.PositiveIntegerField(
        default=600, help_text="How long an annotator holds an item before it returns to the queue."
    )
    # Training settings (training reads them; annotate never imports training).
    training_min_labels = models.PositiveIntegerField(
        default=10, help_text="Train only once this many items have a final label."
    )
    retrain_every = models.PositiveIntegerField(
        default=0, help_text="Retrain automatically every N new labels (0: off)."
    )
    sampling_strategy = models.CharField(
        max_length=24,
        choices=[
            ("margin", "Margin (default)"),
            ("least_confidence", "Least confidence"),
            ("entropy", "Entropy"),
            ("random", "Random"),
        ],
        default="margin",
        help_text="How the active model orders the queue.",
    )
    # Fixes the train / validation split of every item forever (training/datasets.py).
    salt = models.CharField(max_length=32, default=_new_salt, editable=False)
    # The queue's order version (annotate/queue.py): bumped whenever items may move ahead of an
    # annotator's bookmark (priorities rewritten, items added, overlap raised); a bookmark
    # counts only while its epoch is the project's and no reordering is under way.
    queue_epoch = models.PositiveBigIntegerField(default=0, editable=False)
    queue_reordering = models.BooleanField(default=False, editable=False)
    # When the last rewrite of priorities ended: a lease taken before it was chosen by the old
    # order, so its holder is not served it first again (annotate/queue.py assignment_next).
    queue_reordered_at = models.DateTimeField(null=True, blank=True, editable=False)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]
        constraints = [
            models.CheckConstraint(condition=Q(overlap__gte=1), name="project_overlap_at_least_1"),
            models.CheckConstraint(condition=Q(lease_seconds__gte=10), name="project_lease_at_least_10s"),
        ]

    def __str__(self) -> str:
        return self.name

    @property
    def is_image(self) -> bool:
        return self.task_type == self.TaskType.IMAGE_CLASSIFICATION


class Label(models.Model):
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="labels")
    name = models.CharField(max_length=100)
    colour = models.CharField(max_length=7, default="#4c78a8", help_text="#rrggbb")
    hotkey = models.CharField(max_length=1, blank=True)
    order = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["order", "id"]
        constraints = [
            models.UniqueConstraint(
                fields=["project", "name"],
                name="label_name_unique_in_project",
                violation_error_message="a label with this name already exists in this project",
            ),
            models.UniqueConstraint(
                fields=["project", "hotkey"],
                condition=~Q(hotkey=""),
                name="label_hotkey_unique_in_project",
                violation_error_message="another label of this project has this hotkey",
            ),
            models.CheckConstraint(condition=Q(colour__regex=r"^#[0-9a-fA-F]{6}$"), name="label_colour_hex"),
        ]

    def __str__(self) -> str:
        return self.name


class Membership(models.Model):
    class Role(models.TextChoices):
        ANNOTATOR = "annotator", "Annotator"
        REVIEWER = "reviewer", "Reviewer"
        MANAGER = "manager", "Manager"

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships")
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(max_length=16, choices=Role.choices, default=Role.ANNOTATOR)
    created_at = models.DateTimeField(auto_now_add=True)
    # The annotator's bookmark in the queue (annotate/queue.py): every item before this
    # (priority, item id) in queue order is complete, or labeled or skipped by this member.
    # The next-item query starts there instead of walking everything they already did.
    # A plain id, not a foreign key: deleting that item must not delete the membership.
    queue_mark_priority = models.FloatField(null=True, editable=False)
    queue_mark_item_id = models.BigIntegerField(null=True, editable=False)
    queue_mark_epoch = models.PositiveBigIntegerField(null=True, editable=False)

    class Meta:
        ordering = ["project_id", "id"]
        constraints = [
            models.UniqueConstraint(fields=["project", "user"], name="membership_unique"),
        ]

    def __str__(self) -> str:
        return f"{self.user} ({self.role}) in {self.project}"

    @property
    def can_review(self) -> bool:
        return self.role in (self.Role.REVIEWER, self.Role.MANAGER)

    @property
    def can_manage(self) -> bool:
        return self.role == self.Role.MANAGER


class Neg(models.Func):
    """`-x`, as the queue index stores it: an index on (project, -priority, id) can range-scan
    a row comparison `(-priority, id) >= (…, …)`, which (priority DESC, id) cannot."""

    template = "(-%(expressions)s)"
    arity = 1


def _item_upload_to(item: "Item", filename: str) -> str:
    return f"projects/{item.project_id}/{secrets.token_hex(8)}-{filename}"


class Item(models.Model):
    # No index of its own: item_project_id_idx (project, id) serves every lookup by project.
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="items", db_index=False)
    external_id = models.CharField(max_length=255)
    text = models.TextField(blank=True)
    image = models.FileField(upload_to=_item_upload_to, blank=True, max_length=500)
    width = models.PositiveIntegerField(null=True, blank=True)
    height = models.PositiveIntegerField(null=True, blank=True)
    metadata = models.JSONField(default=dict, blank=True)
    # A proposal that came with the data (import's prediction field): {"value": {...}, "score": 0.9}.
    # Model proposals live in training.Prediction; the labeling page prefers those.
    proposal = models.JSONField(null=True, blank=True)
    # Written by training (active learning); higher is served first.
    priority = models.FloatField(default=0.0)
    # Queue counters, kept by queue.py in the same transaction as the change:
    # annotations that count toward overlap, open leases, and "has enough annotations".
    annotation_count = models.PositiveIntegerField(default=0)
    lease_count = models.PositiveIntegerField(default=0)
    is_complete = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(
                fields=["project", "external_id"],
                name="item_external_id_unique_in_project",
                violation_error_message="an item with this external id already exists in this project",
            ),
        ]
        indexes = [
            # The queue: open items of a project, highest priority first, then import order.
            models.Index(
                F("project"),
                Neg("priority"),
                F("id"),
                condition=Q(is_complete=False),
                name="item_queue_idx",
            ),
            # Keyset pages of one project's items (exports, the items API).
            models.Index(fields=["project", "id"], name="item_project_id_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.project_id}/{self.external_id}"


class Assignment(models.Model):
    """A lease of one item to one annotator until `expires_at`."""

    class Status(models.TextChoices):
        OPEN = "open", "Open"
        SUBMITTED = "submitted", "Submitted"
        SKIPPED = "skipped", "Skipped"
        EXPIRED = "expired", "Expired"

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="assignments")
    # Indexed by assignment_item_user_idx (item, annotator).
    item = models.ForeignKey(Item, on_delete=models.CASCADE, related_name="assignments", db_index=False)
    annotator = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="assignments"
    )
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.OPEN)
    created_at = models.DateTimeField()
    expires_at = models.DateTimeField()
    closed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(
                fields=["item", "annotator"],
                condition=Q(status="open"),
                name="assignment_one_open_per_item_and_annotator",
            ),
        ]
        indexes = [
            models.Index(
                fields=["project", "expires_at"],
                condition=Q(status="open"),
                name="assignment_open_expiry_idx",
            ),
            models.Index(
                fields=["annotator", "project"],
                condition=Q(status="open"),
                name="assignment_open_by_user_idx",
            ),
            models.Index(fields=["item", "annotator"], name="assignment_item_user_idx"),
        ]

    def __str__(self) -> str:
        return f"item {self.item_id} to {self.annotator_id} ({self.status})"


class Annotation(models.Model):
    """One submit. Append-only: a new answer is a new row, never an update."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="annotations")
    # Indexed by annotation_item_idx and annotation_user_item_idx (annotator, item).
    item = models.ForeignKey(Item, on_delete=models.CASCADE, related_name="annotations", db_index=False)
    annotator = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="annotations", db_index=False
    )
    value = models.JSONField()
    active_ms = models.PositiveIntegerField(default=0, help_text="Active time spent, in ms.")
    created_at = models.DateTimeField()
    late = models.BooleanField(default=False, help_text="Submitted after its lease expired.")
    counted = models.BooleanField(default=True, help_text="Counts toward the item's overlap.")
    source = models.CharField(max_length=64, blank=True, help_text="Where an imported annotation came from.")
    # The proposal shown, as plain data: annotate never depends on training.
    proposal_value = models.JSONField(null=True, blank=True)
    proposal_model_version_id = models.BigIntegerField(null=True, blank=True)
    # Whether the annotator kept the proposal as it was shown; None when none was shown.
    proposal_accepted = models.BooleanField(null=True, blank=True)

    class Meta:
        ordering = ["id"]
        indexes = [
            models.Index(fields=["annotator", "item"], name="annotation_user_item_idx"),
            models.Index(fields=["item"], name="annotation_item_idx"),
        ]
        constraints = [
            models.CheckConstraint(condition=Q(active_ms__gte=0), name="annotation_active_ms_gte_0"),
        ]

    def __str__(self) -> str:
        return f"annotation {self.pk} of item {self.item_id} by {self.annotator_id}"


class Skip(models.Model):
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="skips")
    # Indexed by skip_unique (item, annotator).
    item = models.ForeignKey(Item, on_delete=models.CASCADE, related_name="skips", db_index=False)
    annotator = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="skips")
    created_at = models.DateTimeField()

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(fields=["item", "annotator"], name="skip_unique"),
        ]

    def __str__(self) -> str:
        return f"item {self.item_id} skipped by {self.annotator_id}"


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
