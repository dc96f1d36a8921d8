"""Files go through Django's storage API only: the whole loop on a storage whose `path()` raises.

Images imported through the API, served through the studio, trained on by a worker that stands
for another machine (its own cache folder, the storage named by environment variables), the
model loaded back here from the storage, and an export job written by the worker and downloaded.
Nothing lands under MEDIA_ROOT.
"""

import io
import json
import time
from pathlib import Path

import pytest
from django.core.files.storage import default_storage
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.urls import reverse
from rest_framework.test import APIClient

from annotate.demo import digit_png, digits_arrays
from annotate.models import Annotation, ExportJob, Item, Membership
from annotate.queue import annotation_submit, assignment_next
from tests.factories import UserFactory, make_project
from tests.workers import wait_until, worker_logs
from training import versions
from training.runs import training_run_request
from training.versions import model_inputs, model_version_backend

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

N_IMAGES, N_LABELED = 80, 70


@pytest.fixture
def no_path_storage(settings, tmp_path):
    options = {"location": str(tmp_path / "objects"), "base_url": "/objects/"}
    settings.STORAGES = {
        **settings.STORAGES,
        "default": {"BACKEND": "tests.storage.NoPathStorage", "OPTIONS": options},
    }
    with pytest.raises(NotImplementedError):
        default_storage.path("anything")
    return options


def test_the_loop_runs_on_a_storage_without_local_paths(no_path_storage, settings, tmp_path, workers):
    annotator = UserFactory()
    project = make_project(
        task_type="image_classification", labels=[str(d) for d in range(10)],
        members=[(annotator, Membership.Role.ANNOTATOR)], training_min_labels=10,
    )  # fmt: skip
    lead = project.memberships.get(role=Membership.Role.MANAGER).user
    client = APIClient()
    client.force_authenticate(lead)
    pixels, targets = digits_arrays()
    pngs = [digit_png(pixels[i]) for i in range(N_IMAGES)]
    files = [SimpleUploadedFile(f"d{i}.png", png, content_type="image/png") for i, png in enumerate(pngs)]
    response = client.post(
        reverse("api:import-list", kwargs={"project_id": project.pk}), {"file": files}, format="multipart"
    )
    assert response.status_code == 201, response.content
    items = list(Item.objects.filter(project=project).order_by("id"))
    assert len(items) == N_IMAGES
    for _ in range(N_LABELED):
        item = assignment_next(project=project, annotator=annotator).item
        digit = str(targets[int(item.external_id[1:-4])])
        annotation_submit(project=project, item_id=item.pk, annotator=annotator, value={"choices": [digit]})
    labeled = set(Annotation.objects.filter(project=project).values_list("item_id", flat=True))

    browser = Client()
    browser.force_login(annotator)
    page = browser.get(reverse("annotate:item-image", args=[project.pk, items[0].pk]))
    assert page.status_code == 200
    assert b"".join(page.streaming_content) == pngs[int(items[0].external_id[1:-4])]

    worker_cache = tmp_path / "worker-cache"
    workers(
        "filesystem://",
        LABELLOOP_STORAGE_BACKEND="tests.storage.NoPathStorage",
        LABELLOOP_STORAGE_OPTIONS=json.dumps(no_path_storage),
        LABELLOOP_CACHE_DIR=str(worker_cache),
    )
    run, _ = training_run_request(project=project, trigger="test")
    run = wait_until(run, lambda r: not r.is_open)
    assert run.status == "succeeded", run.error
    assert run.items_scored == N_IMAGES - N_LABELED
    version = run.model_version
    assert default_storage.exists(f"{version.artifact_path}/model.json")

    # This process never saw the files: it downloads them from the storage into its own cache.
    versions._load_backend.cache_clear()
    assert not (Path(settings.LABELLOOP_CACHE_DIR) / "models").exists()
    backend = model_version_backend(version)
    unlabeled = [item.pk for item in items if item.pk not in labeled]
    proba = backend.predict_proba(model_inputs(project=project, backend=backend, item_ids=unlabeled))
    assert proba.shape == (len(unlabeled), 10)
    response = APIClient()
    response.force_authenticate(annotator)
    lease = response.post(reverse("api:next", kwargs={"project_id": project.pk}), {}, format="json").json()
    assert lease["item"]["proposal"]["model_version_id"] == version.pk

    response = client.post(
        reverse("api:export-list", kwargs={"project_id": project.pk}), {"format": "jsonl"}, format="json"
    )
    assert response.status_code == 202, response.content
    job = ExportJob.objects.get(pk=response.json()["id"])
    deadline = time.monotonic() + 60
    while job.status != ExportJob.Status.SUCCEEDED and time.monotonic() < deadline:
        assert job.status != ExportJob.Status.FAILED, job.error
        time.sleep(0.2)
        job.refresh_from_db()
    assert job.status == ExportJob.Status.SUCCEEDED, worker_logs()
    download = client.get(reverse("api:export-download", kwargs={"project_id": project.pk, "job_id": job.pk}))
    assert download.status_code == 200
    rows = [json.loads(line) for line in io.BytesIO(b"".join(download.streaming_content))]
    assert len(rows) == N_IMAGES

    leftovers = [p for p in Path(settings.MEDIA_ROOT).rglob("*") if p.is_file()]
    assert leftovers == []
