"""The labeling page in a real browser (Debian's chromium through Playwright), by keyboard alone."""

import io
import json
import time

import pytest

from annotate import importing
from annotate.demo import digit_png, digits_arrays
from annotate.models import Annotation, Item, Skip
from tests.browser.conftest import in_import_order, log_in, screenshot
from tests.factories import PASSWORD, UserFactory, make_project
from tests.training.data import reviews as rotten_tomatoes_reviews

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def _digits_project(annotator, n=8):
    project = make_project(
        name="Digits",
        task_type="image_classification",
        labels=[{"name": str(d), "hotkey": str(d)} for d in range(10)],
        members=[(annotator, "annotator")],
        instructions="Press the digit's key.",
    )
    pixels, targets = digits_arrays()
    files = [(f"digit-{i:04d}.png", io.BytesIO(digit_png(pixels[i]))) for i in range(n)]
    importing.import_images(project=project, files=files)
    in_import_order(project)
    return project, targets[:n]


def _reviews_project(annotator, n=8):
    project = make_project(name="Reviews", labels=["fresh", "rotten"], members=[(annotator, "annotator")])
    reviews = rotten_tomatoes_reviews()[:n]
    rows = "".join(json.dumps({"id": f"rt-{i}", "text": r.text}) + "\n" for i, r in enumerate(reviews))
    importing.import_jsonl(project=project, file=io.BytesIO(rows.encode()), filename="rt.jsonl")
    in_import_order(project)
    return project, reviews


def _open_labeling(page, live_server, project):
    page.goto(f"{live_server.url}/projects/{project.pk}/label/")
    page.wait_for_selector("[data-labeling][data-state=ready]")
    # A marker that a full page load would wipe out.
    page.evaluate("window.__noReload = true")


def _shown_item_id(page) -> int:
    return int(page.get_attribute("[data-canvas]", "data-item-id"))


def _wait_for_saved(page, n):
    page.wait_for_function(f"Number(document.querySelector('[data-labeling]').dataset.saved || 0) >= {n}")


def test_annotator_labels_five_digits_and_five_reviews_by_keyboard_and_skips_one(page, live_server):
    annotator = UserFactory(username="ann")
    digits, truth = _digits_project(annotator)
    reviews, _ = _reviews_project(annotator)
    log_in(page, live_server, "ann", PASSWORD)

    _open_labeling(page, live_server, digits)
    screenshot(page, "labeling-digit-first")
    img = page.locator("[data-item-image]")
    assert img.is_visible()
    assert "pixelated" in img.get_attribute("class")
    pressed = {}
    for _ in range(5):
        item_id = _shown_item_id(page)
        digit = str(truth[int(Item.objects.get(pk=item_id).external_id[6:10])])
        pressed[item_id] = digit
        page.keyboard.press(digit)
        page.wait_for_function(f"document.querySelector('[data-canvas]').dataset.itemId !== '{item_id}'")
    skipped = _shown_item_id(page)
    page.keyboard.press("s")
    page.wait_for_function(f"document.querySelector('[data-canvas]').dataset.itemId !== '{skipped}'")
    _wait_for_saved(page, 5)
    screenshot(page, "labeling-digit-after-five")
    assert page.evaluate("window.__noReload") is True

    _open_labeling(page, live_server, reviews)
    assert page.locator("[data-item-text]").is_visible()
    screenshot(page, "labeling-review-first")
    keys = ["1", "2", "1", "1", "2"]
    for key in keys:
        item_id = _shown_item_id(page)
        page.keyboard.press(key)
        page.wait_for_function(f"document.querySelector('[data-canvas]').dataset.itemId !== '{item_id}'")
    _wait_for_saved(page, 5)
    assert page.evaluate("window.__noReload") is True

    stored = {a.item_id: a.value["choices"] for a in Annotation.objects.filter(project=digits)}
    assert stored == {item_id: [digit] for item_id, digit in pressed.items()}
    assert Skip.objects.filter(annotator=annotator, item_id=skipped).exists()
    review_values = [a.value["choices"][0] for a in Annotation.objects.filter(project=reviews).order_by("id")]
    assert review_values == ["fresh", "rotten", "fresh", "fresh", "rotten"]
    assert all(a.active_ms > 0 for a in Annotation.objects.filter(annotator=annotator))
    assert not page.console_errors, page.console_errors


