"""The members page, for a project's managers: add an existing user by username, change a role,
remove a member, pause or resume one with a reason, deactivate an account (annotate/accounts.py
says whose), and see each member's gold accuracy with its
Wilson interval. Every write goes through annotate.projects; a refusal is shown beside the form
that asked for it, with status 400, and nothing changes."""

from django import forms
from django.contrib import messages
from django.contrib.auth import get_user_model
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods, require_POST

from annotate.accounts import account_deactivate
from annotate.models import Membership, Project
from annotate.projects import (
    membership_add,
    membership_list,
    membership_pause,
    membership_remove,
    membership_resume,
    membership_update,
)
from annotate.quality.gold import GOLD_MIN_ANSWERS, gold_accuracy
from annotate.views.access import page_membership


class MemberAddForm(forms.Form):
    username = forms.CharField(max_length=150, help_text="An existing user of the studio.")
    role = forms.ChoiceField(choices=Membership.Role.choices, initial=Membership.Role.ANNOTATOR)

    def clean_username(self):
        username = self.cleaned_data["username"].strip()
        user = get_user_model().objects.filter(username=username, is_active=True).first()
        if user is None:
            raise ValidationError(f"no active user is named {username!r}: add an existing user")
        return user


class MemberChangeForm(forms.Form):
    ACTIONS = [
        ("role", "Change role"),
        ("pause", "Pause"),
        ("resume", "Resume"),
        ("remove", "Remove"),
        ("deactivate", "Deactivate account"),
    ]
    action = forms.ChoiceField(choices=ACTIONS)
    role = forms.ChoiceField(choices=Membership.Role.choices, required=False)
    reason = forms.CharField(max_length=300, required=False, help_text="Shown to the paused member.")

    def clean(self):
        data = super().clean()
        if data.get("action") == "role" and not data.get("role"):
            self.add_error("role", "choose a role")
        return data


def _percent(value: float | None) -> int | None:
    return None if value is None else round(100 * value)


def _rows(project: Project, errors: dict[int, list[str]]) -> list[dict]:
    """Each member with their gold accuracy in percent (None without gold answers) and the
    refusal of a change asked for them, if any."""
    rows = []
    for member in membership_list(project=project):
        accuracy = gold_accuracy(answers=member.gold_answers, correct=member.gold_correct)
        rows.append(
            {
                "member": member,
                "gold": accuracy,
                "gold_percent": _percent(accuracy.accuracy),
                "gold_low": _percent(accuracy.low),
                "gold_high": _percent(accuracy.high),
                "errors": errors.get(member.pk, []),
            }
        )
    return rows


def _page(
    request: HttpRequest,
    membership: Membership,
    *,
    add_form: MemberAddForm | None = None,
    errors: dict[int, list[str]] | None = None,
    status: int = 200,
) -> HttpResponse:
    project = membership.project
    context = {
        "project": project,
        "membership": membership,
        "rows": _rows(project, errors or {}),
        "add_form": add_form or MemberAddForm(),
        "roles": Membership.Role.choices,
        "gold_min_answers": GOLD_MIN_ANSWERS,
    }
    return render(request, "annotate/members.html", context, status=status)


@login_required
@require_http_methods(["GET", "POST"])
def members(request: HttpRequest, project_id: int) -> HttpResponse:
    """The members page; a POST adds a member (an existing member gets the new role)."""
    membership = page_membership(request, project_id, needs="manage")
    if request.method == "GET":
        return _page(request, membership)
    form = MemberAddForm(request.POST)
    if form.is_valid():
        try:
            added = membership_add(
                project=membership.project,
                user=form.cleaned_data["username"],
                role=form.cleaned_data["role"],
                actor=request.user,
            )
        except ValidationError as error:
            _form_errors(form, error)
        else:
            messages.success(request, f"{added.user.username} is now {added.get_role_display().lower()}.")
            return redirect("annotate:members", project_id=project_id)
    return _page(request, membership, add_form=form, status=400)


def _form_errors(form: forms.Form, error: ValidationError, *, default: str | None = None) -> None:
    """A service's refusal onto the form: under its field when the form has it, else under `default`."""
    if not hasattr(error, "error_dict"):
        form.add_error(default, error.messages)
        return
    for field, field_messages in error.message_dict.items():
        form.add_error(field if field in form.fields else default, field_messages)


@login_required
@require_POST
def member_change(request: HttpRequest, project_id: int, membership_id: int) -> HttpResponse:
    """One member: change their role, pause or resume them (with a reason), or remove them."""
    membership = page_membership(request, project_id, needs="manage")
    target = membership_list(project=membership.project).filter(pk=membership_id).first()
    if target is None:
        raise Http404("No such member.")
    form = MemberChangeForm(request.POST)
    if form.is_valid():
        action, name, is_self = form.cleaned_data["action"], target.user.username, target.pk == membership.pk
        try:
            if action == "role":
                membership_update(membership=target, role=form.cleaned_data["role"], actor=request.user)
                done = f"{name} is now {target.get_role_display().lower()}."
            elif action == "pause":
                membership_pause(membership=target, reason=form.cleaned_data["reason"], actor=request.user)
                done = f"{name} is paused: {target.paused_reason}"
            elif action == "resume":
                membership_resume(membership=target, actor=request.user)
                done = f"{name} may label again."
            elif action == "deactivate":
                account_deactivate(actor=request.user, user=target.user)
                done = (
                    f"{name}'s account is deactivated: signed out everywhere, their token revoked;"
                    " their annotations stay."
                )
            else:
                membership_remove(membership=target, actor=request.user)
                done = f"{name} is no longer a member; their annotations stay."
        except ValidationError as error:
            _form_errors(form, error, default="role" if action == "role" else None)
        else:
            messages.success(request, done)
            if action == "remove" and is_self:
                return redirect("annotate:home")  # they left the project: its pages are 404 to them now
            if action == "role" and is_self and not target.can_manage:
                return redirect("annotate:project", project_id=project_id)  # this page is 403 to them now
            return redirect("annotate:members", project_id=project_id)
    errors = [
        message if field == "__all__" else f"{field}: {message}"
        for field, field_messages in form.errors.items()
        for message in field_messages
    ]
    return _page(request, membership, errors={target.pk: errors}, status=400)
