"""The proof on the project page, in real chromium (issue 15): Rotten Tomatoes snippets labeled
through the API's queue with its 10% random slice, five training runs as the worker runs them
and labels served by the last version; then the lead reads the random-slice accuracy beside
the validation accuracy, its learning curve with intervals, and the estimate of the labels
random sampling would have needed.

Screenshot: test-artifacts/screenshots/proof-project-page.png.
"""

import io

import pytest
from rest_framework.test import APIClient

from annotate import importing
from annotate.models import Item, PickKind
from tests.browser.conftest import log_in, screenshot
from tests.factories import PASSWORD, UserFactory, make_project
from tests.training.data import reviews as rotten_tomatoes_reviews
from training.runs import training_run_execute, training_run_request

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.django_db(transaction=True)]

ROUNDS, PER_ROUND = 5, 80


def _labeled_and_trained():
    lead, annotator = UserFactory(username="lena"), UserFactory(username="ann")
    project = make_project(
        name="Reviews with proof", labels=["fresh", "rotten"], random_share=0.1,
        members=[(lead, "manager"), (annotator, "annotator")],
    )  # fmt: skip
    reviews = rotten_tomatoes_reviews()[:1500]
    rows = "id,text\n" + "".join(
        f'r{i},"{r.text.replace(chr(34), chr(39))}"\n' for i, r in enumerate(reviews)
    )
    importing.import_csv(
        project=project, file=io.BytesIO(rows.encode()), filename="rt.csv", text_column="text", id_column="id"
    )
    truth = {f"r{i}": r.category for i, r in enumerate(reviews)}
    external = dict(project.items.values_list("pk", "external_id"))
    # Through the API, as the labeling page asks: a slice item's hidden prediction is recorded
    # when it is served there.
    api = APIClient()
    api.force_authenticate(annotator)
    for round_ in range(ROUNDS + 1):
        for _ in range(PER_ROUND):
            item = api.post(f"/api/projects/{project.pk}/next/", {}, format="json").json()["item"]
            answer = {"item": item["id"], "value": {"choices": [truth[external[item["id"]]]]}}
            response = api.post(f"/api/projects/{project.pk}/annotations/", answer, format="json")
            assert response.status_code == 201, response.content
        if round_ == ROUNDS:
            break  # the last labels were served by the last version: they estimate it
        run, _ = training_run_request(project=project, trigger="test")
        assert training_run_execute(run_id=run.pk).status == "succeeded"
    return project, lead


def test_the_lead_reads_the_random_slice_accuracy_its_curve_and_the_random_sampling_estimate(
    page, live_server
):
    project, lead = _labeled_and_trained()
    slice_labeled = Item.objects.filter(project=project, pick_kind=PickKind.RANDOM, is_complete=True).count()
    # About a tenth of the 480 picks were random-slice items.
    assert 20 <= slice_labeled <= 80

    log_in(page, live_server, lead.username, PASSWORD)
    page.goto(f"{live_server.url}/projects/{project.pk}/")
    estimate = page.locator("#random-slice-estimate")
    assert estimate.is_visible()
    text = estimate.inner_text()
    assert text.startswith("Estimated on the random slice: accuracy")
    assert "95% CI" in text and "predicted before their label trained anything" in text
    assert "predictions agree κ =" in text  # against the version before, measured as the pool was scored
    curve = page.locator("#random-slice-curve svg")
    assert curve.is_visible() and "Random-slice accuracy" in curve.inner_html()
    random_curve = page.locator("#random-curve-estimate")
    assert random_curve.is_visible()
    assert "random sampling would have needed" in random_curve.inner_text()
    screenshot(page, "proof-project-page")
    assert page.console_errors == []
