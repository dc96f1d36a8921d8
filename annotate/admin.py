"""The Django admin for projects (with their labels and members) and items.

Permissions come from memberships, not from Django's model permissions: a superuser may do
everything, a lead (a staff user who manages projects) may do everything in the projects
they manage and sees nothing else, and any other staff user sees no LabelLoop model.

Project, label and membership writes go through annotate.projects, because renaming a
label rewrites annotations, a new overlap re-derives `Item.is_complete`, and a label in use
or a project's last manager cannot be removed. An item's gold state goes through annotate.gold,
because a gold item's true value is its final label (and the tallies count it). A refused write
is shown as an error message and the form is shown again.
"""

from django import forms
from django.contrib import admin, messages
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.db import connection, models, transaction
from django.db.models import Count
from django.http import HttpResponseRedirect
from django.urls import reverse
from django.utils.html import format_html, format_html_join

from annotate.gold import item_gold_clear, item_gold_set
from annotate.models import (
    Annotation,
    FinalSource,
    Item,
    Label,
    Membership,
    PickKind,
    Project,
    Review,
    Tally,
)
from annotate.projects import (
    LABEL_FIELDS,
    PROJECT_FIELDS,
    label_create,
    label_delete,
    label_list,
    label_update,
    membership_add,
    membership_pause,
    membership_remove,
    membership_resume,
    membership_update,
    project_create,
    project_list_managed_by,
    project_update,
)
from annotate.quality.finals import final_tallies
from annotate.quality.gold import gold_accuracy
from annotate.quality.rebuild import project_quality_rebuild
from annotate.quality.tallies import tallies_add
from annotate.queue import queue_order_changed
from annotate.review import review_history
from annotate.values import annotation_value_validate

admin.site.site_header = "LabelLoop admin"

# The models a quality recount reads and writes (annotate.quality.rebuild).
QUALITY_MODELS = {"Item": Item, "Annotation": Annotation, "Label": Label, "Tally": Tally, "Review": Review}

# Request attributes: the managed project ids (read once per request) and the refusals
# collected while saving (so the response shows the form again instead of "saved").
_MANAGED_IDS = "_labelloop_managed_project_ids"
_REFUSALS = "_labelloop_admin_refusals"


def managed_project_ids(request) -> frozenset[int]:
    if not hasattr(request, _MANAGED_IDS):
        ids = project_list_managed_by(user=request.user).values_list("id", flat=True)
        setattr(request, _MANAGED_IDS, frozenset(ids))
    return getattr(request, _MANAGED_IDS)


def may_manage(request, project_id: int | None) -> bool:
    """Whether the admin user may manage the project; with None, whether they manage any."""
    user = request.user
    if not (user.is_active and user.is_staff):
        return False
    if user.is_superuser:
        return True
    managed = managed_project_ids(request)
    return bool(managed) if project_id is None else project_id in managed


def _refuse(request, error: ValidationError) -> None:
    for message in error.messages:
        messages.error(request, message)
    setattr(request, _REFUSALS, True)


def _was_refused(request) -> bool:
    return getattr(request, _REFUSALS, False)


def _adopt(target: models.Model, saved: models.Model) -> None:
    """Make the admin's unsaved form instance stand for the row a service created."""
    for field in saved._meta.concrete_fields:
        setattr(target, field.attname, getattr(saved, field.attname))
    target._state.adding = False
    target._state.db = saved._state.db


class ManagedProjectFilter(admin.RelatedFieldListFilter):
    """The project filter, offering only the projects the admin user manages."""

    def field_choices(self, field, request, model_admin):
        return field.get_choices(
            include_blank=False,
            ordering=self.field_admin_ordering(field, request, model_admin),
            limit_choices_to={"pk__in": project_list_managed_by(user=request.user)},
        )


class ManagedByLeadAdmin(admin.ModelAdmin):
    """Permissions from memberships: a superuser may do everything, a lead everything in the
    projects they manage (`project_id_of` names an object's project); read-only models turn
    `allow_add` / `allow_delete` off."""

    allow_add = True
    allow_delete = True

    def project_id_of(self, obj) -> int:
        return obj.project_id

    def get_queryset(self, request):
        managed = project_list_managed_by(user=request.user)
        return super().get_queryset(request).filter(project__in=managed.values("pk"))

    def _may(self, request, obj) -> bool:
        return may_manage(request, self.project_id_of(obj) if obj is not None else None)

    def has_module_permission(self, request):
        return may_manage(request, None)

    def has_view_permission(self, request, obj=None):
        return self._may(request, obj)

    def has_change_permission(self, request, obj=None):
        return self._may(request, obj)

    def has_delete_permission(self, request, obj=None):
        return self.allow_delete and self._may(request, obj)

    def has_add_permission(self, request):
        return self.allow_add and may_manage(request, None)


