"""Authentication: a username and password exchanged for an API token, and the token revoked.

Failed attempts count towards django-axes' lockout (config/settings.py AXES_*): the serializer
authenticates with the request, and a locked-out pair gets 429 with Retry-After, not 400."""

from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.authtoken.models import Token
from rest_framework.authtoken.serializers import AuthTokenSerializer
from rest_framework.authtoken.views import ObtainAuthToken
from rest_framework.exceptions import ValidationError
from rest_framework.permissions import IsAuthenticated
from rest_framework.response import Response

from annotate.api import serializers as s
from annotate.api.base import BAD_REQUEST
from annotate.views.access import locked_out_response

TOO_MANY = OpenApiResponse(description="Too many failed logins for this username from this address.")


class TokenObtainApi(ObtainAuthToken):
    @extend_schema(
        tags=["auth"],
        request=AuthTokenSerializer,
        responses={200: s.TokenOutput, 400: BAD_REQUEST, 429: TOO_MANY},
    )
    def post(self, request, *args, **kwargs):
        """Exchange a username and password for an API token."""
        serializer = self.get_serializer(data=request.data)
        if not serializer.is_valid():
            if getattr(request, "axes_locked_out", False):
                return locked_out_response(request._request)
            raise ValidationError(serializer.errors)
        token, _ = Token.objects.get_or_create(user=serializer.validated_data["user"])
        return Response({"token": token.key})

    @extend_schema(tags=["auth"], request=None, responses={204: None})
    def delete(self, request, *args, **kwargs):
        """Revoke the token this request came with (or, from a session, the user's token): a new
        one is made at the next exchange."""
        Token.objects.filter(user=request.user).delete()
        return Response(status=status.HTTP_204_NO_CONTENT)

    def get_permissions(self):
        return [IsAuthenticated()] if self.request.method == "DELETE" else super().get_permissions()
