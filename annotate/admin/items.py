"""The admin for items, with their annotations (read-only) and the gold actions.

An item's gold state goes through annotate.gold, because a gold item's true value is its final
label (and the tallies count it). Deleting items recounts their projects' tallies. A refused
write is shown as an error message and the form is shown again.
"""

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import ValidationError
from django.db import connection, transaction
from django.http import HttpResponseRedirect
from django.urls import reverse
from django.utils.html import format_html, format_html_join

from annotate.admin.base import (
    ManagedByLeadAdmin,
    ManagedProjectFilter,
    _adopt,
    _refuse,
    _was_refused,
    may_manage,
)
from annotate.gold import item_gold_clear, item_gold_set
from annotate.models import Annotation, FinalSource, Item, Label, PickKind, Project, Review, Tally
from annotate.projects import label_list, project_list_managed_by
from annotate.quality.finals import final_tallies
from annotate.quality.rebuild import project_quality_rebuild
from annotate.quality.tallies import tallies_add
from annotate.queue import queue_order_changed
from annotate.review import review_history
from annotate.values import annotation_value_validate

# The models a quality recount reads and writes (annotate.quality.rebuild).
QUALITY_MODELS = {"Item": Item, "Annotation": Annotation, "Label": Label, "Tally": Tally, "Review": Review}


class AnnotationInline(admin.TabularInline):
    """An item's annotations, read-only: annotations are append-only."""

    model = Annotation
    fk_name = "item"
    fields = ("annotator", "value", "counted", "late", "active_ms", "source", "created_at")
    readonly_fields = fields
    extra = 0
    max_num = 0
    can_delete = False
    show_change_link = False

    def has_view_permission(self, request, obj=None):
        return may_manage(request, obj.project_id if obj is not None else None)

    def has_add_permission(self, request, obj):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


class ItemAdminForm(forms.ModelForm):
    """The item form; a gold item's true value is checked against the project's labels here, so
    that a bad value is named under its field and nothing is saved."""

    class Meta:
        model = Item
        fields = (
            "project",
            "external_id",
            "text",
            "image",
            "width",
            "height",
            "metadata",
            "priority",
            "pick_kind",
            "gold_value",
        )
        help_texts = {
            "pick_kind": "Gold: the item is served as part of each annotator's gold share, unannounced,"
            " and their answers are checked against its true value.",
            "gold_value": 'The true value of a gold item, {"choices": ["a label name", ...]}; it becomes the'
            " item's final label.",
        }

    def clean(self):
        data = super().clean()
        if "pick_kind" not in self.fields or "pick_kind" not in data:
            return data
        project = self.instance.project if self.instance.pk else data.get("project")
        value = data.get("gold_value")
        if data["pick_kind"] != PickKind.GOLD:
            if value is not None and "gold_value" in self.changed_data:
                self.add_error("gold_value", "only a gold item has a true value: set the pick kind to gold")
            # Making an item ordinary drops its true value (annotate.gold.item_gold_clear).
            data["gold_value"] = None
        elif value is None:
            self.add_error("gold_value", 'a gold item needs its true value: {"choices": ["a label name"]}')
        elif project is not None:
            names = list(label_list(project=project).values_list("name", flat=True))
            try:
                data["gold_value"] = annotation_value_validate(
                    project=project, label_names=names, value=value, field="gold_value"
                )
            except ValidationError as error:
                self.add_error(None, error)
        return data


