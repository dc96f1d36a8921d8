"""Projects, their labels and their members (roles, queue bookmarks, gold counters, pauses)."""

import secrets
from collections.abc import Callable

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import Q


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
    # Image imports (annotate/importing/remote.py): off, a row naming an image by URL is refused.
    fetch_image_urls = models.BooleanField(
        default=False,
        help_text="Imports may name images by http(s) URL; the studio fetches them from public"
        " addresses only, with a size and a time limit.",
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
            ("margin_diversity", "Margin + diversity (uncertain items from different clusters)"),
            ("least_confidence", "Least confidence"),
            ("entropy", "Entropy"),
            ("random", "Random"),
        ],
        default="margin",
        help_text="How the active model orders the queue.",
    )
    # The model text classification trains (training/versions.py backend_for_project).
    text_model = models.CharField(
        max_length=16,
        choices=[
            ("ngrams", "Hashed n-grams + logistic regression (default)"),
            ("encoder", "Sentence encoder (all-MiniLM-L6-v2) + logistic regression"),
        ],
        default="ngrams",
        help_text="Text classification: the encoder learns from fewer labels and embeds each text once"
        " (about 10 s per 1,000 texts on one core).",
    )
    # Hyper-parameters the lead changed, by name; the rest keep the backend's defaults
    # (training/hyperparams.py: which there are, and their ranges).
    training_params = models.JSONField(
        default=dict,
        blank=True,
        help_text="The model's hyper-parameters you changed, as a JSON object of name: value; each"
        " version records the whole set it was trained with.",
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
    # Active learning's proof (training/evaluation.py): a share of queue picks drawn uniformly at
    # random, served without a proposal, whose labels estimate the model's accuracy without bias.
    random_share = models.FloatField(
        default=0.1,
        help_text="Share of queue picks drawn uniformly at random, to measure the model (0 to 0.5).",
    )
    # Whether the random slice has been drawn and may hold items (annotate/queue_order.py): read
    # from the row the queue already holds, so a project without a slice pays no statement for it.
    random_slice_open = models.BooleanField(default=False, editable=False)
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
                condition=Q(random_share__gte=0, random_share__lte=0.5), name="project_random_share_0_to_half"
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
        if self.text_model != "ngrams":
            if self.task_type != self.TaskType.TEXT_CLASSIFICATION:
                raise ValidationError({"text_model": "the text model applies to text classification only"})
            why = text_model_unavailable(self.text_model)
            if why:
                raise ValidationError({"text_model": why})
        if self.training_params:
            why = TRAINING_PARAMS_CHECK[0](self) if TRAINING_PARAMS_CHECK else "no training app is installed"
            if why:
                raise ValidationError({"training_params": why})
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


# Whether a text model other than the n-grams can run here: {text_model: check}, each check
# returning None or why not. training registers them (TrainingConfig.ready): annotate never
# imports training.
TEXT_MODEL_CHECKS: dict[str, Callable[[], str | None]] = {}


# The check of a project's training_params (one, registered by training: training/hyperparams.py),
# returning None or what is wrong, naming the parameter; and what the project's can be, for a form.
TRAINING_PARAMS_CHECK: list[Callable[["Project"], str | None]] = []
TRAINING_PARAMS_DESCRIBE: list[Callable[["Project"], str]] = []
# The check of training_params that needs the requester, which Project.clean lacks (one, registered
# by training: a start_from must name a version of a project they manage; training/transfer.py),
# called with (the stored project or None, the new training_params, the user) and returning None
# or what is wrong, naming the parameter. The settings page, the API and the admin call it through
# training_params_refused before saving.
TRAINING_PARAMS_USER_CHECK: list[Callable[["Project | None", object, object], str | None]] = []


def training_params_refused(*, project: "Project | None", params, user) -> str | None:
    """Why `user` may not give `project` (None: a new one) these training_params, or None."""
    return TRAINING_PARAMS_USER_CHECK[0](project, params, user) if TRAINING_PARAMS_USER_CHECK else None


def text_model_unavailable(name: str) -> str | None:
    """Why the text model `name` cannot be chosen here, or None when it can."""
    check = TEXT_MODEL_CHECKS.get(name)
    if check is None:
        return f"no backend for the text model {name!r} is installed"
    return check()


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
