"""Labeling projects, their labels and members, items, leases, annotations and skips.

Item carries the counters the queue reads (`annotation_count`, `lease_count`,
`is_complete`) so that choosing the next item is one indexed query; the services in
queue.py keep them right in the same transaction as the change.
"""

import secrets

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import F, Q


def _new_salt() -> str:
    return secrets.token_hex(8)


class Project(models.Model):
    class TaskType(models.TextChoices):
        TEXT_CLASSIFICATION = "text_classification", "Text classification"
        IMAGE_CLASSIFICATION = "image_classification", "Image classification"
        IMAGE_BOXES = "image_boxes", "Bounding boxes on images"
        TEXT_SPANS = "text_spans", "Text spans (entities)"

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
    # Text spans (annotate/values.py, annotate/tokens.py).
    spans_snap_to_tokens = models.BooleanField(
        default=True,
        help_text="Text spans: a selection widens to whole tokens (off: character precision).",
    )
    spans_may_overlap = models.BooleanField(default=False, help_text="Text spans may overlap one another.")
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
    # Label quality (annotate/quality/): how the final label of an item is found, and gold items.
    consensus_method = models.CharField(
        max_length=16,
        choices=[("majority", "Majority vote"), ("dawid_skene", "Dawid–Skene (weighs annotators)")],
        default="majority",
        help_text="Majority is kept with every annotation; Dawid–Skene is recomputed in the background.",
    )
    consensus_every = models.PositiveIntegerField(
        default=0, help_text="Dawid–Skene: recompute after N new annotations (0: on demand only)."
    )
    consensus_computed_at = models.DateTimeField(null=True, blank=True, editable=False)
    # The newest annotation when Dawid–Skene last ran: "after N annotations" counts from here.
    consensus_last_annotation_id = models.BigIntegerField(default=0, editable=False)
    gold_share = models.FloatField(
        default=0.0, help_text="Share of each annotator's queue that is gold items (0 to 0.5)."
    )
    gold_pause_below = models.FloatField(
        null=True,
        blank=True,
        help_text="Pause an annotator whose gold accuracy is surely below this (0 to 1; empty: never).",
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
            models.CheckConstraint(
                condition=Q(gold_share__gte=0, gold_share__lte=0.5), name="project_gold_share_0_to_half"
            ),
            models.CheckConstraint(
                condition=Q(gold_pause_below__isnull=True)
                | Q(gold_pause_below__gte=0, gold_pause_below__lte=1),
                name="project_gold_pause_below_0_to_1",
            ),
        ]

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        if not self.is_classification and self.multi_label:
            raise ValidationError(
                {
                    "multi_label": "multi-label applies to classification;"
                    " boxes and spans hold any number already"
                }
            )
        if not self.is_classification and self.consensus_method == "dawid_skene":
            raise ValidationError(
                {"consensus_method": "Dawid–Skene applies to classification projects only; use majority"}
            )
        if self.consensus_method == "dawid_skene" and self.multi_label:
            raise ValidationError(
                {
                    "consensus_method": "Dawid–Skene applies to single-label projects only (a multi-label"
                    " item has no one true class); this project is multi-label"
                }
            )

    @property
    def is_image(self) -> bool:
        return self.task_type in (self.TaskType.IMAGE_CLASSIFICATION, self.TaskType.IMAGE_BOXES)

    @property
    def is_classification(self) -> bool:
        return self.task_type in (self.TaskType.TEXT_CLASSIFICATION, self.TaskType.IMAGE_CLASSIFICATION)


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
    # Gold answers (annotate/quality/gold.py), kept with each submit on a gold item.
    gold_answers = models.PositiveIntegerField(default=0, editable=False)
    gold_correct = models.PositiveIntegerField(default=0, editable=False)
    # A paused member's queue serves nothing (a lead's decision, or the gold threshold's).
    paused = models.BooleanField(default=False)
    paused_reason = models.CharField(max_length=300, blank=True)

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
            # The item browser's keyset pages in time order (annotate/browser.py), either way:
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


class Review(models.Model):
    """One reviewer's decision on an item. Append-only: a later decision supersedes (and may
    reverse) this one; the item's `last_review` is the one in force."""

    class Decision(models.TextChoices):
        ACCEPT = "accept", "Accept"
        CORRECT = "correct", "Correct"
        REJECT = "reject", "Reject"

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="reviews")
    item = models.ForeignKey(Item, on_delete=models.CASCADE, related_name="reviews")
    reviewer = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="reviews")
    decision = models.CharField(max_length=8, choices=Decision.choices)
    # The annotation accepted or rejected (none for a correction).
    annotation = models.ForeignKey(
        Annotation, null=True, blank=True, on_delete=models.SET_NULL, related_name="reviews"
    )
    # The final value the decision puts in force (accept, correct); none for a reject.
    value = models.JSONField(null=True, blank=True)
    reason = models.TextField(blank=True)
    supersedes = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="+", db_index=False
    )
    # What the decision counted for each annotator ({annotator id: outcome}), so that a later
    # decision takes exactly that back from the dashboards' tallies.
    outcomes = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField()
    # A reject's annotator has seen its reason (the labeling page shows it once).
    seen_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return f"{self.decision} of item {self.item_id} by {self.reviewer_id}"


class ItemNote(models.Model):
    """An annotator's comment on an item, or a flag for the project's leads. Append-only; a lead
    resolves a flag by setting `resolved_at`."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="notes", db_index=False)
    item = models.ForeignKey(Item, on_delete=models.CASCADE, related_name="notes")
    author = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    text = models.TextField(blank=True)
    flagged = models.BooleanField(default=False, help_text="Flagged for the project's leads.")
    created_at = models.DateTimeField(auto_now_add=True)
    resolved_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["id"]
        indexes = [
            models.Index(
                fields=["project", "id"],
                condition=Q(flagged=True, resolved_at__isnull=True),
                name="note_open_flag_idx",
            ),
        ]

    def __str__(self) -> str:
        return f"{'flag' if self.flagged else 'note'} on item {self.item_id} by {self.author_id}"


class Tally(models.Model):
    """A per-project counter kept up to date incrementally (agreement counts, dashboards):
    `n` of `key` in `kind`. annotate/quality/tallies.py adds to them in the transaction of the
    change, so pages read a few rows instead of scanning every annotation."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="tallies", db_index=False)
    kind = models.CharField(max_length=24)
    key = models.CharField(max_length=400)
    n = models.BigIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["project", "kind", "key"], name="tally_unique"),
        ]

    def __str__(self) -> str:
        return f"{self.kind} {self.key} = {self.n}"


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