# Projects, with their labels and members ------------------------------------------------


class _ProjectInline(admin.TabularInline):
    """An inline whose permissions are those of its parent project; None is the add page."""

    extra = 0

    def _may(self, request, obj) -> bool:
        return may_manage(request, obj.pk if obj is not None else None)

    def has_view_permission(self, request, obj=None):
        return self._may(request, obj)

    def has_add_permission(self, request, obj):
        return self._may(request, obj)

    def has_change_permission(self, request, obj=None):
        return self._may(request, obj)

    def has_delete_permission(self, request, obj=None):
        return self._may(request, obj)


class LabelInline(_ProjectInline):
    model = Label
    fields = LABEL_FIELDS


class MembershipInlineForm(forms.ModelForm):
    class Meta:
        model = Membership
        fields = ("user", "role", "paused", "paused_reason")

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # A member's role may change, never who the member is: that is a removal and an addition.
        if self.instance.pk is not None:
            self.fields["user"].disabled = True


class MembershipInline(_ProjectInline):
    model = Membership
    form = MembershipInlineForm
    fields = ("user", "role", "paused", "paused_reason", "gold")
    # Kept by each submit on a gold item (annotate/queue.py): never typed in.
    readonly_fields = ("gold",)

    @admin.display(description="gold accuracy")
    def gold(self, obj: Membership) -> str:
        if obj.pk is None:
            return "–"
        accuracy = gold_accuracy(answers=obj.gold_answers, correct=obj.gold_correct)
        if accuracy.accuracy is None:
            return "no gold answers"
        return (
            f"{accuracy.accuracy:.0%} ({accuracy.correct} of {accuracy.answers};"
            f" 95% interval {accuracy.low:.0%}–{accuracy.high:.0%})"
        )

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        if db_field.name == "user":
            kwargs["queryset"] = get_user_model().objects.filter(is_active=True).order_by("username")
        return super().formfield_for_foreignkey(db_field, request, **kwargs)


