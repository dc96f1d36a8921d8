"""Items, their leases (Assignment), annotations and skips, and the choices an item's columns take.

Item carries the counters the queue reads (`annotation_count`, `lease_count`,
`is_complete`) so that choosing the next item is one indexed query; the services in
queue.py keep them right in the same transaction as the change.
"""

import secrets

from django.conf import settings
from django.db import models
from django.db.models import F, Q

from annotate.models.projects import Project


class Neg(models.Func):
    """`-x`, as the queue index stores it: an index on (project, -priority, id) can range-scan
    a row comparison `(-priority, id) >= (…, …)`, which (priority DESC, id) cannot."""

    template = "(-%(expressions)s)"
    arity = 1


class FinalSource(models.TextChoices):
    """Where an item's final label came from."""

    NONE = "none", "No label yet"
    SINGLE = "single", "One annotator"
    CONSENSUS = "consensus", "Consensus"
    TIE = "tie", "Tie (no final label)"
    REVIEW = "review", "Review"
    GOLD = "gold", "Gold"


class PickKind(models.TextChoices):
    QUEUE = "queue", "Queue"
    GOLD = "gold", "Gold"
    RANDOM = "random", "Random slice"


class ReviewState(models.TextChoices):
    NONE = "none", "Not for review"
    QUEUED = "queued", "Waiting for review"
    DONE = "done", "Reviewed"


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
    # The final label and where it came from, kept by annotate/quality/ in the same transaction
    # as the annotation, review or gold change that moves it. Training, exports and dashboards
    # read these columns; nothing walks the annotations to find them.
    final_value = models.JSONField(null=True, blank=True)
    final_source = models.CharField(max_length=16, choices=FinalSource.choices, default=FinalSource.NONE)
    # The voters do not all agree (the review queue serves these first).
    disagreement = models.BooleanField(default=False)
    # How the queue picks the item: "queue" (by priority) or "gold" (the gold share, outside
    # overlap). One indexed column, so the active-learning random slice can be another kind.
    pick_kind = models.CharField(max_length=8, choices=PickKind.choices, default=PickKind.QUEUE)
    gold_value = models.JSONField(null=True, blank=True, help_text="The true value of a gold item.")
    # Review (annotate/review.py): the value a reviewer's decision puts in force (accept or
    # correct), the last decision, the state in the review queue and its lease.
    reviewed_value = models.JSONField(null=True, blank=True)
    last_review = models.ForeignKey(
        "Review", null=True, blank=True, on_delete=models.SET_NULL, related_name="+", db_index=False
    )
    review_state = models.CharField(max_length=8, choices=ReviewState.choices, default=ReviewState.NONE)
    # Written by training, as `priority` is: how much the model doubts the final label (higher
    # is reviewed sooner), and, for a suspicious label, the model's alternative.
    review_priority = models.FloatField(default=0.0)
    suspicion = models.FloatField(null=True, blank=True)
    suspect_value = models.JSONField(null=True, blank=True)
    review_leased_by_id = models.BigIntegerField(null=True, blank=True)
    review_lease_expires_at = models.DateTimeField(null=True, blank=True)
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
            # The review queue: disagreements first, then what the model doubts, then the rest.
            models.Index(
                fields=["project", "-disagreement", "-review_priority", "id"],
                condition=Q(review_state="queued"),
                name="item_review_queue_idx",
            ),
            # The gold share of the queue.
            models.Index(fields=["project", "id"], condition=Q(pick_kind="gold"), name="item_gold_idx"),
            # The random slice still to label (annotate/queue_order.py): a few dozen rows at a time.
            models.Index(
                fields=["project", "id"],
                condition=Q(pick_kind="random", is_complete=False),
                name="item_random_slice_idx",
            ),
            # The item browser's keyset pages in time order (annotate/browser/pages.py), either way:
            # a page starts at its cursor's (created_at, id) and reads one page of index rows.
            models.Index(fields=["project", "created_at", "id"], name="item_browser_created_idx"),
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
    # A random-slice item's hidden prediction, recorded when it was served (training/proposals.py),
    # before its label trained anything: the value and the model version's id, as plain data.
    slice_value = models.JSONField(null=True, blank=True)
    slice_model_version_id = models.BigIntegerField(null=True, blank=True)

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
    # Set by a reviewer's reject (annotate/review.py): it stops counting and voting.
    rejected = models.BooleanField(default=False, db_default=False)
    source = models.CharField(max_length=64, blank=True, help_text="Where an imported annotation came from.")
    # The proposal shown, as plain data: annotate never depends on training.
    proposal_value = models.JSONField(null=True, blank=True)
    proposal_model_version_id = models.BigIntegerField(null=True, blank=True)
    # Whether the annotator kept the proposal as it was shown; None when none was shown.
    proposal_accepted = models.BooleanField(null=True, blank=True)
    # The client's key for this submit (annotate.queue.annotation_submit): the same key again from
    # the same annotator stores nothing and answers with this annotation. "" when none was sent.
    idempotency_key = models.CharField(max_length=64, blank=True, default="", db_default="")

    class Meta:
        ordering = ["id"]
        indexes = [
            models.Index(fields=["annotator", "item"], name="annotation_user_item_idx"),
            models.Index(fields=["item"], name="annotation_item_idx"),
        ]
        constraints = [
            models.CheckConstraint(condition=Q(active_ms__gte=0), name="annotation_active_ms_gte_0"),
            models.UniqueConstraint(
                fields=["annotator", "idempotency_key"],
                condition=~Q(idempotency_key=""),
                name="annotation_idempotency_unique",
            ),
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
