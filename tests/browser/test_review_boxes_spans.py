"""The review page for boxes and spans in a real browser (Debian's chromium through Playwright).

Two annotators mark the same texts (or images); the reviewer sees each one's spans (boxes) on
their own copy, what differs marked, accepts one answer, and corrects another in the labeling
page's own editor, started from an answer: spans relabeled by key and deleted, boxes moved by
the mouse and the keys and deleted, Enter sends. The editor cannot reach past the text's end, so
a span past it is tried through the "Edit as JSON" fallback: refused naming the field, nothing
stored until the correction is right. Screenshots at 1280×720 go to test-artifacts/screenshots/.
"""

import io
import json

import pytest

from annotate import importing
from annotate.demo import digit_png, digits_arrays
from annotate.items import item_create_bulk
from annotate.models import Item, Review
from annotate.queue import annotation_submit, assignment_next
from tests.browser.conftest import in_import_order, log_in, screenshot
from tests.factories import PASSWORD, UserFactory, make_project

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

LABELS = [
    {"name": "PER", "hotkey": "p", "colour": "#1f77b4"},
    {"name": "ORG", "hotkey": "o", "colour": "#ff7f0e"},
    {"name": "LOC", "hotkey": "l", "colour": "#2ca02c"},
]
TEXTS = [
    "Ada Lovelace wrote to Charles Babbage from London about the Analytical Engine. 👍🏽",
    "Grace Hopper joined the Navy and later worked at Remington Rand in Philadelphia.",
]


def span(start, end, label="PER"):
    return {"start": start, "end": end, "label": label}


def _team(task_type):
    ada, bob = UserFactory(username="ada"), UserFactory(username="bob")
    rita = UserFactory(username="rita")
    project = make_project(
        name=f"Review {task_type}",
        task_type=task_type,
        overlap=2,
        labels=LABELS,
        members=[(ada, "annotator"), (bob, "annotator"), (rita, "reviewer")],
    )
    return project, ada, bob


def _submit(project, user, values):
    for value in values:
        lease = assignment_next(project=project, annotator=user)
        annotation_submit(project=project, item_id=lease.item.pk, annotator=user, value=value, active_ms=4000)


def _open_review(page, live_server, project):
    page.set_viewport_size({"width": 1280, "height": 720})
    log_in(page, live_server, "rita", PASSWORD)
    page.goto(f"{live_server.url}/projects/{project.pk}/review/")
    page.wait_for_selector("[data-reviewing][data-state=ready]")
    page.evaluate("window.__noReload = true")


def _shown(page) -> int:
    return int(page.get_attribute("[data-canvas]", "data-item-id"))


def _wait_for_other_item(page, item_id: int) -> None:
    page.wait_for_function(
        f"(id => id && id !== '{item_id}')(document.querySelector('[data-canvas]').dataset.itemId)"
    )


