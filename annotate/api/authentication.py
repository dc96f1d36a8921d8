"""DRF's token authentication with its lookup written in SQL (every API request runs it;
see annotate/raw_rows.py). Same answers and errors as rest_framework's TokenAuthentication."""

from django.contrib.auth import get_user_model
from django.db import connection
from django.utils.translation import gettext_lazy as _
from rest_framework import authentication, exceptions
from rest_framework.authtoken.models import Token

from annotate.raw_rows import columns, from_row


class TokenAuthentication(authentication.TokenAuthentication):
    def authenticate_credentials(self, key):
        user_model = get_user_model()
        with connection.cursor() as cursor:
            cursor.execute(
                f"SELECT {columns(user_model, 'u')} FROM {Token._meta.db_table} t"
                f" JOIN {user_model._meta.db_table} u ON u.{user_model._meta.pk.column} = t.user_id"
                " WHERE t.key = %s",
                [key],
            )
            row = cursor.fetchone()
        if row is None:
            raise exceptions.AuthenticationFailed(_("Invalid token."))
        user = from_row(user_model, row)
        if not user.is_active:
            raise exceptions.AuthenticationFailed(_("User inactive or deleted."))
        return (user, Token(key=key, user=user))
