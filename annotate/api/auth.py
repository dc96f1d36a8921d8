"""Authentication: a username and password exchanged for an API token."""

from drf_spectacular.utils import extend_schema
from rest_framework.authtoken.serializers import AuthTokenSerializer
from rest_framework.authtoken.views import ObtainAuthToken

from annotate.api import serializers as s
from annotate.api.base import BAD_REQUEST


class TokenObtainApi(ObtainAuthToken):
    @extend_schema(
        tags=["auth"], request=AuthTokenSerializer, responses={200: s.TokenOutput, 400: BAD_REQUEST}
    )
    def post(self, request, *args, **kwargs):
        """Exchange a username and password for an API token."""
        return super().post(request, *args, **kwargs)