def test_review_shows_both_annotators_spans_and_a_correction_past_the_text_is_refused(page, live_server):
    project, ada, bob = _team("text_spans")
    item_create_bulk(project=project, rows=[{"external_id": f"t{i}", "text": t} for i, t in enumerate(TEXTS)])
    # Item 1: "Ada Lovelace" [0, 12), "Charles Babbage" [22, 37), "London" [43, 49), the
    # "Analytical Engine" [60, 77). Bob calls London an ORG and misses the engine.
    ada_first = {"spans": [span(0, 12), span(22, 37), span(43, 49, "LOC"), span(60, 77, "ORG")]}
    bob_first = {"spans": [span(0, 12), span(22, 37), span(43, 49, "ORG")]}
    # Item 2: "Grace Hopper" [0, 12), "Navy" [24, 28), "Remington Rand" [49, 63).
    ada_second = {"spans": [span(0, 12), span(24, 28, "ORG"), span(49, 63, "ORG")]}
    bob_second = {"spans": [span(0, 12), span(24, 28, "ORG"), span(49, 63, "ORG")]}
    _submit(project, ada, [ada_first, ada_second])
    _submit(project, bob, [bob_first, bob_second])
    first, second = Item.objects.filter(project=project).order_by("id")
    _open_review(page, live_server, project)

    assert _shown(page) == first.pk  # the disagreement first
    panels = page.locator("[data-overlays] [data-overlay]")
    assert panels.count() == 2
    assert "ada" in panels.nth(0).inner_text() and "bob" in panels.nth(1).inner_text()
    # Each copy of the text holds that annotator's marks, with the text itself intact.
    assert panels.nth(0).locator("mark").count() == 4
    assert panels.nth(1).locator("mark").count() == 3
    assert TEXTS[0] in panels.nth(0).locator(".rv-text").inner_text().replace("PER", "").replace(
        "LOC", ""
    ).replace("ORG", "").replace("≠ ", "")
    assert panels.nth(0).locator("mark").nth(2).inner_text() == "London"
    # London (LOC against ORG) and the engine (only ada) differ; the two names agree.
    assert panels.nth(0).locator("mark.rv-differs").all_inner_texts() == ["London", "Analytical Engine"]
    assert panels.nth(1).locator("mark.rv-differs").all_inner_texts() == ["London"]
    assert "2 differ" in panels.nth(0).inner_text()
    screenshot(page, "review-spans")

    # C opens the editor on ada's answer (the one selected), her four spans in it.
    page.keyboard.press("c")
    editor_text = page.locator("[data-correct-stage] [data-item-text]")
    editor_text.wait_for(state="visible")
    assert editor_text.get_attribute("data-span-count") == "4"
    assert "Correcting from ada's answer" in page.inner_text("[data-correct-stage]")
    # The editor's selection stops at the text's last token: no span can pass the end.
    for _ in range(40):
        page.keyboard.press("Shift+ArrowRight")
    assert editor_text.get_attribute("data-selection") == f"0:{len(TEXTS[0])}"
    page.keyboard.press("Escape")  # clears the selection; the correction stays open
    assert editor_text.get_attribute("data-selection") is None
    assert page.locator("[data-correct-stage]").is_visible()

    # Past the end only through the JSON fallback, which opens with the editor's value: refused.
    page.locator("[data-json-box] summary").click()
    textarea = page.locator("[data-correct-json]")
    page.wait_for_function("document.querySelector('[data-correct-json]').value !== ''")  # on toggle
    assert json.loads(textarea.input_value()) == ada_first
    wrong = {"spans": [span(0, 12), span(22, 37), span(43, 49, "LOC"), span(60, 200, "ORG")]}
    textarea.fill(json.dumps(wrong))
    page.keyboard.press("Control+Enter")
    conflict = page.locator("[data-conflict]")
    conflict.wait_for(state="visible")
    assert "value.spans[3].end" in conflict.inner_text()
    page.wait_for_function(f"document.querySelector('[data-canvas]').dataset.itemId === '{first.pk}'")
    assert not Review.objects.exists()
    assert not page.locator("[data-correct-stage]").is_visible()  # shown again, not correcting

    # Now in the editor from bob's answer: London (his ORG) becomes a place by its key, and
    # Charles Babbage is deleted; Enter corrects.
    page.keyboard.press("ArrowDown")
    page.keyboard.press("c")
    editor_text.wait_for(state="visible")
    assert editor_text.get_attribute("data-span-count") == "3"
    for _ in range(3):
        page.keyboard.press("Tab")  # Ada Lovelace, Charles Babbage, London
    assert page.locator("[data-correct-stage] mark.is-selected").inner_text() == "London"
    page.keyboard.press("l")
    page.keyboard.press("Shift+Tab")
    assert page.locator("[data-correct-stage] mark.is-selected").inner_text() == "Charles Babbage"
    page.keyboard.press("Delete")
    assert editor_text.get_attribute("data-span-count") == "2"
    screenshot(page, "review-spans-correcting")
    page.keyboard.press("Enter")
    _wait_for_other_item(page, first.pk)

    assert _shown(page) == second.pk
    assert page.locator("[data-overlays] .rv-differs").count() == 0
    page.keyboard.press("2")  # accept bob's answer
    page.wait_for_selector("[data-reviewing][data-state=empty]")
    page.wait_for_function("Number(document.querySelector('[data-reviewing]').dataset.decided || 0) >= 2")
    # The refused correction's 400 is the one error the browser reports.
    assert [m for m in page.console_errors if "status of 400" not in m] == [], page.console_errors
    assert len(page.console_errors) == 1

    reviews = list(Review.objects.filter(project=project).order_by("id"))
    assert [(r.item_id, r.decision) for r in reviews] == [(first.pk, "correct"), (second.pk, "accept")]
    corrected = {"spans": [span(0, 12), span(43, 49, "LOC")]}
    assert reviews[0].value == corrected
    first.refresh_from_db()
    second.refresh_from_db()
    assert (first.final_value, first.final_source) == (corrected, "review")
    assert (second.final_value, second.final_source) == (bob_second, "review")


def _box(x, y, w, h, label="PER"):
    return {"x": x, "y": y, "w": w, "h": h, "label": label}


