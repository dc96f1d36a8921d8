"""The strict Content-Security-Policy in real chromium (issue 17, item 3): every page a lead,
a reviewer or an annotator opens — the labeling pages of all four task types, review, the
browser, dashboards, import, export, members, settings, the audit log, the deletion page, the
model card, the admin's pages and the API docs — loads and runs with no CSP violation. A
violation (an inline script, a style attribute, a remote image) shows as a
`securitypolicyviolation` event and a console error; this test fails on either.
The policy itself: tests/annotate/test_headers.py."""

import pytest

from annotate.importing import import_records
from tests.browser.conftest import log_in, screenshot
from tests.browser.test_boxes import _boxes_project
from tests.browser.test_labeling import _digits_project
from tests.browser.test_spans import _spans_project
from tests.factories import PASSWORD, UserFactory
from tests.training.test_model_card import _skewed_project
from training.versions import model_version_train

pytestmark = [pytest.mark.browser, pytest.mark.csp, pytest.mark.django_db(transaction=True)]

VIOLATIONS = """
window.__csp = [];
document.addEventListener("securitypolicyviolation", (e) =>
  window.__csp.push(`${e.violatedDirective} ${e.blockedURI || "inline"} at ${e.sourceFile}:${e.lineNumber}`));
"""


def _pages(text, image, boxes, spans, version) -> list[str]:
    pages = ["/", "/admin/", "/admin/annotate/project/", f"/admin/annotate/project/{text.pk}/change/",
             f"/admin/training/modelversion/{version.pk}/change/", "/api/docs/"]  # fmt: skip
    for project in (text, image, boxes, spans):
        pages += [f"/projects/{project.pk}/", f"/projects/{project.pk}/label/"]
    p = f"/projects/{text.pk}"
    pages += [f"{p}/review/", f"{p}/items/", f"{p}/dashboards/", f"{p}/import/", f"{p}/export/",
              f"{p}/members/", f"{p}/settings/", f"{p}/models/v{version.number}/",
              f"{p}/audit/", f"{p}/settings/delete/", "/admin/annotate/auditevent/"]  # fmt: skip
    return pages


def test_every_page_runs_under_the_policy_with_no_violation(page, live_server):
    text = _skewed_project(rare=10, n=60)
    version = model_version_train(project=text)
    import_records(project=text, records=[{"text": f"a new snippet {n}"} for n in range(3)])
    lead = text.memberships.get(role="manager").user
    lead.is_staff = lead.is_superuser = True
    lead.save()
    annotator = UserFactory()
    projects = [_digits_project(annotator, n=3)[0], _boxes_project(annotator, n=1), _spans_project(annotator)]
    import_records(project=projects[2], records=[{"text": "Ada Lovelace visited London."}])
    for project in projects:
        project.memberships.filter(role="manager").update(user=lead)
    page.add_init_script(VIOLATIONS)
    # Before logging in: the login page itself, and the admin's.
    for path in ("/accounts/login/", "/admin/login/"):
        page.goto(f"{live_server.url}{path}")
        assert page.evaluate("window.__csp") == [], path
    log_in(page, live_server, lead.username, PASSWORD)
    seen = {}
    for path in _pages(text, *projects, version):
        response = page.goto(f"{live_server.url}{path}")
        assert response.status == 200, (path, response.status)
        page.wait_for_load_state("networkidle")
        seen[path] = page.evaluate("window.__csp")
    assert {path: v for path, v in seen.items() if v} == {}
    # The pages did run their scripts: the labeling page shows its item, Swagger UI its operations.
    page.goto(f"{live_server.url}/projects/{projects[0].pk}/label/")
    page.wait_for_selector("[data-labeling][data-state=ready]")
    page.goto(f"{live_server.url}/api/docs/")
    page.wait_for_selector(".swagger-ui .opblock", timeout=15_000)
    screenshot(page, "api-docs-under-csp")
    assert page.evaluate("window.__csp") == []
    assert page.console_errors == []


def test_a_remote_image_in_the_instructions_is_blocked(page, live_server):
    """Instructions are Markdown a lead writes: an image from another site would tell that site
    who opens the page. The policy blocks it (and the test proves the check above can fail)."""
    text = _skewed_project(rare=2, n=20)
    text.instructions = "Read this: ![tracker](http://198.51.100.7/pixel.png)"
    text.save(update_fields=["instructions"])
    import_records(project=text, records=[{"text": "a snippet to label"}])
    lead = text.memberships.get(role="manager").user
    page.add_init_script(VIOLATIONS)
    log_in(page, live_server, lead.username, PASSWORD)
    page.goto(f"{live_server.url}/projects/{text.pk}/label/")
    assert page.locator(".instructions img").count() == 1
    page.wait_for_load_state("networkidle")
    violations = page.evaluate("window.__csp")
    assert violations and all(v.startswith("img-src http://198.51.100.7/pixel.png") for v in violations), (
        violations
    )
