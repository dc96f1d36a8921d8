"""Turn the domain's exceptions into API responses.

Services raise Django's ValidationError (a message, or a dict of field -> messages) and the
queue raises QueueError subclasses; views let both through and this handler renders them.
"""

from django.core.exceptions import NON_FIELD_ERRORS
from django.core.exceptions import ValidationError as DjangoValidationError
from rest_framework import status
from rest_framework.response import Response
from rest_framework.settings import api_settings
from rest_framework.views import exception_handler as drf_exception_handler
from rest_framework.views import set_rollback

from annotate.api.serializers import review_data
from annotate.queue import QueueError
from annotate.review import ItemNotInProject, OwnAnnotation, ReviewConflict


def validation_error_data(exc: DjangoValidationError) -> dict:
    """{"detail": message} for a plain message, the field dict (field -> messages) otherwise."""
    if not hasattr(exc, "error_dict"):
        return {"detail": " ".join(exc.messages)}
    errors = exc.message_dict
    if set(errors) == {NON_FIELD_ERRORS}:
        return {"detail": " ".join(errors[NON_FIELD_ERRORS])}
    if NON_FIELD_ERRORS in errors:
        errors[api_settings.NON_FIELD_ERRORS_KEY] = errors.pop(NON_FIELD_ERRORS)
    return errors


def exception_handler(exc, context):
    """DRF's handler, plus ValidationError -> 400 and QueueError -> 409 with {"detail": ...}."""
    if isinstance(exc, DjangoValidationError):
        set_rollback()
        return Response(validation_error_data(exc), status=status.HTTP_400_BAD_REQUEST)
    if isinstance(exc, (OwnAnnotation, ItemNotInProject, ReviewConflict)):
        # Review: a reviewer's own annotation is 403, another project's item 404, and a conflict's
        # 409 carries the winning decision so the page can show it and reload the item.
        set_rollback()
        body = {"detail": str(exc)}
        if isinstance(exc, ReviewConflict):
            body["winner"] = review_data(exc.winner)
        code = {OwnAnnotation: 403, ItemNotInProject: 404}.get(type(exc), status.HTTP_409_CONFLICT)
        return Response(body, status=code)
    if isinstance(exc, QueueError):
        set_rollback()
        return Response({"detail": str(exc)}, status=status.HTTP_409_CONFLICT)
    return drf_exception_handler(exc, context)
