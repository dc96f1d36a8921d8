"""Site-wide URLs outside the apps."""

import pytest
from django.contrib.staticfiles import finders
from django.test import Client


@pytest.mark.django_db
def test_favicon_ico_leads_to_the_studio_icon():
    response = Client().get("/favicon.ico")
    assert response.status_code == 301
    assert response["Location"].endswith("annotate/favicon.svg")
    assert finders.find("annotate/favicon.svg")


# What the API fuzz found (tests/config/test_api_fuzz.py), each kept as a plain test too.


@pytest.mark.django_db
@pytest.mark.parametrize("path", ["/api/projects/%0A/", "/api/nothing\n", "/api/projects/1/labels/%0A%0A/"])
def test_a_path_under_api_with_a_newline_gets_the_json_404(path):
    response = Client().get(path)
    assert response.status_code == 404
    assert response["Content-Type"] == "application/json", response.content[:200]


@pytest.mark.django_db
def test_a_refused_csrf_check_under_api_answers_json():
    """A session client (a cookie, no CSRF token) posting to a path no route takes: the catch-all is
    CSRF-exempt, so a JSON 404; and a CSRF refusal itself answers JSON under /api/."""
    from django.contrib.auth.models import User

    client = Client(enforce_csrf_checks=True)
    client.force_login(User.objects.create_user("someone"))
    response = client.post("/api/projects/x/", {})
    assert (response.status_code, response["Content-Type"]) == (404, "application/json")
    from django.test import RequestFactory

    from annotate.views.access import csrf_failure

    refused = csrf_failure(RequestFactory().post("/api/projects/1/next/"), reason="CSRF cookie not set.")
    assert refused.status_code == 403 and refused["Content-Type"] == "application/json"
    assert b"CSRF cookie not set" in refused.content
    page = csrf_failure(RequestFactory().post("/accounts/login/"), reason="CSRF cookie not set.")
    assert page.status_code == 403 and page["Content-Type"].startswith("text/html")


def test_every_api_operation_declares_the_refusals_that_run_before_its_view():
    """annotate/api/schema.py: 401 and 403 everywhere, 404 where the path holds an id, 400/411/413/415
    where a body is read, and a path id is an integer within a row id's range."""
    from drf_spectacular.generators import SchemaGenerator

    schema = SchemaGenerator().get_schema(request=None, public=True)
    for path, operations in schema["paths"].items():
        for method, operation in operations.items():
            codes = set(operation["responses"])
            assert {"401", "403"} <= codes, (method, path)
            if "{" in path:
                assert "404" in codes, (method, path)
                for parameter in operation["parameters"]:
                    if parameter["in"] == "path":
                        assert parameter["schema"] == {"type": "integer", "minimum": 0, "maximum": 2**63 - 1}
            if method in ("post", "put", "patch"):
                assert {"400", "411", "413", "415"} <= codes, (method, path)
