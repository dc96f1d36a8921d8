"""Limits on what a request may send, checked before its body is read (issue 17, item 1).

- `RequestSizeLimitMiddleware` (first in settings.MIDDLEWARE): a body declared larger than
  settings.LABELLOOP_MAX_REQUEST_BYTES is refused with 413 from its Content-Length header, before
  a byte of it is read; a body sent without Content-Length (Transfer-Encoding: chunked) gets 411,
  since Django reads a body only as far as that header says; a Content-Length that is not a
  whole number of bytes gets 400. JSON under /api/, plain text elsewhere.
- `CountingUploadHandler` (first in settings.FILE_UPLOAD_HANDLERS): counts every uploaded file's
  bytes as they arrive and stops the upload once more than the limit plus UPLOAD_SLACK has been
  read, whatever the header said, so no upload grows a web worker past that.
"""

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.core.files.uploadhandler import FileUploadHandler
from django.http import HttpResponse, JsonResponse

UPLOAD_SLACK = 1024 * 1024  # the most the counting handler reads beyond the limit
BODY_METHODS = {"POST", "PUT", "PATCH", "DELETE"}


def _mib(n: int) -> str:
    return f"{n / 1024 / 1024:g} MiB"


def _refusal(request, status: int, message: str) -> HttpResponse:
    if request.path.startswith("/api/"):
        return JsonResponse({"detail": message}, status=status)
    return HttpResponse(message, status=status, content_type="text/plain; charset=utf-8")


class RequestSizeLimitMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        refusal = self.refusal(request)
        return refusal if refusal is not None else self.get_response(request)

    @staticmethod
    def refusal(request) -> HttpResponse | None:
        limit = settings.LABELLOOP_MAX_REQUEST_BYTES
        declared = request.META.get("CONTENT_LENGTH", "")
        if not declared:
            chunked = "chunked" in request.META.get("HTTP_TRANSFER_ENCODING", "").lower()
            if chunked and request.method in BODY_METHODS:
                return _refusal(
                    request, 411, "Content-Length: required; send the body with its length, not chunked"
                )
            return None
        try:
            length = int(declared)
        except ValueError:
            length = -1
        if length < 0:
            return _refusal(request, 400, f"Content-Length: {declared[:40]!r} is not a number of bytes")
        if length > limit:
            return _refusal(
                request, 413, f"Content-Length: {_mib(length)} is over this studio's limit of {_mib(limit)}"
            )
        return None


class CountingUploadHandler(FileUploadHandler):
    """Passes every chunk on to the next handler and counts it; more than the limit plus
    UPLOAD_SLACK in all raises RequestDataTooBig (a 400), which stops the parse."""

    def __init__(self, request=None):
        super().__init__(request)
        self.received = 0
        self.most = settings.LABELLOOP_MAX_REQUEST_BYTES + UPLOAD_SLACK

    def receive_data_chunk(self, raw_data, start):
        self.received += len(raw_data)
        if self.received > self.most:
            raise RequestDataTooBig(
                f"upload: over {_mib(self.most)} read, more than this studio's limit of"
                f" {_mib(settings.LABELLOOP_MAX_REQUEST_BYTES)}"
            )
        return raw_data

    def file_complete(self, file_size):
        return None
