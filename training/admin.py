"""Model versions in the admin: their metrics and pictures, and "Activate this version" to roll back.

Activating queues an activation run: the pool is re-scored with the version in the background,
then it becomes active, so the queue's order and its proposals come from it. Scoped like the
annotate admin: a lead sees only the versions of projects they manage.
"""

from django.contrib import admin, messages
from django.utils.html import format_html
from django.utils.safestring import mark_safe

from annotate.admin import ManagedByLeadAdmin, ManagedProjectFilter
from training.evaluation import labels_line
from training.models import ModelVersion, TrainingRun
from training.runs import training_run_cancel, training_run_request_activation
from training.versions import metric_headline


@admin.register(ModelVersion)
class ModelVersionAdmin(ManagedByLeadAdmin):
    allow_add = allow_delete = False

    class Media:
        css = {"all": ["annotate/css/admin.css"]}  # .labelloop-picture, the pictures' width

    list_display = (
        "__str__",
        "project",
        "backend",
        "accuracy_shown",
        "training_labels",
        "created_at",
        "is_active",
    )
    list_filter = (("project", ManagedProjectFilter), "is_active", "backend")
    list_select_related = ("project",)
    ordering = ("project_id", "-number")
    actions = ["activate"]
    fields = (
        "project", "number", "backend", "is_active", "created_at", "created_by", "summary", "confusion",
        "learning_curve", "params", "timings", "artifact_path",
    )  # fmt: skip
    readonly_fields = fields

    @admin.display(description="accuracy / entity F1")
    def accuracy_shown(self, obj: ModelVersion) -> str:
        name, value = metric_headline(obj.metrics)
        return f"{value:.3f}" if name == "accuracy" else f"F1 {value:.3f}"

    @admin.display(description="training labels")
    def training_labels(self, obj: ModelVersion) -> int:
        return obj.metrics.get("n_train", 0)

    @admin.display(description="metrics")
    def summary(self, obj: ModelVersion) -> str:
        m = obj.metrics
        if m.get("task") == "spans":
            per_label = ", ".join(
                f"{name} {row['f1']:.3f} ({row['support']})" for name, row in m.get("per_class", {}).items()
            )
            return format_html(
                "entity F1 {} (precision {}, recall {}; seqeval, strict IOB2), per label: {}; {}",
                f"{m.get('f1', 0):.3f}", f"{m.get('precision', 0):.3f}", f"{m.get('recall', 0):.3f}",
                per_label or "—", labels_line(m),
            )  # fmt: skip
        low, high = m.get("accuracy_ci", [0, 0])
        return format_html(
            "accuracy {} (95% CI {}–{}), macro-F1 {}, {}",
            f"{m.get('accuracy', 0):.3f}", f"{low:.3f}", f"{high:.3f}", f"{m.get('macro_f1', 0):.3f}",
            labels_line(m),
        )  # fmt: skip

    # The SVGs are drawn by training/pictures.py, which escapes every label.
    @admin.display(description="confusion matrix")
    def confusion(self, obj: ModelVersion) -> str:
        return (
            mark_safe(f'<div class="labelloop-picture">{obj.confusion_svg}</div>')
            if obj.confusion_svg
            else "—"
        )

    @admin.display(description="learning curve")
    def learning_curve(self, obj: ModelVersion) -> str:
        return mark_safe(f'<div class="labelloop-picture">{obj.learning_curve_svg}</div>')

    @admin.action(description="Activate this version")
    def activate(self, request, queryset):
        chosen = list(queryset)
        if len({v.project_id for v in chosen}) != len(chosen):
            self.message_user(request, "Choose at most one version per project.", messages.ERROR)
            return
        for version in chosen:
            run, created = training_run_request_activation(version=version, requested_by=request.user)
            if created:
                self.message_user(
                    request,
                    f"{version} becomes the active model of {version.project} once the pool is re-scored "
                    f"with it (run {run.pk}).",
                )
            elif run.kind == TrainingRun.Kind.ACTIVATE and run.model_version_id == version.pk:
                self.message_user(request, f"{version} is already being activated (run {run.pk}).")
            else:
                self.message_user(
                    request,
                    f"{version.project}: run {run.pk} is {run.status}; activate {version} once it has ended.",
                    messages.WARNING,
                )


@admin.register(TrainingRun)
class TrainingRunAdmin(ManagedByLeadAdmin):
    allow_add = allow_delete = False
    list_display = (
        "__str__",
        "project",
        "status",
        "kind",
        "phase",
        "progress",
        "trigger",
        "created_at",
        "finished_at",
    )
    list_filter = (("project", ManagedProjectFilter), "status", "kind")
    list_select_related = ("project",)
    actions = ["cancel"]
    fields = (
        "project", "status", "kind", "phase", "progress", "trigger", "requested_by", "created_at",
        "started_at", "heartbeat_at", "finished_at", "dataset_size", "items_scored", "model_version", "error",
    )  # fmt: skip
    readonly_fields = fields

    @admin.action(description="Cancel the run")
    def cancel(self, request, queryset):
        for run in queryset:
            if not run.is_open:
                self.message_user(request, f"{run} has already ended.", messages.WARNING)
                continue
            run = training_run_cancel(run=run)
            self.message_user(request, f"{run}: cancelled" if not run.is_open else f"{run}: stopping…")
