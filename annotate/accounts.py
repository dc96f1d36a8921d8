"""Accounts: an API token does not outlive its password.

A changed password (set_password and save, the admin's form, `changepassword`) deletes the user's
API token, so whoever held the old one is out; the owner exchanges the new password for a new token
(POST /api/auth/token/). Sessions need nothing here: Django's session hash is derived from the
password, so other sessions end with it. Connected in annotate/apps.py.
"""

from django.contrib.auth import get_user_model
from rest_framework.authtoken.models import Token


def token_revoke_on_password_change(sender, instance, raw=False, **kwargs) -> None:
    """pre_save of the user model: delete the token when the stored password hash changes."""
    if raw or instance.pk is None:
        return
    stored = get_user_model().objects.filter(pk=instance.pk).values_list("password", flat=True).first()
    if stored is not None and stored != instance.password:
        Token.objects.filter(user_id=instance.pk).delete()