def test_review_shows_both_annotators_boxes_an_accept_stores_and_the_editor_corrects(page, live_server):
    project, ada, bob = _team("image_boxes")
    pixels, _ = digits_arrays()
    files = [(f"digits-{i}.png", io.BytesIO(digit_png(pixels[i]))) for i in range(2)]
    importing.import_images(project=project, files=files)
    in_import_order(project)
    # Ada and bob agree on one box (IoU 0.81); bob's second box is elsewhere than ada's.
    ada_value = {"boxes": [_box(0.1, 0.1, 0.4, 0.5), _box(0.55, 0.5, 0.35, 0.4, "LOC")]}
    bob_value = {"boxes": [_box(0.12, 0.12, 0.4, 0.5), _box(0.05, 0.7, 0.3, 0.25, "ORG")]}
    _submit(project, ada, [ada_value, ada_value])
    _submit(project, bob, [bob_value, ada_value])
    first, second = Item.objects.filter(project=project).order_by("id")
    _open_review(page, live_server, project)

    assert _shown(page) == first.pk
    panels = page.locator("[data-overlays] [data-overlay]")
    assert panels.count() == 2
    for i in range(2):
        # decode() waits for the picture (the panel may be drawn before it arrives); a broken one rejects.
        assert (
            panels.nth(i)
            .locator(".rv-image")
            .evaluate("img => img.decode().then(() => img.naturalWidth > 0)")
        )
        assert panels.nth(i).locator(".rv-box").count() == 2
    assert panels.nth(0).locator(".rv-box.rv-differs").count() == 1
    assert panels.nth(0).locator(".rv-box.rv-differs").get_attribute("data-label") == "LOC"
    assert panels.nth(1).locator(".rv-box.rv-differs").get_attribute("data-label") == "ORG"
    # A box is drawn where the value puts it: ada's first box starts a tenth of the way in.
    stage = panels.nth(0).locator(".rv-stage").bounding_box()
    drawn = panels.nth(0).locator(".rv-box").nth(0).bounding_box()
    assert abs((drawn["x"] - stage["x"]) / stage["width"] - 0.1) < 0.01
    assert abs(drawn["width"] / stage["width"] - 0.4) < 0.01
    screenshot(page, "review-boxes")

    page.locator("[data-answers] [data-accept='0']").click()  # accept ada's
    _wait_for_other_item(page, first.pk)
    page.wait_for_function("Number(document.querySelector('[data-reviewing]').dataset.decided || 0) >= 1")
    assert not page.console_errors, page.console_errors
    review = Review.objects.get(item=first)
    assert (review.decision, review.value, review.annotation.annotator.username) == (
        "accept",
        ada_value,
        "ada",
    )
    first.refresh_from_db()
    assert (first.final_value, first.final_source) == (ada_value, "review")
    assert review.outcomes == {str(ada.pk): "accepted", str(bob.pk): "corrected"}

    # The second item (both gave ada's boxes): corrected in the box editor from ada's answer.
    assert _shown(page) == second.pk
    page.keyboard.press("c")
    stage = page.locator("[data-correct-stage] [data-editor-stage]")
    stage.wait_for(state="visible")
    assert stage.get_attribute("data-box-count") == "2"
    page.keyboard.press("Tab")
    page.keyboard.press("Tab")  # the LOC box
    assert stage.get_attribute("data-selected") == "1"
    page.keyboard.press("Delete")
    assert stage.get_attribute("data-box-count") == "1"
    # Drag the PER box a fifth of the image to the right, then nudge it 10 pixels down by key.
    world = page.locator("[data-correct-stage] .boxes-world").bounding_box()
    box = page.locator("[data-correct-stage] .box").nth(0).bounding_box()
    x, y = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    page.mouse.move(x, y)
    page.mouse.down()
    page.mouse.move(x + world["width"] * 0.2, y, steps=5)
    page.mouse.up()
    assert stage.get_attribute("data-selected") == "0"
    page.keyboard.press("Shift+ArrowDown")
    screenshot(page, "review-boxes-correcting")
    page.keyboard.press("Enter")
    page.wait_for_selector("[data-reviewing][data-state=empty]")
    page.wait_for_function("Number(document.querySelector('[data-reviewing]').dataset.decided || 0) >= 2")
    assert not page.console_errors, page.console_errors

    correction = Review.objects.get(item=second)
    assert correction.decision == "correct"
    [moved] = correction.value["boxes"]
    assert moved["label"] == "PER"
    assert abs(moved["x"] - 0.3) < 0.02
    assert abs(moved["y"] - (0.1 + 10 / 64)) < 1e-9  # 64 × 64 pixels: 10 of them
    assert (moved["w"], moved["h"]) == pytest.approx((0.4, 0.5))  # the size kept
    second.refresh_from_db()
    assert (second.final_value, second.final_source) == (correction.value, "review")