@admin.register(Item)
class ItemAdmin(ManagedByLeadAdmin):
    form = ItemAdminForm
    list_display = (
        "external_id",
        "project",
        "short_text",
        "annotation_count",
        "lease_count",
        "is_complete",
        "final_source",
        "pick_kind",
        "priority",
    )
    list_filter = (("project", ManagedProjectFilter), "is_complete", "pick_kind", "final_source")
    list_select_related = ("project",)
    search_fields = ("external_id", "text")
    fields = (
        "project",
        "external_id",
        "text",
        "image",
        "width",
        "height",
        "metadata",
        "priority",
        "pick_kind",
        "gold_value",
        "annotation_count",
        "lease_count",
        "is_complete",
        "final_value",
        "final_source",
        "disagreement",
        "review_state",
        "reviews",
        "created_at",
    )
    # The queue keeps these in the same transaction as each lease and submit; the final label
    # and the review state move with annotations, reviews and gold changes (annotate/quality/).
    readonly_fields = (
        "annotation_count",
        "lease_count",
        "is_complete",
        "final_value",
        "final_source",
        "disagreement",
        "review_state",
        "reviews",
        "created_at",
    )
    inlines = (AnnotationInline,)
    actions = ["mark_gold", "clear_gold"]

    def get_readonly_fields(self, request, obj=None):
        # Moving an item would leave its annotations and leases in the old project.
        if obj is not None:
            return ("project", *self.readonly_fields)
        return self.readonly_fields

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        if db_field.name == "project":
            kwargs["queryset"] = project_list_managed_by(user=request.user).order_by("name")
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    @admin.display(description="text")
    def short_text(self, obj: Item) -> str:
        return obj.text if len(obj.text) <= 60 else obj.text[:59] + "…"

    @admin.display(description="reviews")
    def reviews(self, obj: Item) -> str:
        """The item's review decisions, newest first (append-only: read, never edited here)."""
        rows = list(review_history(item=obj)) if obj.pk else []
        if not rows:
            return "none"
        return format_html(
            "<table><thead><tr><th>when</th><th>reviewer</th><th>decision</th><th>answer of</th>"
            "<th>value</th><th>reason</th></tr></thead><tbody>{}</tbody></table>",
            format_html_join(
                "",
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                (
                    (
                        review.created_at.strftime("%Y-%m-%d %H:%M"),
                        review.reviewer.username,
                        review.get_decision_display(),
                        review.annotation.annotator.username if review.annotation else "–",
                        ", ".join((review.value or {}).get("choices", [])) or "–",
                        review.reason or "–",
                    )
                    for review in rows
                ),
            ),
        )

    @transaction.atomic
    def save_model(self, request, obj, form, change):
        gold_fields = {"pick_kind", "gold_value"}
        wants_gold, gold_value = obj.pick_kind == PickKind.GOLD, obj.gold_value
        was_gold = change and form.initial.get("pick_kind") == PickKind.GOLD
        try:
            with transaction.atomic():
                if not change:
                    # Gold through the service below, never a raw write that skips the final label.
                    obj.pick_kind, obj.gold_value = PickKind.QUEUE, None
                    obj.save()
                    # A new item counts among the items without a label, as an imported one does.
                    with connection.cursor() as cursor:
                        tallies_add(
                            cursor, project_id=obj.project_id, added=final_tallies(None, FinalSource.NONE)
                        )
                else:
                    # Write only what the form changed: saving every field would put back the queue
                    # counters as they were read, undoing a lease or submit made in between.
                    plain = [name for name in form.changed_data if name not in gold_fields]
                    if plain:
                        obj.save(update_fields=plain)
                if not change or "priority" in form.changed_data:
                    # The item may now stand ahead of annotators' bookmarks.
                    queue_order_changed(project_id=obj.project_id)
                if wants_gold and (not change or gold_fields & set(form.changed_data)):
                    _adopt(obj, item_gold_set(project=obj.project, item_id=obj.pk, value=gold_value))
                elif was_gold and not wants_gold:
                    _adopt(obj, item_gold_clear(project=obj.project, item_id=obj.pk))
        except ValidationError as error:
            _refuse(request, error)

    def delete_model(self, request, obj):
        self.delete_queryset(request, Item.objects.filter(pk=obj.pk))

    @transaction.atomic
    def delete_queryset(self, request, queryset):
        # The deleted items' votes, final labels and completions leave the tallies: recount the
        # projects they were in (deleting items is rare; a recount is exact).
        projects = list(Project.objects.filter(pk__in=queryset.values("project_id")))
        super().delete_queryset(request, queryset)
        for project in projects:
            project_quality_rebuild(project=project, models=QUALITY_MODELS)

    def save_formset(self, request, form, formset, change):
        if formset.model is Annotation:
            formset.new_objects, formset.changed_objects, formset.deleted_objects = [], [], []
            return
        super().save_formset(request, form, formset, change)

    def response_add(self, request, obj, post_url_continue=None):
        if _was_refused(request):
            return HttpResponseRedirect(reverse("admin:annotate_item_changelist"))
        return super().response_add(request, obj, post_url_continue)

    def response_change(self, request, obj):
        if _was_refused(request):
            return HttpResponseRedirect(request.path)
        return super().response_change(request, obj)

    @admin.action(description="Mark as gold, with their final label as true value")
    def mark_gold(self, request, queryset):
        done, without = 0, []
        for item in queryset.select_related("project").exclude(pick_kind=PickKind.GOLD):
            if item.final_value is None:
                without.append(item.external_id)
                continue
            try:
                item_gold_set(project=item.project, item_id=item.pk, value=item.final_value)
            except ValidationError as error:
                _refuse(request, error)
            else:
                done += 1
        self.message_user(request, f"{done} item{'s' if done != 1 else ''} marked as gold.")
        if without:
            self.message_user(
                request,
                f"{len(without)} without a final label left as they were (mark them on their page with"
                f" a true value): {', '.join(without[:20])}{' …' if len(without) > 20 else ''}",
                messages.WARNING,
            )

    @admin.action(description="Make ordinary again (not gold)")
    def clear_gold(self, request, queryset):
        done = 0
        for item in queryset.select_related("project").filter(pick_kind=PickKind.GOLD):
            item_gold_clear(project=item.project, item_id=item.pk)
            done += 1
        self.message_user(request, f"{done} gold item{'s' if done != 1 else ''} made ordinary again.")
