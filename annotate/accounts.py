"""Accounts: an API token does not outlive its password, and who may deactivate an account.

A changed password (set_password and save, the admin's form, `changepassword`) deletes the user's
API token, so whoever held the old one is out; the owner exchanges the new password for a new token
(POST /api/auth/token/). Sessions need nothing here: Django's session hash is derived from the
password, so other sessions end with it. Connected in annotate/apps.py.

Deactivating an account (`account_deactivate`) ends its sessions and tokens: an inactive user's
session is anonymous on its next request (ModelBackend.get_user refuses inactive users), and its
API token is deleted. Staff may deactivate any account; a lead (a project's manager) only one
whose every membership is in a project they manage, since the account is everyone's, not one
project's. Within their own projects leads remove or pause members (annotate/projects.py).
"""

from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.db import transaction
from rest_framework.authtoken.models import Token

from annotate.audit import Action, audit_record
from annotate.models import Membership


def account_deactivate(*, actor, user) -> None:
    """Deactivate `user`'s account on `actor`'s say: ValidationError says why not, and nothing
    changes (their own account; a staff account by non-staff; memberships outside the actor's
    projects)."""
    if user.pk == actor.pk:
        raise ValidationError("you cannot deactivate your own account; ask a member of staff")
    if not actor.is_staff:
        if user.is_staff or user.is_superuser:
            raise ValidationError(f"{user.username} is staff: only staff deactivate a staff account")
        managed = set(
            Membership.objects.filter(user=actor, role=Membership.Role.MANAGER).values_list(
                "project_id", flat=True
            )
        )
        elsewhere = set(Membership.objects.filter(user=user).values_list("project_id", flat=True)) - managed
        if elsewhere:
            raise ValidationError(
                f"{user.username} is also a member of {len(elsewhere)} project(s) you do not manage:"
                " remove or pause them here, or ask staff to deactivate the account"
            )
    with transaction.atomic():
        type(user).objects.filter(pk=user.pk).update(is_active=False)
        Token.objects.filter(user_id=user.pk).delete()
        # One event in each of the account's projects, so each project's leads see it.
        memberships = list(
            Membership.objects.filter(user=user).select_related("project").order_by("project_id")
        )
        for membership in memberships or [None]:
            audit_record(
                actor=actor,
                project=membership.project if membership is not None else None,
                action=Action.ACCOUNT_DEACTIVATED,
                detail={"member": user.username},
            )
    user.is_active = False


def token_revoke_on_password_change(sender, instance, raw=False, **kwargs) -> None:
    """pre_save of the user model: delete the token when the stored password hash changes."""
    if raw or instance.pk is None:
        return
    stored = get_user_model().objects.filter(pk=instance.pk).values_list("password", flat=True).first()
    if stored is not None and stored != instance.password:
        Token.objects.filter(user_id=instance.pk).delete()
