"""The review page in a real browser (Debian's chromium through Playwright), by keyboard alone.

Two annotators label the same digits (overlap 2) with some disagreements; a reviewer accepts one
answer, corrects one item and rejects one answer with a reason; the test checks what was stored,
and the rejected annotator then sees the reason on the labeling page.
"""

import io
import time

import pytest
from django.contrib.auth import get_user_model

from annotate import importing
from annotate.demo import digit_png, digits_arrays
from annotate.models import Annotation, Item, Review
from annotate.queue import annotation_submit, assignment_next
from annotate.review import review_decide
from tests.browser.conftest import in_import_order, log_in, screenshot
from tests.factories import PASSWORD, UserFactory, make_project

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def _digits(value: int) -> dict:
    return {"choices": [str(value % 10)]}


def _two_annotators_label_digits(answers_b, answers_a=None, n=4):
    """A digits project (overlap 2) whose n items ada and bob labeled; bob's answer on item i is
    truth + answers_b[i] (0: right), ada's truth + answers_a[i]. Returns project, items, truths."""
    ada, bob = UserFactory(username="ada"), UserFactory(username="bob")
    rita, remy = UserFactory(username="rita"), UserFactory(username="remy")
    project = make_project(
        name="Digits review",
        task_type="image_classification",
        overlap=2,
        labels=[{"name": str(d), "hotkey": str(d)} for d in range(10)],
        members=[(ada, "annotator"), (bob, "annotator"), (rita, "reviewer"), (remy, "reviewer")],
    )
    pixels, targets = digits_arrays()
    files = [(f"digit-{i:04d}.png", io.BytesIO(digit_png(pixels[i]))) for i in range(n)]
    importing.import_images(project=project, files=files)
    in_import_order(project)
    items = list(Item.objects.filter(project=project).order_by("id"))
    truths = [targets[int(item.external_id[6:10])] for item in items]
    truth_of = {item.pk: truth for item, truth in zip(items, truths, strict=True)}
    answers_a = answers_a or [0] * n
    for annotator, offsets, seconds in ((ada, answers_a, 3200), (bob, answers_b, 7400)):
        for offset in offsets:
            lease = assignment_next(project=project, annotator=annotator)
            truth = truth_of[lease.item.pk]
            annotation_submit(
                project=project,
                item_id=lease.item.pk,
                annotator=annotator,
                value=_digits(truth + offset),
                active_ms=seconds,
            )
    return project, items, truths


def _open_review(page, live_server, project):
    page.goto(f"{live_server.url}/projects/{project.pk}/review/")
    page.wait_for_selector("[data-reviewing][data-state=ready]")
    page.evaluate("window.__noReload = true")


def _shown(page) -> int:
    return int(page.get_attribute("[data-canvas]", "data-item-id"))


def _wait_for_other_item(page, item_id: int) -> None:
    """Until another item is on screen (a quick reviewer may see "Loading the next item…" first)."""
    page.wait_for_function(
        f"(id => id && id !== '{item_id}')(document.querySelector('[data-canvas]').dataset.itemId)"
    )


def _wait_for(page, attribute: str, n: int) -> None:
    page.wait_for_function(
        f"Number(document.querySelector('[data-reviewing]').dataset.{attribute} || 0) >= {n}"
    )


def _wait_for_review_leases_given_back(project, seconds=10) -> None:
    """The page gives its review leases back on pagehide (sendBeacon, which Playwright does not
    report), so the wait reads the database."""
    deadline = time.monotonic() + seconds
    while Item.objects.filter(project=project, review_leased_by_id__isnull=False).exists():
        assert time.monotonic() < deadline, "the review leases were not given back"
        time.sleep(0.05)


