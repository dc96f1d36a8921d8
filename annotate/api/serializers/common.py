"""The bodies every part of the API shares: an error's, and the auth token's."""

from rest_framework import serializers

# Errors ----------------------------------------------------------------------------------


class ErrorOutput(serializers.Serializer):
    detail = serializers.CharField()


# Auth ------------------------------------------------------------------------------------


class TokenOutput(serializers.Serializer):
    token = serializers.CharField()
