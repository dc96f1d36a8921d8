"""The API's OpenAPI schema class: drf-spectacular's, with the refusals every operation can give
declared where a view does not declare them itself, so a client (and the fuzz test,
tests/config/test_api_fuzz.py) reads every status code the API may answer from the schema.

Which refusals an operation can give follows from what runs before its view does:
- 401 on every operation: a request that sends a wrong token is refused whatever the view;
- 403 on every operation: a role that may not do this, or a session without its CSRF token;
- 404 where the path holds an id: no such row, or a project the requester is not a member of;
- 400 where a body or a query parameter is read (invalid input, a cursor that does not decode);
- 411, 413 and 415 where a body is read (annotate/limits.py: no length, over the size limit; a
  content type no parser reads);
- 429 where the view is throttled.
Every one of them is a JSON object: {"detail": message}, or for 400 field -> messages.
"""

from drf_spectacular.openapi import AutoSchema

from annotate.api.serializers import ErrorOutput

BODY_METHODS = {"POST", "PUT", "PATCH"}
INVALID = {
    "type": "object",
    "additionalProperties": {},
    "description": "{'detail': message} or field -> messages",
}


class LabelLoopAutoSchema(AutoSchema):
    def get_operation(self, *args, **kwargs):
        operation = super().get_operation(*args, **kwargs)
        if operation is None:
            return operation
        responses = operation.setdefault("responses", {})
        reads_body = self.method in BODY_METHODS
        queried = any(p.get("in") == "query" for p in operation.get("parameters", []))
        refusals = {
            "401": "No valid credentials: the token is wrong or was revoked.",
            "403": "Not allowed: a role that may not do this, or a session request without its CSRF token.",
        }
        if "{" in self.path:
            refusals["404"] = "Not a member of the project, or no such object."
        if reads_body:
            refusals["411"] = "A chunked body: send a Content-Length."
            refusals["413"] = "The body is over the studio's request size limit."
            refusals["415"] = "A content type this operation does not read."
        if getattr(self.view, "throttle_classes", None):
            refusals["429"] = "Too many requests: wait as Retry-After says."
        for code, description in refusals.items():
            if code not in responses:
                responses[code] = self._get_response_for_code(ErrorOutput, code)
                responses[code]["description"] = description
        if (reads_body or queried) and "400" not in responses:
            responses["400"] = {
                "content": {"application/json": {"schema": INVALID}},
                "description": "Invalid input.",
            }
        return operation