def test_reviewer_accepts_corrects_and_rejects_by_keyboard_and_the_annotator_is_told_why(page, live_server):
    # Items 0-2 disagree (bob wrong; on item 1 ada is wrong too), item 3 agrees.
    project, items, truths = _two_annotators_label_digits(answers_b=[1, 1, 3, 0], answers_a=[0, 2, 0, 0])
    first, second, third, fourth = items
    # Training found the agreed label of item 3 suspicious (it writes these columns).
    Item.objects.filter(pk=fourth.pk).update(
        suspicion=0.91, suspect_value=_digits(truths[3] + 4), review_priority=0.91
    )
    log_in(page, live_server, "rita", PASSWORD)
    page.goto(f"{live_server.url}/projects/{project.pk}/")
    page.click("[data-review-link]")
    page.wait_for_selector("[data-reviewing][data-state=ready]")
    page.evaluate("window.__noReload = true")
    assert page.inner_text("[data-waiting]") == "4"

    # Disagreements first, in import order; both answers side by side with who and how long.
    assert _shown(page) == first.pk
    answers = page.locator("[data-answers] [data-answer]")
    assert answers.count() == 2
    assert "ada" in answers.nth(0).inner_text() and "3.2 s" in answers.nth(0).inner_text()
    assert "bob" in answers.nth(1).inner_text() and "7.4 s" in answers.nth(1).inner_text()
    assert "annotators disagree" in page.inner_text("[data-final]")
    assert page.locator("[data-item-image]").is_visible()
    screenshot(page, "review-first-item")
    page.keyboard.press("1")  # accept ada's answer
    _wait_for_other_item(page, first.pk)

    assert _shown(page) == second.pk
    page.keyboard.press("c")
    assert "active" in page.get_attribute("[data-correct-panel]", "class")
    screenshot(page, "review-correct-mode")
    page.keyboard.press(str(truths[1]))  # in correct mode a digit is that label, not an answer
    _wait_for_other_item(page, second.pk)

    assert _shown(page) == third.pk
    page.keyboard.press("ArrowDown")  # select bob's answer
    assert page.get_attribute("[data-answer='1']", "aria-selected") == "true"
    page.keyboard.press("r")
    assert page.locator("[data-reason]").is_visible()
    assert page.evaluate("document.activeElement === document.querySelector('[data-reason]')")
    page.keyboard.type("Look again at the stroke at the bottom: it is not the digit you chose.")
    screenshot(page, "review-reject-reason")
    page.keyboard.press("Enter")
    _wait_for_other_item(page, third.pk)

    assert _shown(page) == fourth.pk
    assert "consensus" in page.inner_text("[data-final]")
    assert "The model doubts this label (suspicion 0.91)" in page.inner_text("[data-suspicion]")
    assert page.inner_text("[data-suspicion] .chip") == str((truths[3] + 4) % 10)  # its alternative
    screenshot(page, "review-suspicious-item")
    page.keyboard.press("n")  # pass the agreed item
    page.wait_for_selector("[data-reviewing][data-state=empty]")
    _wait_for(page, "decided", 3)
    assert "You passed 1" in page.inner_text("[data-item-text]")
    assert page.inner_text("[data-count]") == "3"
    # A passed item is given back at once, for another reviewer; the page keeps it excluded.
    assert Item.objects.get(pk=fourth.pk).review_leased_by_id is None
    screenshot(page, "review-done")
    assert page.evaluate("window.__noReload") is True
    assert not page.console_errors, page.console_errors

    reviews = list(Review.objects.filter(project=project).order_by("id"))
    answer = {(a.item_id, a.annotator.username): a for a in Annotation.objects.filter(project=project)}
    assert [(r.item_id, r.decision, r.reviewer.username) for r in reviews] == [
        (first.pk, "accept", "rita"),
        (second.pk, "correct", "rita"),
        (third.pk, "reject", "rita"),
    ]
    assert reviews[0].annotation_id == answer[first.pk, "ada"].pk
    assert reviews[1].value == _digits(truths[1])
    assert reviews[2].annotation_id == answer[third.pk, "bob"].pk
    assert reviews[2].reason.startswith("Look again at the stroke at the bottom")
    assert all(r.supersedes_id is None for r in reviews)
    for item in items:
        item.refresh_from_db()
    assert (first.final_value, first.final_source, first.review_state) == (
        _digits(truths[0]),
        "review",
        "done",
    )
    assert (second.final_value, second.final_source) == (_digits(truths[1]), "review")
    rejected = answer[third.pk, "bob"]
    rejected.refresh_from_db()
    assert (rejected.rejected, rejected.counted) == (True, False)
    # Back in the labeling queue, Ada's answer alone for now.
    assert (third.annotation_count, third.is_complete, third.review_state) == (1, False, "none")
    assert (third.final_value, third.final_source) == (_digits(truths[2]), "single")
    assert (fourth.final_source, fourth.review_state) == ("consensus", "queued")

    page.goto(f"{live_server.url}/")
    _wait_for_review_leases_given_back(project)
    page.click("nav form button[type=submit]")  # log out rita
    page.wait_for_load_state()
    log_in(page, live_server, "bob", PASSWORD)
    page.goto(f"{live_server.url}/projects/{project.pk}/label/")
    notice = page.locator("[data-review-notice]")
    notice.wait_for()
    assert "Look again at the stroke at the bottom" in notice.inner_text()
    assert third.external_id in notice.inner_text()
    screenshot(page, "review-notice-on-labeling")
    assert Review.objects.get(pk=reviews[2].pk).seen_at is not None


