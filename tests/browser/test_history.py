"""Going back to change an answer, the "?" list of keys, flagging an item for the lead and
undo, in a real browser (Debian's chromium through Playwright), by keyboard."""

import pytest

from annotate.models import Annotation, Item, ItemNote
from tests.browser.conftest import log_in, screenshot
from tests.factories import PASSWORD, UserFactory, make_project

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

LABELS = [{"name": "fresh", "hotkey": "1"}, {"name": "rotten", "hotkey": "2"}]


def _project(annotator, **fields):
    lead = UserFactory(username="lead")
    project = make_project(
        name="Reviews",
        labels=LABELS,
        items=5,
        members=[(annotator, "annotator"), (lead, "manager")],
        **fields,
    )
    return project


def _open(page, live_server, project):
    page.goto(f"{live_server.url}/projects/{project.pk}/label/")
    page.wait_for_selector("[data-labeling][data-state=ready]")
    page.evaluate("window.__noReload = true")  # a full page load would wipe it out


def _shown(page) -> int:
    return int(page.get_attribute("[data-canvas]", "data-item-id"))


def _dataset(page, name) -> int:
    return page.evaluate(f"Number(document.querySelector('[data-labeling]').dataset.{name} || 0)")


def _press_and_wait_for_next(page, key):
    before = _shown(page)
    page.keyboard.press(key)
    page.wait_for_function(f"document.querySelector('[data-canvas]').dataset.itemId !== '{before}'")


def test_go_back_change_the_first_answer_and_return_to_the_queue_item(page, live_server):
    annotator = UserFactory(username="ann")
    project = _project(annotator)
    log_in(page, live_server, "ann", PASSWORD)
    _open(page, live_server, project)

    labeled = []
    for _ in range(3):
        labeled.append(_shown(page))
        _press_and_wait_for_next(page, "1")  # fresh, and the next item shows
    page.wait_for_function("Number(document.querySelector('[data-labeling]').dataset.saved || 0) >= 3")
    current = _shown(page)

    for _ in range(3):  # back to the first of the three, one item at a time
        before = _shown(page)
        page.keyboard.press("[")
        page.wait_for_function(f"document.querySelector('[data-canvas]').dataset.itemId !== '{before}'")
    assert _shown(page) == labeled[0]
    assert page.get_attribute("[data-labeling]", "data-mode") == "history"
    # The earlier answer is shown pre-filled.
    assert page.get_attribute('[data-label="fresh"]', "aria-pressed") == "true"
    screenshot(page, "history-changing-an-answer")

    page.keyboard.press("2")  # rotten: a single-label key saves the changed answer
    page.wait_for_function("Number(document.querySelector('[data-labeling]').dataset.changed || 0) >= 1")

    assert _shown(page) == current
    assert page.get_attribute("[data-labeling]", "data-mode") == "queue"
    rows = list(Annotation.objects.filter(item_id=labeled[0]).order_by("id").values_list("value", "counted"))
    assert rows == [({"choices": ["fresh"]}, True), ({"choices": ["rotten"]}, False)]
    first = Item.objects.get(pk=labeled[0])
    assert (first.final_value, first.annotation_count) == ({"choices": ["rotten"]}, 1)
    # The queue item is still leased to the annotator and labeled as usual.
    _press_and_wait_for_next(page, "1")
    page.wait_for_function("Number(document.querySelector('[data-labeling]').dataset.saved || 0) >= 5")
    assert Annotation.objects.filter(item_id=current, annotator=annotator).count() == 1
    assert page.evaluate("window.__noReload") is True
    assert not page.console_errors


