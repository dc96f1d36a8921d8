"""The issue's walkthrough, in real chromium: two annotators label the same 30 digits (overlap 2)
with some disagreements, a reviewer resolves them in the review queue by keyboard, the lead reads
kappa and alpha, each annotator's gold accuracy and the review outcomes on the dashboards, and,
after a retrain, the suspicious labels with the model's alternative in the item browser.

Screenshots land in test-artifacts/screenshots/walkthrough-*.png.
"""

import io

import pytest

from annotate import importing, queue
from annotate.demo import digit_png, digits_arrays
from annotate.gold import item_gold_set
from annotate.models import Annotation, Item, Review
from tests.browser.conftest import in_import_order, log_in, screenshot
from tests.factories import PASSWORD, UserFactory, make_project
from training.models import TrainingRun
from training.runs import training_run_execute

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.django_db(transaction=True)]

LABELED, GOLD = 30, 6


def _project():
    people = {name: UserFactory(username=name) for name in ("ann", "ben", "rita", "lena")}
    project = make_project(
        name="Digits walkthrough",
        task_type="image_classification",
        overlap=2,
        gold_share=0.2,
        labels=[{"name": str(d), "hotkey": str(d)} for d in range(10)],
        members=[
            (people["ann"], "annotator"),
            (people["ben"], "annotator"),
            (people["rita"], "reviewer"),
            (people["lena"], "manager"),
        ],
    )
    pixels, targets = digits_arrays()
    files = [(f"digit-{i:04d}.png", io.BytesIO(digit_png(pixels[i]))) for i in range(LABELED + GOLD)]
    importing.import_images(project=project, files=files)
    in_import_order(project)
    truth = {item.pk: targets[int(item.external_id[6:10])] for item in Item.objects.filter(project=project)}
    for item in Item.objects.filter(project=project).order_by("-id")[:GOLD]:
        item_gold_set(project=project, item_id=item.pk, value={"choices": [str(truth[item.pk])]})
    return project, people, truth


def _label_by_keyboard(page, live_server, project, username, answer_of):
    log_in(page, live_server, username, PASSWORD)
    page.goto(f"{live_server.url}/projects/{project.pk}/label/")
    page.wait_for_selector("[data-labeling][data-state=ready]")
    done = 0
    while page.get_attribute("[data-labeling]", "data-state") != "empty":
        item_id = page.get_attribute("[data-canvas]", "data-item-id")
        if not item_id:
            break
        page.keyboard.press(str(answer_of(int(item_id))))
        done += 1
        page.wait_for_function(
            "(el => el.dataset.state === 'empty'"
            f" || el.querySelector('[data-canvas]').dataset.itemId !== '{item_id}')"
            "(document.querySelector('[data-labeling]'))"
        )
    page.wait_for_function(f"Number(document.querySelector('[data-labeling]').dataset.saved || 0) >= {done}")
    return done


def test_two_annotators_a_reviewer_and_a_lead_go_through_review_quality_and_suspicious_labels(
    page, live_server
):
    project, people, truth = _project()
    queue._random.seed(5)
    ordinary = sorted(pk for pk in truth if Item.objects.get(pk=pk).pick_kind != "gold")
    # ben disagrees with ann on every fifth digit; both agree on a wrong digit for three items
    # (what only a model can doubt); on gold digits ben is right half the time.
    wrong_by_ben = set(ordinary[::5])
    wrong_by_both = {ordinary[3], ordinary[16], ordinary[27]}  # three digits of three classes
    gold_ids = set(truth) - set(ordinary)

    def ann(item_id):
        return (truth[item_id] + (3 if item_id in wrong_by_both else 0)) % 10

    def ben(item_id):
        if item_id in gold_ids:
            return truth[item_id] if item_id % 2 else (truth[item_id] + 1) % 10
        return (ann(item_id) + 1) % 10 if item_id in wrong_by_ben else ann(item_id)

    assert _label_by_keyboard(page, live_server, project, "ann", ann) >= LABELED
    screenshot(page, "walkthrough-1-labeling-done")
    page.context.clear_cookies()
    assert _label_by_keyboard(page, live_server, project, "ben", ben) >= LABELED
    disagreements = set(Item.objects.filter(project=project, disagreement=True).values_list("id", flat=True))
    assert disagreements == wrong_by_ben

    # The reviewer settles every disagreement by keyboard: accept the right answer.
    page.context.clear_cookies()
    log_in(page, live_server, "rita", PASSWORD)
    page.goto(f"{live_server.url}/projects/{project.pk}/review/")
    page.wait_for_selector("[data-reviewing][data-state=ready]")
    screenshot(page, "walkthrough-2-review")
    previous = ""
    for _ in range(len(disagreements)):
        page.wait_for_function(
            f"(id => id && id !== '{previous}')(document.querySelector('[data-canvas]').dataset.itemId)"
        )
        previous = page.get_attribute("[data-canvas]", "data-item-id")
        item_id = int(previous)
        assert item_id in disagreements  # disagreements come first
        answers = list(
            Annotation.objects.filter(item_id=item_id).order_by("id").values_list("value", flat=True)
        )
        right = next(
            n for n, value in enumerate(answers, start=1) if value["choices"] == [str(truth[item_id])]
        )
        page.keyboard.press(str(right))
        page.wait_for_function(f"document.querySelector('[data-canvas]').dataset.itemId !== '{item_id}'")
    page.wait_for_function(
        f"Number(document.querySelector('[data-reviewing]').dataset.decided || 0) >= {len(disagreements)}"
    )
    stored = {r.item_id: r for r in Review.objects.filter(project=project)}
    assert set(stored) == disagreements
    for item_id in disagreements:
        item = Item.objects.get(pk=item_id)
        assert (item.final_source, item.final_value) == ("review", {"choices": [str(truth[item_id])]})
        assert stored[item_id].decision == "accept"

    # The lead reads agreement, gold accuracy and review outcomes on the dashboards.
    page.context.clear_cookies()
    log_in(page, live_server, "lena", PASSWORD)
    page.goto(f"{live_server.url}/projects/{project.pk}/dashboards/")
    for chart in ("agreement", "gold", "reviews"):
        assert page.locator(f"[data-chart={chart}] svg").count() >= 1, chart
    agreement = page.inner_text("[data-chart=agreement]")
    assert "kappa" in agreement.lower() and "alpha" in agreement.lower()
    assert "ann" in page.inner_text("[data-chart=gold]") and "ben" in page.inner_text("[data-chart=gold]")
    screenshot(page, "walkthrough-3-dashboards")

    # After a retrain (the lead asks; the test runs what the worker would), the item browser
    # lists the suspicious labels with the model's alternative.
    page.goto(f"{live_server.url}/projects/{project.pk}/")
    page.click("text=Retrain now")
    page.wait_for_function(
        "document.body.innerText.includes('queued') || document.body.innerText.includes('Queued')"
    )
    run = TrainingRun.objects.get(project=project)
    assert training_run_execute(run_id=run.pk).status == "succeeded"
    flagged = list(Item.objects.filter(project=project, suspicion__isnull=False).order_by("-suspicion"))
    # Labels both annotators got wrong agree, so only the model can doubt them.
    assert wrong_by_both & {item.pk for item in flagged}, "the retrain flagged none of the wrong labels"
    page.goto(f"{live_server.url}/projects/{project.pk}/items/?suspicious=1")
    table = page.inner_text(".browser-table")
    for item in flagged[:5]:
        assert item.external_id in table
        assert item.suspect_value["choices"][0] in table
    screenshot(page, "walkthrough-4-suspicious")
    assert not page.console_errors, page.console_errors