def test_a_decision_that_lost_to_another_reviewer_shows_the_winner_and_the_item_again(page, live_server):
    project, items, truths = _two_annotators_label_digits(answers_b=[1, 1], n=2)
    first = items[0]
    log_in(page, live_server, "rita", PASSWORD)
    _open_review(page, live_server, project)
    assert _shown(page) == first.pk
    # Another reviewer decides the item on screen first.
    remy_decision = review_decide(
        project=project,
        item_id=first.pk,
        reviewer=get_user_model().objects.get(username="remy"),
        decision="correct",
        supersedes=None,
        value=_digits(truths[0] + 5),
    )
    page.keyboard.press("1")
    _wait_for(page, "refused", 1)
    page.wait_for_function(f"document.querySelector('[data-canvas]').dataset.itemId === '{first.pk}'")
    conflict = page.inner_text("[data-conflict]")
    assert "remy decided this item first (correct)" in conflict
    assert "remy" in page.inner_text("[data-history]")
    assert page.inner_text("[data-history-count]") == "1"
    screenshot(page, "review-conflict")
    # Deciding again, having seen remy's decision, supersedes it.
    page.keyboard.press("1")
    _wait_for(page, "decided", 1)
    assert _shown(page) == items[1].pk
    latest = Review.objects.filter(item=first).order_by("-id").first()
    assert (latest.decision, latest.reviewer.username, latest.supersedes_id) == (
        "accept",
        "rita",
        remy_decision.pk,
    )
    first.refresh_from_db()
    assert (first.final_value, first.final_source, first.last_review_id) == (
        _digits(truths[0]),
        "review",
        latest.pk,
    )
    assert Review.objects.filter(item=first).count() == 2
    # The browser logs the refused request itself; nothing else may go wrong.
    unexpected = [m for m in page.console_errors if "status of 409 (Conflict)" not in m]
    assert len(page.console_errors) == 1 and not unexpected, page.console_errors
    page.goto(f"{live_server.url}/")
    _wait_for_review_leases_given_back(project)


def test_a_multi_label_correction_toggles_labels_by_key_and_enter_confirms(page, live_server):
    ann, bea, rita = UserFactory(username="ann"), UserFactory(username="bea"), UserFactory(username="rita")
    project = make_project(
        name="Topics", labels=["sports", "politics", "science"], multi_label=True, overlap=2, items=1,
        members=[(ann, "annotator"), (bea, "annotator"), (rita, "reviewer")],
    )  # fmt: skip
    for annotator, value in ((ann, {"choices": ["sports"]}), (bea, {"choices": ["politics"]})):
        lease = assignment_next(project=project, annotator=annotator)
        annotation_submit(
            project=project, item_id=lease.item.pk, annotator=annotator, value=value, active_ms=900
        )
    item = project.items.get()
    log_in(page, live_server, "rita", PASSWORD)
    _open_review(page, live_server, project)
    assert page.inner_text("[data-item-text]") == item.text
    page.keyboard.press("c")
    page.keyboard.press("1")
    page.keyboard.press("3")
    page.keyboard.press("2")
    page.keyboard.press("2")  # politics off again
    assert page.get_attribute("[data-label=science]", "aria-pressed") == "true"
    assert page.get_attribute("[data-label=politics]", "aria-pressed") == "false"
    screenshot(page, "review-multi-label-correction")
    page.keyboard.press("Enter")
    page.wait_for_selector("[data-reviewing][data-state=empty]")
    _wait_for(page, "decided", 1)
    review = Review.objects.get(item=item)
    assert (review.decision, review.value) == ("correct", {"choices": ["sports", "science"]})
    item.refresh_from_db()
    assert (item.final_value, item.final_source) == ({"choices": ["sports", "science"]}, "review")
    assert not page.console_errors, page.console_errors


# Holds every request for the next review item 400 ms in the browser, as a slow network would.
_SLOW_NEXT = """
const realFetch = window.fetch;
window.fetch = (url, options) => String(url).includes("/review/next/")
  ? new Promise((resolve) => setTimeout(resolve, 400)).then(() => realFetch(url, options))
  : realFetch(url, options);
"""


def test_a_reviewer_quicker_than_the_network_never_gets_a_decided_item_back(page, live_server):
    project, items, _ = _two_annotators_label_digits(answers_b=[1, 1, 1, 1])
    page.add_init_script(_SLOW_NEXT)
    log_in(page, live_server, "rita", PASSWORD)
    _open_review(page, live_server, project)
    page.wait_for_load_state("networkidle")  # the next item is prefetched
    assert _shown(page) == items[0].pk
    page.keyboard.press("1")
    page.keyboard.press("1")  # the second item, while the server is asked for the one after
    _wait_for(page, "decided", 2)
    _wait_for_other_item(page, items[1].pk)
    assert _shown(page) == items[2].pk
    decided = list(Review.objects.filter(project=project).order_by("id").values_list("item_id", flat=True))
    assert decided == [items[0].pk, items[1].pk]
    assert not page.console_errors, page.console_errors
    page.goto(f"{live_server.url}/")
    _wait_for_review_leases_given_back(project)
