"""Dataset snapshots, model versions and their predictions.

training writes the columns annotate reads (Item.priority); annotate never imports training.
"""

from django.conf import settings
from django.db import models
from django.db.models import Q

from annotate.models import Item, Project


class DatasetSnapshot(models.Model):
    """The final labels a run trained on, frozen with their item ids and the split."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="dataset_snapshots")
    created_at = models.DateTimeField(auto_now_add=True)
    classes = models.JSONField(help_text="Label names in class-index order.")
    multi_label = models.BooleanField(default=False)
    # Parallel lists: item ids and their final values ({"choices": [...]}), item id order.
    item_ids = models.JSONField()
    values = models.JSONField()
    validation_ids = models.JSONField(help_text="Items on the validation side for this run.")
    # Classes that had no validation item lend their smallest-hash item for this run only:
    # {class name: item id}.
    lent = models.JSONField(default=dict, blank=True)
    # sha256 of (classes, items, values, split): one run per (project, snapshot).
    fingerprint = models.CharField(max_length=64)

    class Meta:
        ordering = ["-id"]
        indexes = [models.Index(fields=["project", "fingerprint"], name="snapshot_fingerprint_idx")]

    def __str__(self) -> str:
        return f"snapshot {self.pk} of {self.project} ({len(self.item_ids)} labels)"

    @property
    def n_train(self) -> int:
        return len(self.item_ids) - len(self.validation_ids)

    @property
    def n_validation(self) -> int:
        return len(self.validation_ids)


class ModelVersion(models.Model):
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="model_versions")
    number = models.PositiveIntegerField(help_text="1, 2, 3… within the project.")
    backend = models.CharField(max_length=64)
    params = models.JSONField(default=dict, blank=True)
    # RESTRICT, not PROTECT: a snapshot a version trained on cannot be deleted alone, but a project's
    # deletion takes both (PROTECT refused that: a trained project could not be deleted, a 500).
    dataset = models.ForeignKey(DatasetSnapshot, on_delete=models.RESTRICT, related_name="versions")
    metrics = models.JSONField(default=dict, blank=True)
    # Folder under MEDIA_ROOT holding the artifact files (JSON, .npz, torch state_dict).
    artifact_path = models.CharField(max_length=500)
    confusion_svg = models.TextField(blank=True)
    learning_curve_svg = models.TextField(blank=True)
    timings = models.JSONField(default=dict, blank=True, help_text="Seconds per phase.")
    created_at = models.DateTimeField(auto_now_add=True)
    is_active = models.BooleanField(default=False)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["project_id", "-number"]
        constraints = [
            models.UniqueConstraint(
                fields=["project"], condition=Q(is_active=True), name="model_version_one_active_per_project"
            ),
            models.UniqueConstraint(fields=["project", "number"], name="model_version_number_unique"),
        ]

    def __str__(self) -> str:
        return f"{self.project} v{self.number}"

    @property
    def accuracy(self) -> float | None:
        return self.metrics.get("accuracy")

    @property
    def loss_curve_svg(self) -> str:
        """The image network's loss per epoch: the evaluation fit's (fold 1) training and validation
        curves, or the fit's own where no folds ran; "" for models without epochs."""
        from training.pictures import loss_curve_svg

        fit, refit = self.metrics.get("fit") or {}, self.metrics.get("refit") or {}
        if refit.get("loss_curve"):
            curve, best = refit["loss_curve"], refit.get("best_epoch_of_fold_1")
            note = (
                f"fold 1 of the evaluation; the final fit then trained {refit['epochs']} epochs on all labels"
            )
        elif fit.get("loss_curve"):
            curve, best = fit["loss_curve"], fit.get("best_epoch") if fit.get("validation_rows") else None
            note = (
                f"{fit.get('validation_rows', 0)} labels held out for validation"
                if best
                else "no validation slice"
            )
        else:
            return ""
        return loss_curve_svg(curve.get("train", []), curve.get("validation", []), best_epoch=best, note=note)

    @property
    def c_search_rows(self) -> list[tuple[float, float, bool]]:
        """The final fit's search of C (text models with C_search): (C, held-out log loss, chosen)."""
        search = (self.metrics.get("fit") or {}).get("c_search") or {}
        chosen = search.get("chosen")
        return [
            (c, loss, c == chosen)
            for c, loss in zip(search.get("grid", []), search.get("log_loss", []), strict=True)
        ]


class Prediction(models.Model):
    item = models.ForeignKey(Item, on_delete=models.CASCADE, related_name="predictions")
    model_version = models.ForeignKey(ModelVersion, on_delete=models.CASCADE, related_name="predictions")
    value = models.JSONField(help_text='The proposed value, {"choices": [...]}')
    probabilities = models.JSONField(help_text="Class probabilities in the version's class order.")
    score = models.FloatField(help_text="Confidence of the proposal, 0–1.")
    uncertainty = models.FloatField(help_text="The sampling strategy's score; higher is served first.")

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["item", "model_version"], name="prediction_unique_per_version"),
        ]
        indexes = [
            # The item browser sorted by the model's confidence (annotate/browser/pages.py): a version's
            # predictions in score order. 80 against 9 ms p95 at 100,000 items.
            models.Index(fields=["model_version", "score", "item"], name="prediction_version_score_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.value} for item {self.item_id} (v{self.model_version_id})"


class TrainingRun(models.Model):
    """One request to retrain a project (or to switch its active version): queued → running →
    succeeded | failed | cancelled."""

    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        SUCCEEDED = "succeeded", "Succeeded"
        FAILED = "failed", "Failed"
        CANCELLED = "cancelled", "Cancelled"

    class Kind(models.TextChoices):
        TRAIN = "train", "Train a new version"
        ACTIVATE = "activate", "Activate a version"

    OPEN_STATUSES = (Status.QUEUED, Status.RUNNING)

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="training_runs")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.QUEUED)
    # An activation run trains nothing: it scores the pool with `model_version`, set when it is
    # requested, then activates it (the admin's rollback).
    kind = models.CharField(max_length=16, choices=Kind.choices, default=Kind.TRAIN)
    trigger = models.CharField(
        max_length=100, help_text="What asked for it: admin, project page, api, auto …"
    )
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    progress = models.PositiveSmallIntegerField(default=0, help_text="0–100")
    phase = models.CharField(max_length=32, blank=True)
    error = models.TextField(blank=True)
    cancel_requested = models.BooleanField(default=False)
    dataset_size = models.PositiveIntegerField(
        null=True, blank=True, help_text="Labeled items it trained on."
    )
    items_scored = models.PositiveIntegerField(default=0)
    model_version = models.ForeignKey(
        ModelVersion, null=True, blank=True, on_delete=models.SET_NULL, related_name="runs"
    )
    # The newest annotation when it was requested: "every N new labels" counts from here.
    last_annotation_id = models.BigIntegerField(default=0)

    class Meta:
        ordering = ["-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["project"],
                condition=Q(status__in=["queued", "running"]),
                name="training_run_one_open_per_project",
            ),
        ]
        indexes = [
            models.Index(fields=["status", "heartbeat_at"], name="training_run_heartbeat_idx"),
        ]

    def __str__(self) -> str:
        return f"run {self.pk} of {self.project} ({self.status})"

    @property
    def is_open(self) -> bool:
        return self.status in self.OPEN_STATUSES