def test_multi_label_item_toggles_labels_then_enter_submits(page, live_server):
    annotator = UserFactory(username="multi")
    project = make_project(
        name="Topics", labels=["sports", "politics", "science"], multi_label=True, items=2,
        members=[(annotator, "annotator")],
    )  # fmt: skip
    log_in(page, live_server, "multi", PASSWORD)
    _open_labeling(page, live_server, project)
    first = _shown_item_id(page)
    page.keyboard.press("1")
    page.keyboard.press("3")
    page.keyboard.press("2")
    page.keyboard.press("2")  # toggles politics off again
    assert page.get_attribute("[data-label=science]", "aria-pressed") == "true"
    screenshot(page, "labeling-multi-selected")
    page.keyboard.press("Enter")
    _wait_for_saved(page, 1)
    assert Annotation.objects.get(item_id=first).value == {"choices": ["sports", "science"]}
    assert _shown_item_id(page) != first


def test_text_containing_a_script_tag_shows_as_text(page, live_server):
    annotator = UserFactory(username="safe")
    project = make_project(name="Unsafe", members=[(annotator, "annotator")])
    hostile = '<script>window.__pwned = true</script><b>bold?</b> <img src=x onerror="window.__pwned=true">'
    from annotate.items import item_create_bulk

    item_create_bulk(project=project, rows=[{"external_id": "x", "text": hostile}])
    log_in(page, live_server, "safe", PASSWORD)
    _open_labeling(page, live_server, project)
    assert page.inner_text("[data-item-text]") == hostile
    assert page.locator("[data-item-text] script, [data-item-text] b, [data-item-text] img").count() == 0
    assert page.evaluate("window.__pwned === undefined")
    screenshot(page, "labeling-script-as-text")


def test_the_labeling_page_shows_the_models_proposal_and_records_whether_it_was_accepted(page, live_server):
    from tests.training.projects import reviews_project
    from training.scoring import prediction_pool_score
    from training.versions import model_version_train

    project = reviews_project(n=120)
    annotator = UserFactory(username="proposals")
    project.memberships.create(user=annotator, role="annotator")
    more = rotten_tomatoes_reviews()[120:140]
    rows = "".join(json.dumps({"id": f"pool-{i}", "text": r.text}) + "\n" for i, r in enumerate(more))
    importing.import_jsonl(project=project, file=io.BytesIO(rows.encode()), filename="pool.jsonl")
    in_import_order(project)
    version = model_version_train(project=project)
    prediction_pool_score(version=version)

    log_in(page, live_server, "proposals", PASSWORD)
    _open_labeling(page, live_server, project)
    proposal = page.inner_text("[data-proposal]")
    assert proposal.startswith("Proposed: ") and "confident). Enter accepts." in proposal
    proposed = proposal.removeprefix("Proposed: ").split(" (")[0]
    assert page.get_attribute(f"[data-label={proposed}]", "aria-pressed") == "true"
    screenshot(page, "labeling-proposal")
    accepted_item = _shown_item_id(page)
    page.keyboard.press("Enter")
    page.wait_for_function(f"document.querySelector('[data-canvas]').dataset.itemId !== '{accepted_item}'")
    changed_item = _shown_item_id(page)
    shown = page.inner_text("[data-proposal]").removeprefix("Proposed: ").split(" (")[0]
    page.keyboard.press("2" if shown == "fresh" else "1")  # the other label
    _wait_for_saved(page, 2)
    accepted = Annotation.objects.get(item_id=accepted_item)
    changed = Annotation.objects.get(item_id=changed_item)
    assert (accepted.proposal_model_version_id, accepted.proposal_accepted) == (version.pk, True)
    assert accepted.value == {"choices": [proposed]}
    assert (changed.proposal_model_version_id, changed.proposal_accepted) == (version.pk, False)


def test_leaving_the_labeling_page_gives_the_held_items_back(page, live_server):
    from annotate.models import Assignment

    annotator = UserFactory(username="leaver")
    project = make_project(name="Leaving", items=5, members=[(annotator, "annotator")])
    log_in(page, live_server, "leaver", PASSWORD)
    _open_labeling(page, live_server, project)
    deadline = time.monotonic() + 10
    while Assignment.objects.filter(project=project, status="open").count() < 2:
        assert time.monotonic() < deadline, "the page did not prefetch a second item"
        time.sleep(0.1)
    page.goto(f"{live_server.url}/")
    deadline = time.monotonic() + 10
    while Assignment.objects.filter(project=project, status="open").exists():
        assert time.monotonic() < deadline, "the leases were not given back"
        time.sleep(0.1)


def _delayed_fetch(condition: str, ms: int, setup: str = "") -> str:
    """An init script that holds back by `ms` each fetch whose `url` meets the JS `condition`."""
    return f"""
{setup}
const realFetch = window.fetch;
window.fetch = (url, options) => ({condition})
  ? new Promise((resolve) => setTimeout(resolve, {ms})).then(() => realFetch(url, options))
  : realFetch(url, options);
"""


