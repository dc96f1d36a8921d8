"""POST /api/projects/<project_id>/predict/: the labels and probabilities a project's model gives new
texts (a JSON body) or images (multipart files), computed by the predict worker (training/predict.py).

Managers only, like training runs (non-members 404, reviewers and annotators 403): a prediction
spends the predict worker's time and reads the model, so it is a manager's use of the project.
Each user's requests are counted in the shared cache CACHES["throttle"] (PredictThrottle), so
the limit holds across every web process and machine.
"""

import logging
import math

from django.conf import settings
from django.core.cache import caches
from django.core.cache.backends.redis import RedisCache
from django.core.exceptions import RequestDataTooBig, TooManyFieldsSent, TooManyFilesSent, ValidationError
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.exceptions import APIException
from rest_framework.parsers import JSONParser, MultiPartParser
from rest_framework.response import Response
from rest_framework.throttling import SimpleRateThrottle

from annotate.api.base import BAD_REQUEST, FORBIDDEN, NOT_FOUND, ProjectApi
from annotate.api.permissions import CanManage
from annotate.api.serializers import ErrorOutput
from training import predict

logger = logging.getLogger(__name__)


class ThrottleCacheUnavailable(APIException):
    status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    default_detail = "the rate limiter's cache is unreachable; try again shortly"


class PredictThrottle(SimpleRateThrottle):
    """At most LABELLOOP_PREDICT_RATE requests per user ("120/min") in a window that opens at the
    user's first request, counted in the shared cache CACHES["throttle"].

    A counter, not DRF's list of request times: on Redis, SET NX and INCR are single commands, so
    two web processes counting at the same moment never lose a request (DRF's read, append, write
    would). On the database cache (the embedded default, one machine) the count is read then
    written, so requests racing in the same millisecond may be counted once.
    """

    scope = "predict"
    cache_alias = "throttle"

    def __init__(self) -> None:
        # The rate is read per request (not at import, as DRF's THROTTLE_RATES is), so a setting
        # changed in a test or by the environment takes effect.
        self.rate = self.get_rate()
        self.num_requests, self.duration = self.parse_rate(self.rate)
        self.wait_seconds: float | None = None

    def get_rate(self) -> str | None:
        return settings.LABELLOOP_PREDICT_RATE or None

    def get_cache_key(self, request, view) -> str:
        return f"{self.scope}:{request.user.pk}"

    def allow_request(self, request, view) -> bool:
        if self.rate is None:
            return True
        key = self.get_cache_key(request, view)
        cache = caches[self.cache_alias]
        now = self.timer()
        try:
            if isinstance(cache, RedisCache):
                count, start = self._count_atomically(cache, key, now)
            else:
                count, start = self._count(cache, key, now)
        except Exception:
            # Redis down, or the cache table missing: say so (503) rather than fail (500).
            logger.exception("the throttle cache %r failed", self.cache_alias)
            raise ThrottleCacheUnavailable() from None
        if count <= self.num_requests:
            return True
        self.wait_seconds = max(0.0, min(float(self.duration), start + self.duration - now))
        return False

    def _count_atomically(self, cache, key: str, now: float) -> tuple[int, float]:
        """(this request's number in its window, the window's start) with Redis's INCR, which keeps
        the key's expiry: the window closes `duration` after it opened."""
        opened = False
        try:
            count = cache.incr(key)  # the usual case, a window open: two round trips
        except ValueError:  # no window open: this request opens one
            opened = cache.add(key, 1, self.duration)
            count = 1 if opened else cache.incr(key)  # else another process opened it meanwhile
        if opened:
            cache.set(f"{key}:start", now, self.duration)
        elif count == 1:
            # The key expired between incr's existence check and INCR, which recreated it with no
            # expiry: give it one, or this count would never reset.
            cache.touch(key, self.duration)
        if count <= self.num_requests:
            return count, now
        return count, float(cache.get(f"{key}:start", now))

    def _count(self, cache, key: str, now: float) -> tuple[int, float]:
        """The same on any other cache (the database's): the window's (start, count) read, then
        written back with the rest of the window as its timeout (Django's incr would give it the
        cache's default timeout). Two processes in the same instant may both count one."""
        start, count = cache.get(key) or (now, 0)
        if now >= start + self.duration:
            start, count = now, 0
        count += 1
        cache.set(key, (start, count), max(1, math.ceil(start + self.duration - now)))
        return count, start

    def wait(self) -> float | None:
        return self.wait_seconds


# Bodies (for the schema; the response is the service's dict, rendered as it is) ----------------


class PredictTextsInput(serializers.Serializer):
    texts = serializers.ListField(
        child=serializers.CharField(),
        min_length=1,
        help_text="1 to LABELLOOP_PREDICT_MAX_ITEMS (256) non-empty strings of at most "
        f"{predict.MAX_TEXT_CHARS:,} characters: text classification and text spans projects.",
    )


