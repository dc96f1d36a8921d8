"""The model card in real chromium (issue 16): the lead goes from the project page to the active
version's card, reads the bias warning about a rare class, the per-class table beside the label
shares, and downloads the model.

Screenshot: test-artifacts/screenshots/model-card.png.
"""

import zipfile

import pytest

from tests.browser.conftest import log_in, screenshot
from tests.factories import PASSWORD
from tests.training.test_model_card import _skewed_project
from training.versions import model_version_train

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_the_lead_reads_the_card_and_its_bias_warning_and_downloads_the_model(page, live_server, tmp_path):
    project = _skewed_project(rare=4)
    version = model_version_train(project=project)
    lead = project.memberships.get(role="manager").user
    log_in(page, live_server, lead.username, PASSWORD)
    page.goto(f"{live_server.url}/projects/{project.pk}/")
    page.click("#active-model-card")
    page.wait_for_url(f"**/projects/{project.pk}/models/v{version.number}/")

    warning = page.locator("#bias-warning li")
    assert warning.count() == 2
    assert warning.nth(0).inner_text().startswith("unsure is rare: 4 of 150 training labels")
    rows = page.locator("#card-classes tbody tr")
    assert rows.count() == 3
    unsure = rows.filter(has_text="unsure")
    assert "(rare)" in unsure.inner_text() and "(much worse)" in unsure.inner_text()
    # The share bars are as long as each class's share of the labels, relative to one another.
    widths = [rows.nth(i).locator(".share-bar span").bounding_box()["width"] for i in range(3)]
    counts = [
        int(t.split()[0]) for t in page.locator("#card-classes tbody td:nth-child(2)").all_inner_texts()
    ]
    assert sum(counts) == 150
    for width, count in zip(widths, counts, strict=True):
        assert abs(width / max(widths) - count / max(counts)) < 0.02, (widths, counts)
    assert page.locator("#card-hardware dt", has_text="cores").count() == 1
    screenshot(page, "model-card")

    with page.expect_download() as download:
        page.click("#model-download")
    path = tmp_path / download.value.suggested_filename
    download.value.save_as(path)
    assert path.name == f"labelloop-project-{project.pk}-v{version.number}.zip"
    with zipfile.ZipFile(path) as archive:
        assert f"{path.stem}/labelloop_model/__main__.py" in archive.namelist()
    assert page.console_errors == []
