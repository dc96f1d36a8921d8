"""Playwright (sync API) on Debian's chromium, against pytest-django's live_server.

Screenshots go to test-artifacts/screenshots/ (look at them). Chromium is installed by
bin/test; when it is missing the browser tests skip with the reason (fail under
LABELLOOP_REQUIRE_SERVICES=1).
"""

import os
import shutil
import time
from pathlib import Path

import pytest

from tests.services import skip_or_fail

# Playwright's sync API runs an event loop in this thread; Django's ORM calls from the test
# body are still synchronous and safe.
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "screenshots"


@pytest.fixture(scope="session")
def browser():
    if not shutil.which(CHROMIUM):
        skip_or_fail(f"{CHROMIUM} is not installed (bin/test installs Debian's chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        yield browser
        browser.close()


@pytest.fixture
def page(browser, request, live_server):
    # Depends on live_server so that it is torn down first: the page leaves while the server
    # still runs, before the test database is flushed.
    # Playwright's wait_for_function evaluates its predicate with eval, which the studio's strict
    # Content-Security-Policy refuses ('unsafe-eval' is not allowed): the tests that wait so run
    # with the policy bypassed. Tests marked `csp` (tests/browser/test_csp.py) enforce it, open
    # every page and fail on any violation.
    bypass = request.node.get_closest_marker("csp") is None
    context = browser.new_context(viewport={"width": 1280, "height": 900}, bypass_csp=bypass)
    page = context.new_page()
    messages: list[str] = []
    page.on("console", lambda m: messages.append(f"{m.type}: {m.text}") if m.type == "error" else None)
    page.on("pageerror", lambda e: messages.append(f"pageerror: {e}"))
    page.console_errors = messages
    yield page
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{request.node.name}-end.png"), full_page=True)
    _leave(page)
    context.close()


def _leave(page) -> None:
    """Leave the page and wait (up to 5 s) for the leases it gives back on pagehide: a release
    still running when the test database was flushed deadlocked with the flush's TRUNCATE.
    (Playwright does not report sendBeacon requests, so the wait reads the database.)"""
    from annotate.models import Assignment

    page.goto("about:blank")
    deadline = time.monotonic() + 5
    while Assignment.objects.filter(status=Assignment.Status.OPEN).exists() and time.monotonic() < deadline:
        time.sleep(0.05)


def screenshot(page, name: str) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def log_in(page, live_server, username: str, password: str) -> None:
    page.goto(f"{live_server.url}/accounts/login/")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", password)
    page.click("button[type=submit]")
    page.wait_for_url(f"{live_server.url}/")


def in_import_order(project) -> None:
    """Serve `project`'s items in the order they were imported, as an API-made project's are. A
    file import writes random priorities (so that a file sorted by class does not decide what is
    labeled first: tests/training/test_cold_start.py); these tests are written against the order
    of the files they make."""
    project.items.update(priority=0.0)