class PredictImagesInput(serializers.Serializer):
    images = serializers.ListField(
        child=serializers.FileField(),
        min_length=1,
        help_text="1 to LABELLOOP_PREDICT_MAX_ITEMS (256) image files (JPEG, PNG, GIF, WebP, BMP, TIFF,"
        " AVIF), several `images` parts: image classification projects.",
    )


class PredictionOutput(serializers.Serializer):
    value = serializers.JSONField(help_text='The proposed label: {"choices": [...]} or {"spans": [...]}.')
    confidence = serializers.JSONField(
        help_text="The model's probability of that value; for spans, one per span (rounded to 6 digits)."
    )
    probabilities = serializers.DictField(
        child=serializers.FloatField(),
        required=False,
        help_text="Every class's probability, full precision (classification only).",
    )


class PredictOutput(serializers.Serializer):
    version = serializers.IntegerField(help_text="The number (the N of vN) of the version that predicted.")
    backend = serializers.CharField()
    predictions = PredictionOutput(many=True, help_text="One per input, in input order.")


def _error(description: str) -> OpenApiResponse:
    return OpenApiResponse(ErrorOutput, description=description)


class PredictApi(ProjectApi):
    parser_classes = [JSONParser, MultiPartParser]
    role_permissions = {"POST": CanManage}
    throttle_classes = [PredictThrottle]

    @extend_schema(
        tags=["training"],
        parameters=[
            OpenApiParameter(
                "version",
                OpenApiTypes.INT,
                location=OpenApiParameter.QUERY,
                required=False,
                description="A version number of this project (the N of vN); the active version by default.",
            )
        ],
        request={"application/json": PredictTextsInput, "multipart/form-data": PredictImagesInput},
        responses={
            200: PredictOutput,
            400: BAD_REQUEST,
            403: FORBIDDEN,
            404: NOT_FOUND,
            409: _error("The project has no active model version yet."),
            413: _error("The body is over LABELLOOP_PREDICT_MAX_BYTES (8 MiB)."),
            429: _error("Over LABELLOOP_PREDICT_RATE for this user; Retry-After says when to retry."),
            502: _error("The predict worker failed."),
            503: _error("No predict worker answered within LABELLOOP_PREDICT_TIMEOUT, or a service is down."),
        },
    )
    def post(self, request, project_id):
        """The model's labels and probabilities for new items (managers), in input order.

        Texts as JSON `{"texts": [...]}` for text projects, images as multipart `images` files
        for image projects; at most 256 a request and 8 MiB of body. A refused input answers
        400 naming the field and index (`texts[3]: …`, `images[1] (cat.png): not an image …`).
        The model runs in the predict worker, never in the web process.
        """
        try:
            content_length = int(request.META.get("CONTENT_LENGTH") or 0)
        except ValueError:
            content_length = 0  # as Django reads it: no body
        try:
            predict.prediction_body_check(content_length=content_length)
            version = predict.prediction_version(
                project=self.project, number=request.query_params.get("version")
            )
            answer = self._predict(request, version)
        except predict.BodyTooLarge as exc:
            return Response({"detail": str(exc)}, status=status.HTTP_413_REQUEST_ENTITY_TOO_LARGE)
        except predict.NoModelVersion as exc:
            return Response({"detail": str(exc)}, status=status.HTTP_409_CONFLICT)
        except predict.PredictionFailed as exc:
            return Response({"detail": str(exc)}, status=status.HTTP_502_BAD_GATEWAY)
        except predict.PredictionUnavailable as exc:
            return Response({"detail": str(exc)}, status=status.HTTP_503_SERVICE_UNAVAILABLE)
        return Response(answer)

    @staticmethod
    def _predict(request, version) -> dict:
        multipart = request.content_type.startswith("multipart/")
        if not predict.prediction_reads_images(version):
            if multipart:
                raise ValidationError(
                    {"texts": ['texts: this model reads texts: send JSON {"texts": [...]}']}
                )
            return predict.predictions_request(
                version=version, texts=predict.prediction_texts_check(request.data)
            )
        if not multipart:
            raise ValidationError({"images": ["images: this model reads images: send multipart files"]})
        try:
            files = request.FILES.getlist("images")
        except (RequestDataTooBig, TooManyFilesSent, TooManyFieldsSent) as exc:
            # Django's own limits on a multipart body (DATA_UPLOAD_MAX_NUMBER_FILES …): 400, in words.
            raise ValidationError({"images": [f"images: the multipart body was refused ({exc})"]}) from None
        return predict.predictions_request(version=version, images=predict.prediction_images_check(files))
