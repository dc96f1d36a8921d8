"""The admin for projects, with their labels and members as inlines, and "Retrain now".

Project, label and membership writes go through annotate.projects, because renaming a
label rewrites annotations, a new overlap re-derives `Item.is_complete`, and a label in use
or a project's last manager cannot be removed. A refused write is shown as an error message
and the form is shown again.
"""

from django import forms
from django.contrib import admin, messages
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Count
from django.http import HttpResponseRedirect
from django.urls import reverse

from annotate.admin.base import ManagedByLeadAdmin, _adopt, _refuse, _was_refused, may_manage
from annotate.models import Label, Membership, Project
from annotate.models.projects import training_params_refused
from annotate.projects import (
    LABEL_FIELDS,
    PROJECT_FIELDS,
    label_create,
    label_delete,
    label_update,
    membership_add,
    membership_pause,
    membership_remove,
    membership_resume,
    membership_update,
    project_create,
    project_delete,
    project_list_managed_by,
    project_update,
)
from annotate.quality.gold import gold_accuracy


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


class ProjectAdminForm(forms.ModelForm):
    """The project form; `requester` (set per request by ProjectAdmin.get_form) is the admin user,
    who must manage a start_from's project (a check Project.clean cannot make: it has no user)."""

    requester = None

    def clean_training_params(self):
        # Before the model's own checks (_post_clean): a version the requester may not use reads
        # as one that does not exist. self.instance still holds the stored values.
        params = self.cleaned_data["training_params"]
        project = self.instance if self.instance.pk is not None else None
        why = training_params_refused(project=project, params=params, user=self.requester)
        if why:
            raise ValidationError(why)
        return params


@admin.register(Project)
class ProjectAdmin(ManagedByLeadAdmin):
    list_display = ("name", "task_type", "multi_label", "overlap", "item_count", "created_at")
    search_fields = ("name",)
    ordering = ("id",)
    fields = (*PROJECT_FIELDS, "created_by", "created_at")
    inlines = (LabelInline, MembershipInline)
    actions = ["retrain_now"]
    form = ProjectAdminForm

    def get_form(self, request, obj=None, change=False, **kwargs):
        form = super().get_form(request, obj, change, **kwargs)
        # A subclass per request, so that no user is ever left on a shared class.
        return type(form.__name__, (form,), {"requester": request.user})

    def get_deleted_objects(self, objs, request):
        """What deleting the project takes (listed on the confirmation page). Whoever may delete
        the project may delete everything in it: the models it cascades to (versions, runs,
        predictions) need no delete permission of their own, which the admin would otherwise ask."""
        deleted, counts, _perms_needed, protected = super().get_deleted_objects(objs, request)
        return deleted, counts, set(), protected

    def delete_model(self, request, obj):
        project_delete(project=obj, actor=request.user)

    def delete_queryset(self, request, queryset):
        for project in queryset:
            project_delete(project=project, actor=request.user)

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
                actor=request.user,
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
                actor=request.user,
                membership=membership,
                changed=changed,
                role=form.cleaned_data["role"],
                paused=form.cleaned_data.get("paused", False),
                reason=form.cleaned_data.get("paused_reason", ""),
            )
            if done:
                formset.changed_objects.append((saved, changed))
        for _form, membership in to_delete:
            done, _ = self._apply(request, membership_remove, membership=membership, actor=request.user)
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


def _membership_add_and_pause(
    *, actor, project: Project, user, role: str, paused: bool, reason: str
) -> Membership:
    membership = membership_add(project=project, user=user, role=role, actor=actor)
    return membership_pause(membership=membership, reason=reason, actor=actor) if paused else membership


def _membership_change(
    *, actor, membership: Membership, changed: list[str], role: str, paused: bool, reason: str
) -> Membership:
    """The inline row's changes through the services: the role, then the pause (a new reason
    for a paused member pauses them again with it)."""
    if "role" in changed:
        membership = membership_update(membership=membership, role=role, actor=actor)
    if paused and ("paused" in changed or "paused_reason" in changed):
        membership = membership_pause(membership=membership, reason=reason, actor=actor)
    elif not paused and "paused" in changed:
        membership = membership_resume(membership=membership, actor=actor)
    return membership