@admin.register(Project)
class ProjectAdmin(ManagedByLeadAdmin):
    list_display = ("name", "task_type", "multi_label", "overlap", "item_count", "created_at")
    search_fields = ("name",)
    ordering = ("id",)
    fields = (*PROJECT_FIELDS, "created_by", "created_at")
    inlines = (LabelInline, MembershipInline)
    actions = ["retrain_now"]

    @admin.action(description="Retrain now")
    def retrain_now(self, request, queryset):
        # The admin is the web layer: it may call into training (annotate's domain never does).
        from training.runs import training_run_request
        from training.versions import NoModelForTask

        for project in queryset:
            try:
                run, created = training_run_request(
                    project=project, trigger="admin", requested_by=request.user
                )
            except NoModelForTask as exc:
                self.message_user(request, f"{project}: {exc}", messages.ERROR)
                continue
            if created:
                self.message_user(request, f"{project}: training run {run.pk} queued.")
            else:
                self.message_user(
                    request,
                    f"{project}: a run is already {run.status} (run {run.pk}); this request joins it.",
                    messages.WARNING,
                )

    def get_queryset(self, request):
        managed = project_list_managed_by(user=request.user)
        # Ordered here too: the autocomplete view paginates this queryset without the admin ordering.
        return (
            Project.objects.filter(pk__in=managed.values("pk"))
            .annotate(item_count=Count("items"))
            .order_by("id")
        )

    def get_readonly_fields(self, request, obj=None):
        readonly = ("created_by", "created_at")
        # project_update refuses a new task type once there are items; don't offer it.
        if obj is not None and obj.items.exists():
            readonly = ("task_type", *readonly)
        return readonly

    @admin.display(description="items", ordering="item_count")
    def item_count(self, obj: Project) -> int:
        return obj.item_count

    def project_id_of(self, obj: Project) -> int:
        return obj.pk

    def save_model(self, request, obj, form, change):
        fields = {name: form.cleaned_data[name] for name in PROJECT_FIELDS if name in form.cleaned_data}
        if not change:
            _adopt(obj, project_create(created_by=request.user, **fields))
            return
        changed = {name: value for name, value in fields.items() if name in form.changed_data}
        # The form has already written the new values onto `obj`; the service must compare
        # them with the stored row to notice a new overlap.
        try:
            _adopt(obj, project_update(project=Project.objects.get(pk=obj.pk), **changed))
        except ValidationError as error:
            _refuse(request, error)

    def save_formset(self, request, form, formset, change):
        formset.new_objects, formset.changed_objects, formset.deleted_objects = [], [], []
        if formset.model is Label:
            self._save_labels(request, formset)
        elif formset.model is Membership:
            self._save_memberships(request, formset)
        else:
            super().save_formset(request, form, formset, change)

    def _split(self, formset):
        """The formset's forms as (to delete, to change, to add), each with the stored row."""
        deleted_forms = formset.deleted_forms if formset.can_delete else []
        to_delete, to_change, to_add = [], [], []
        for form in formset.forms:
            pk = form.instance.pk if form in formset.initial_forms else None
            if form in deleted_forms:
                if pk is not None:
                    # Re-read: the form has already written its edits onto form.instance.
                    to_delete.append((form, formset.model.objects.get(pk=pk)))
            elif pk is not None:
                if form.has_changed():
                    to_change.append((form, formset.model.objects.get(pk=pk)))
            elif form.has_changed():
                to_add.append((form, None))
        return to_delete, to_change, to_add

    def _apply(self, request, service, **kwargs) -> tuple[bool, object]:
        """Run one service in its own savepoint: (True, its result), or (False, None) with its
        message shown when it refuses."""
        try:
            with transaction.atomic():
                return True, service(**kwargs)
        except ValidationError as error:
            _refuse(request, error)
            return False, None

    def _save_labels(self, request, formset) -> None:
        project = formset.instance
        to_delete, to_change, to_add = self._split(formset)
        for _form, label in to_delete:
            done, _ = self._apply(request, label_delete, label=label)
            if done:
                formset.deleted_objects.append(label)
        for form, label in to_change:
            changed = {name: form.cleaned_data[name] for name in form.changed_data if name in LABEL_FIELDS}
            done, saved = self._apply(request, label_update, label=label, **changed)
            if done:
                formset.changed_objects.append((saved, list(changed)))
        for form, _ in to_add:
            values = {name: form.cleaned_data[name] for name in LABEL_FIELDS if name in form.cleaned_data}
            done, saved = self._apply(request, label_create, project=project, **values)
            if done:
                formset.new_objects.append(saved)

    def _save_memberships(self, request, formset) -> None:
        project = formset.instance
        to_delete, to_change, to_add = self._split(formset)
        # Additions and promotions before demotions and removals, so that handing the
        # manager role to someone else in one save never leaves the project without one.
        for form, _ in to_add:
            done, saved = self._apply(
                request,
                _membership_add_and_pause,
                project=project,
                user=form.cleaned_data["user"],
                role=form.cleaned_data["role"],
                paused=form.cleaned_data.get("paused", False),
                reason=form.cleaned_data.get("paused_reason", ""),
            )
            if done:
                formset.new_objects.append(saved)
        to_change.sort(key=lambda pair: pair[0].cleaned_data["role"] != Membership.Role.MANAGER)
        for form, membership in to_change:
            changed = [name for name in ("role", "paused", "paused_reason") if name in form.changed_data]
            done, saved = self._apply(
                request,
                _membership_change,
                membership=membership,
                changed=changed,
                role=form.cleaned_data["role"],
                paused=form.cleaned_data.get("paused", False),
                reason=form.cleaned_data.get("paused_reason", ""),
            )
            if done:
                formset.changed_objects.append((saved, changed))
        for _form, membership in to_delete:
            done, _ = self._apply(request, membership_remove, membership=membership)
            if done:
                formset.deleted_objects.append(membership)

    def response_add(self, request, obj, post_url_continue=None):
        if _was_refused(request):
            return HttpResponseRedirect(reverse("admin:annotate_project_change", args=[obj.pk]))
        return super().response_add(request, obj, post_url_continue)

    def response_change(self, request, obj):
        if _was_refused(request):
            return HttpResponseRedirect(request.path)
        return super().response_change(request, obj)


def _membership_add_and_pause(*, project: Project, user, role: str, paused: bool, reason: str) -> Membership:
    membership = membership_add(project=project, user=user, role=role)
    return membership_pause(membership=membership, reason=reason) if paused else membership


def _membership_change(
    *, membership: Membership, changed: list[str], role: str, paused: bool, reason: str
) -> Membership:
    """The inline row's changes through the services: the role, then the pause (a new reason
    for a paused member pauses them again with it)."""
    if "role" in changed:
        membership = membership_update(membership=membership, role=role)
    if paused and ("paused" in changed or "paused_reason" in changed):
        membership = membership_pause(membership=membership, reason=reason)
    elif not paused and "paused" in changed:
        membership = membership_resume(membership=membership)
    return membership


# Items ----------------------------------------------------------------------------------


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