_SLOW_SUBMIT = _delayed_fetch('String(url).includes("/submit-and-next/")', 500)


def test_an_annotator_quicker_than_the_network_never_gets_a_labeled_item_back(page, live_server):
    annotator = UserFactory(username="quick")
    project, _ = _digits_project(annotator, n=6)
    items = list(Item.objects.filter(project=project).order_by("id").values_list("id", flat=True))
    page.add_init_script(_SLOW_SUBMIT)
    log_in(page, live_server, "quick", PASSWORD)
    _open_labeling(page, live_server, project)
    page.wait_for_load_state("networkidle")  # the next item is prefetched
    assert _shown_item_id(page) == items[0]
    # The second item is labeled while the first's submit is still on its way. Each request's
    # exclude list is read when it is sent, and the page moves only to items already shown, so
    # the first submit's answer cannot be the second item (still leased to this annotator).
    page.keyboard.press("1")
    page.keyboard.press("2")
    _wait_for_saved(page, 2)
    page.wait_for_function(
        f"Number(document.querySelector('[data-canvas]').dataset.itemId) === {items[2]}", timeout=10_000
    )
    time.sleep(0.5)
    assert _shown_item_id(page) == items[2]
    assert (
        list(Annotation.objects.filter(project=project).order_by("id").values_list("item_id", flat=True))
        == items[:2]
    )
    assert not page.console_errors, page.console_errors


# The second next/ request is the prefetch of the item after the first.
_SLOW_PREFETCH = _delayed_fetch(
    'String(url).endsWith("/next/") && ++nexts === 2', 1000, setup="let nexts = 0;"
)


def test_an_answer_given_before_the_next_item_arrives_shows_that_item_when_it_comes(page, live_server):
    """Enter on the first item while the prefetch of the second is still on its way: the page
    waits for it and shows it, rather than saying the queue is empty."""
    annotator = UserFactory(username="eager")
    project, _ = _reviews_project(annotator, n=2)
    items = list(Item.objects.filter(project=project).order_by("id").values_list("id", flat=True))
    page.add_init_script(_SLOW_PREFETCH)
    log_in(page, live_server, "eager", PASSWORD)
    _open_labeling(page, live_server, project)
    assert _shown_item_id(page) == items[0]
    page.keyboard.press("1")  # fresh: a single-choice label submits at once
    page.wait_for_function(
        f"Number(document.querySelector('[data-canvas]').dataset.itemId) === {items[1]}", timeout=10_000
    )
    _wait_for_saved(page, 1)
    assert page.get_attribute("[data-labeling]", "data-state") == "ready"
    assert list(Annotation.objects.filter(project=project).values_list("item_id", flat=True)) == items[:1]
    assert not page.console_errors, page.console_errors


# The first submit reaches the server and is stored, but its answer never comes back: the page
# sees a network error, keeps the submit in its outbox and sends it again to annotations/.
_LOST_ANSWER = """
let lost = false;
const realFetch = window.fetch;
window.fetch = (url, options) => {
  if (!lost && String(url).includes("/submit-and-next/")) {
    lost = true;
    return realFetch(url, options).then(() => { throw new TypeError("Failed to fetch"); });
  }
  return realFetch(url, options);
};
"""


def test_a_submit_whose_answer_is_lost_is_sent_again_and_stored_once(page, live_server):
    """Issue 17, item 5: the page sends one idempotency key per item shown, so the outbox's resend
    of a submit the server did store adds nothing (without the key it stored a second row)."""
    annotator = UserFactory(username="resend")
    project, _ = _reviews_project(annotator, n=3)
    items = list(Item.objects.filter(project=project).order_by("id").values_list("id", flat=True))
    page.add_init_script(_LOST_ANSWER)
    log_in(page, live_server, "resend", PASSWORD)
    _open_labeling(page, live_server, project)
    assert _shown_item_id(page) == items[0]
    page.keyboard.press("1")
    # The outbox is sent again 5 s after the stash; then it is empty.
    page.wait_for_function("localStorage.getItem('labelloop.outbox') === '[]'", timeout=15_000)
    annotations = list(Annotation.objects.filter(project=project).values_list("item_id", "idempotency_key"))
    assert len(annotations) == 1 and annotations[0][0] == items[0], annotations
    assert len(annotations[0][1]) >= 32  # the page's key (a UUID)
    assert not page.console_errors, page.console_errors