def test_the_history_list_picks_an_item_and_escape_returns(page, live_server):
    annotator = UserFactory(username="ann")
    project = _project(annotator)
    log_in(page, live_server, "ann", PASSWORD)
    _open(page, live_server, project)
    first = _shown(page)
    _press_and_wait_for_next(page, "2")
    _press_and_wait_for_next(page, "1")
    current = _shown(page)

    page.keyboard.press("h")
    page.wait_for_selector("[data-history-dialog][open] [data-history-index]")
    assert page.locator("[data-history-index]").count() == 2
    page.locator(f'[data-history-index][data-item-id="{first}"]').focus()
    page.keyboard.press("Enter")
    page.wait_for_function(f"document.querySelector('[data-canvas]').dataset.itemId === '{first}'")
    assert page.get_attribute('[data-label="rotten"]', "aria-pressed") == "true"
    page.keyboard.press("Escape")
    page.wait_for_function(f"document.querySelector('[data-canvas]').dataset.itemId === '{current}'")
    assert Annotation.objects.filter(item_id=first).count() == 1  # nothing changed


def test_question_mark_lists_every_key_and_escape_closes_it(page, live_server):
    annotator = UserFactory(username="ann")
    project = _project(annotator)
    log_in(page, live_server, "ann", PASSWORD)
    _open(page, live_server, project)

    page.keyboard.press("?")
    dialog = page.locator("[data-help-dialog]")
    dialog.wait_for(state="visible")
    text = dialog.inner_text()
    for expected in ("Enter", "Ctrl+Z", "label “fresh”", "label “rotten”", "comment", "flag", "[", "Alt+←"):
        assert expected in text, expected
    screenshot(page, "history-keys-overlay")
    page.keyboard.press("Escape")
    dialog.wait_for(state="hidden")


def test_flag_an_item_with_a_comment_and_the_lead_sees_it_in_the_browser(page, live_server):
    annotator = UserFactory(username="ann")
    project = _project(annotator)
    log_in(page, live_server, "ann", PASSWORD)
    _open(page, live_server, project)
    flagged = _shown(page)

    page.keyboard.press("f")
    page.wait_for_selector("[data-note-dialog][open]")
    page.keyboard.press("Enter")  # empty: refused, with the field named
    page.wait_for_function("document.querySelector('[data-note-error]').textContent.includes('Text')")
    page.keyboard.type("The text is cut off")
    page.keyboard.press("Enter")
    page.locator("[data-note-dialog]").wait_for(state="hidden")
    assert page.locator("[data-status]").inner_text() == "Flagged for the lead."
    note = ItemNote.objects.get()
    assert (note.item_id, note.flagged, note.text, note.author) == (
        flagged,
        True,
        "The text is cut off",
        annotator,
    )

    lead_page = page.context.browser.new_context().new_page()
    log_in(lead_page, live_server, "lead", PASSWORD)
    lead_page.goto(f"{live_server.url}/projects/{project.pk}/items/?flagged=true")
    rows = lead_page.locator("#browser-results tbody tr")
    assert rows.count() == 1
    assert Item.objects.get(pk=flagged).external_id in rows.first.inner_text()
    lead_page.goto(f"{live_server.url}/projects/{project.pk}/items/{flagged}/")
    assert "The text is cut off" in lead_page.locator("#browser-item-notes").inner_text()
    lead_page.get_by_role("button", name="Resolve flag").click()
    lead_page.wait_for_selector("text=Flag resolved.")
    note.refresh_from_db()
    assert note.resolved_at is not None
    lead_page.context.close()


def test_ctrl_z_undoes_a_toggle_in_a_multi_label_project(page, live_server):
    annotator = UserFactory(username="ann")
    project = _project(annotator, multi_label=True)
    log_in(page, live_server, "ann", PASSWORD)
    _open(page, live_server, project)
    item = _shown(page)

    page.keyboard.press("1")
    page.keyboard.press("2")
    assert page.get_attribute('[data-label="rotten"]', "aria-pressed") == "true"
    page.keyboard.press("Control+z")
    assert page.get_attribute('[data-label="rotten"]', "aria-pressed") == "false"
    assert page.locator("[data-status]").inner_text() == "Undone."
    page.keyboard.press("Control+z")
    page.keyboard.press("Control+z")
    assert page.locator("[data-status]").inner_text() == "Nothing to undo in this item."
    page.keyboard.press("2")
    _press_and_wait_for_next(page, "Enter")
    page.wait_for_function("Number(document.querySelector('[data-labeling]').dataset.saved || 0) >= 1")
    assert Annotation.objects.get(item_id=item).value == {"choices": ["rotten"]}
