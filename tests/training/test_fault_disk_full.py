"""Fault: the disk fills up while a model artifact is written (issue 17, item 8).

At the fault point `artifact.file_writing` (training/artifact_store.py), after the storage has
written the first chunk of one of the new version's files, the write fails as the OS fails it:
OSError(ENOSPC). What protects the loop: `artifact_upload` deletes every file it wrote under the
new version's prefix, the partial one included (FileSystemStorage leaves it behind); the version
row, the commit point, is never written; `training_run_execute` fails the run with a message that
says the disk is full, and the active version changes only once a run has succeeded.
"""

import errno

import pytest
from django.core.files.storage import default_storage

from annotate.faults import fault_hooked
from tests.training.projects import reviews_project
from training.models import ModelVersion
from training.runs import training_run_execute, training_run_request
from training.scoring import prediction_pool_score
from training.versions import model_inputs, model_version_backend, model_version_train

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]


def _files(prefix: str) -> dict[str, bytes]:
    _, names = default_storage.listdir(prefix)
    return {name: default_storage.open(f"{prefix}/{name}").read() for name in names}


def _prefixes(project) -> set[str]:
    root = f"models/project-{project.pk}"
    folders, _ = default_storage.listdir(root)
    return {f"{root}/{folder}" for folder in folders if _files(f"{root}/{folder}")}


def test_a_full_disk_while_writing_a_model_fails_the_run_and_keeps_the_active_model(settings, tmp_path):
    project = reviews_project(n=120, labeled=90)
    active = model_version_train(project=project, folds=0, diagnostics=False)
    prediction_pool_score(version=active)
    files_before = _files(active.artifact_path)
    assert "model.json" in files_before and len(files_before) >= 2
    item_ids = list(project.items.order_by("pk").values_list("pk", flat=True)[:20])
    proba_before = model_version_backend(active).predict_proba(
        model_inputs(project=project, backend=model_version_backend(active), item_ids=item_ids)
    )
    # A fresh cache: loading the active version after the fault must read it from the storage.
    settings.LABELLOOP_CACHE_DIR = tmp_path / "cache-after"

    writes = []

    def disk_full(*, name: str, written: int) -> None:
        writes.append((name, written))
        if len(writes) == 2:  # the second file: the first is stored whole and must go too
            raise OSError(errno.ENOSPC, "No space left on device", name)

    run, _ = training_run_request(project=project, trigger="test")
    with fault_hooked("artifact.file_writing", disk_full):
        run = training_run_execute(run_id=run.pk)

    assert len(writes) == 2, writes
    assert run.status == "failed"
    assert "the disk is full" in run.error and "No space left on device" in run.error, run.error
    assert "active model is unchanged" in run.error
    new_prefix = writes[0][0].rsplit("/", 1)[0]
    assert new_prefix != active.artifact_path
    assert not _files(new_prefix), "the failed version's files (the partial one too) were left"
    assert _prefixes(project) == {active.artifact_path}
    assert list(ModelVersion.objects.filter(project=project)) == [active]
    active.refresh_from_db()
    assert active.is_active
    assert _files(active.artifact_path) == files_before
    backend = model_version_backend(active)
    proba_after = backend.predict_proba(model_inputs(project=project, backend=backend, item_ids=item_ids))
    assert (proba_after == proba_before).all()

    retry, _ = training_run_request(project=project, trigger="test")
    retry = training_run_execute(run_id=retry.pk)
    assert retry.status == "succeeded", retry.error
    assert retry.model_version.is_active and retry.model_version != active
    assert _prefixes(project) == {active.artifact_path, retry.model_version.artifact_path}
