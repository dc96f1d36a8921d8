"""The Content-Security-Policy header (issue 17, item 3): strict on every response — pages, the
admin, the API and its docs — with no 'unsafe-inline' or 'unsafe-eval' anywhere. That the pages
really run under it is tests/browser/test_csp.py."""

import pytest
from django.test import Client

from tests.factories import UserFactory

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    "path", ["/accounts/login/", "/", "/admin/", "/api/docs/", "/api/projects/", "/api/nowhere/"]
)
def test_every_response_carries_the_strict_policy(path):
    client = Client()
    client.force_login(UserFactory(is_staff=True, is_superuser=True))
    response = client.get(path)
    policy = response.headers["Content-Security-Policy"]
    directives = dict((part.split(" ", 1) + [""])[:2] for part in policy.split("; "))
    assert directives["default-src"] == "'self'"
    assert directives["script-src"] == "'self'" and directives["style-src"] == "'self'"
    assert directives["object-src"] == "'none'" and directives["frame-ancestors"] == "'none'"
    assert "unsafe-inline" not in policy and "unsafe-eval" not in policy
    assert "http:" not in directives["img-src"] and "*" not in policy


def test_no_template_holds_an_inline_script_or_style():
    """What the policy would refuse, caught before a browser meets it."""
    import re
    from pathlib import Path

    root = Path(__file__).resolve().parents[2] / "templates"
    found = []
    for template in root.rglob("*.html"):
        text = template.read_text()
        for pattern in (
            r"<script(?![^>]*\bsrc=)(?![^>]*application/json)[^>]*>",
            r"\sstyle=",
            r"<style",
            r"\son[a-z]+=",
        ):
            found += [f"{template.relative_to(root)}: {m.group(0)}" for m in re.finditer(pattern, text)]
    assert found == []
