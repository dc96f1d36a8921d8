"""A model version downloaded as a zip predicts outside the studio (training/download.py, the loader
training/backends/loader.py run as `python -m labelloop_model`): the same labels as the studio and
probabilities within 1e-6, in a process where Django cannot be imported and that imports nothing
outside the packages its download.json lists (and what those need). An altered file is refused; only
the project's managers may download."""

import io
import json
import os
import re
import subprocess
import sys
import zipfile
from importlib import metadata
from pathlib import Path

import numpy as np
import pytest
from django.urls import reverse
from packaging.requirements import Requirement
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from annotate.models import Item
from tests.factories import UserFactory
from tests.training.projects import digits_project, reviews_project

# Train as the worker does: one torch thread (test_backends' autouse fixture, used here too).
from tests.training.test_backends import _one_torch_thread  # noqa: F401
from training.versions import model_inputs, model_version_backend, model_version_train

pytestmark = pytest.mark.django_db

# Runs the loader as `python -m labelloop_model` would, with every installed distribution outside
# those its download.json lists (and what they need) made unimportable — Django among them — and
# writes the top-level modules it imported to the file named by LOADER_MODULES.
DRIVER = """
import os, runpy, sys
BLOCKED = set(os.environ["LOADER_BLOCKED"].split())
AT_START = set(sys.modules)  # the interpreter's own start-up (site's .pth files)

class Blocked:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ModuleNotFoundError(f"No module named {name!r} (not in download.json)", name=name)
        return None

sys.meta_path.insert(0, Blocked())
try:
    runpy.run_module("labelloop_model", run_name="__main__", alter_sys=True)
finally:
    with open(os.environ["LOADER_MODULES"], "w") as out:
        out.write("\\n".join(sorted({m.split(".")[0] for m in set(sys.modules) - AT_START})))
"""


def _lead_client(project) -> APIClient:
    client = APIClient()
    lead = project.memberships.get(role="manager").user
    client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=lead).key}")
    return client


def _download(project, version, tmp_path: Path) -> Path:
    """The version downloaded through the API and unzipped: its folder."""
    response = _lead_client(project).get(
        reverse("api:model-version-download", args=[project.pk, version.number])
    )
    assert response.status_code == 200, response.content[:300]
    assert response["Content-Type"] == "application/zip"
    name = f"labelloop-project-{project.pk}-v{version.number}"
    assert response["Content-Disposition"] == f'attachment; filename="{name}.zip"'
    with zipfile.ZipFile(io.BytesIO(response.content)) as archive:
        assert all(n.startswith(f"{name}/") for n in archive.namelist())
        archive.extractall(tmp_path)
    return tmp_path / name


def _blocked(folder: Path) -> list[str]:
    """The top-level modules of every installed distribution the download does not list or need."""
    allowed = _requirement_closure(json.loads((folder / "download.json").read_text())["packages"])
    return sorted(
        module
        for module, owners in metadata.packages_distributions().items()
        if not any(_canonical(owner) in allowed for owner in owners) and module.isidentifier()
    )


def _run_loader(folder: Path, *args: str) -> tuple[subprocess.CompletedProcess, set[str]]:
    modules = folder.parent / "modules.txt"
    blocked = " ".join(_blocked(folder))
    assert "django" in blocked.split() and "rest_framework" in blocked.split()
    env = {
        "PATH": os.environ["PATH"],
        "HOME": str(folder),
        "LOADER_MODULES": str(modules),
        "LOADER_BLOCKED": blocked,
    }
    done = subprocess.run(
        [sys.executable, "-E", "-s", "-c", DRIVER, *args],
        cwd=folder, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    return done, set(modules.read_text().split()) if modules.exists() else set()


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _requirement_closure(names) -> set[str]:
    """The distributions `names` need, with everything they need in turn (extras left out)."""
    seen, todo = set(), [_canonical(n) for n in names]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        for line in metadata.requires(name) or []:
            requirement = Requirement(line)
            if requirement.marker is None or requirement.marker.evaluate({"extra": ""}):
                todo.append(_canonical(requirement.name))
    return seen


def _imported_distributions(modules: set[str]) -> set[str]:
    owners = metadata.packages_distributions()
    return {_canonical(d) for m in modules for d in owners.get(m, [])}


def _studio_proba(project, version, item_ids):
    backend = model_version_backend(version)
    return backend, backend.predict_proba(model_inputs(project=project, backend=backend, item_ids=item_ids))


def _check_same_as_studio(lines, backend, proba):
    assert len(lines) == len(proba)
    for line, row in zip(lines, proba, strict=True):
        answer = json.loads(line)
        assert answer["value"] == {"choices": [backend.classes[int(np.argmax(row))]]}
        got = np.asarray([answer["probabilities"][c] for c in backend.classes])
        assert np.abs(got - row).max() <= 1e-6


def test_a_downloaded_text_model_predicts_as_the_studio_does_without_django(tmp_path):
    project = reviews_project(n=120)
    version = model_version_train(project=project, folds=0, diagnostics=False)
    folder = _download(project, version, tmp_path)
    manifest = json.loads((folder / "download.json").read_text())
    assert manifest["backend"] == "text_logreg" and manifest["classes"] == ["fresh", "rotten"]
    assert set(manifest["packages"]) == {"numpy", "scipy", "scikit-learn"}
    assert "pip install numpy==" in (folder / "README.txt").read_text()

    items = list(Item.objects.filter(project=project).order_by("pk")[:40])
    (tmp_path / "texts.txt").write_text("\n".join(item.text for item in items) + "\n", encoding="utf-8")
    done, modules = _run_loader(folder, "--input", str(tmp_path / "texts.txt"))
    assert done.returncode == 0, done.stderr
    backend, proba = _studio_proba(project, version, [item.pk for item in items])
    _check_same_as_studio(done.stdout.splitlines(), backend, proba)
    # It ran with nothing importable but the listed packages and what they need (not Django).
    outside = _imported_distributions(modules) - _requirement_closure(manifest["packages"])
    assert not outside, sorted(outside)
    assert {"numpy", "scipy", "sklearn", "training", "labelloop_model"} <= modules

    # One text on the command line gives the same as in the file.
    first, *_ = done.stdout.splitlines()
    again, _ = _run_loader(folder, "--text", items[0].text)
    assert json.loads(again.stdout) == json.loads(first)


def test_a_downloaded_image_model_predicts_the_items_files_as_the_studio_does(tmp_path):
    project = digits_project(n=60)
    # A side the PNGs are not: the loader must resize and round to 8 bits as the studio caches them.
    project.training_params = {"epochs": 2, "input_size": 24}
    project.save(update_fields=["training_params"])
    version = model_version_train(project=project, folds=0, diagnostics=False)
    folder = _download(project, version, tmp_path)
    manifest = json.loads((folder / "download.json").read_text())
    assert set(manifest["packages"]) == {"numpy", "torch", "Pillow"}

    items = list(Item.objects.filter(project=project).order_by("pk")[:12])
    paths = []
    for item in items:
        path = tmp_path / Path(item.image.name).name
        with item.image.open("rb") as fh:
            path.write_bytes(fh.read())
        paths += ["--image", str(path)]
    done, modules = _run_loader(folder, *paths)
    assert done.returncode == 0, done.stderr
    backend, proba = _studio_proba(project, version, [item.pk for item in items])
    _check_same_as_studio(done.stdout.splitlines(), backend, proba)
    assert not _imported_distributions(modules) - _requirement_closure(manifest["packages"])

    # A file that is not an image is named, and nothing is printed for the others.
    (tmp_path / "notes.png").write_text("not a picture")
    bad, _ = _run_loader(folder, "--image", str(tmp_path / "notes.png"))
    assert bad.returncode == 2 and "notes.png: not an image" in bad.stderr and bad.stdout == ""


def test_an_altered_model_file_is_refused_naming_it(tmp_path):
    project = reviews_project(n=80)
    version = model_version_train(project=project, folds=0, diagnostics=False)
    folder = _download(project, version, tmp_path)
    weights = folder / "model" / "weights.npz"
    weights.write_bytes(weights.read_bytes() + b"\0")
    done, _ = _run_loader(folder, "--text", "fine")
    assert done.returncode == 2
    assert "weights.npz: sha256 differs from download.json" in done.stderr
    # A text model asked about an image says what it takes.
    (folder / "model" / "weights.npz").write_bytes(weights.read_bytes()[:-1])
    wrong, _ = _run_loader(folder, "--image", "x.png")
    assert wrong.returncode == 2 and "this is a text model" in wrong.stderr


def test_only_managers_download_through_the_api_and_the_page(client, tmp_path):
    project = reviews_project(n=80)
    version = model_version_train(project=project, folds=0, diagnostics=False)
    api = reverse("api:model-version-download", args=[project.pk, version.number])
    page = reverse("training:model-download", args=[project.pk, version.number])
    reviewer, stranger = UserFactory(), UserFactory()
    project.memberships.create(user=reviewer, role="reviewer")
    for user, code in ((reviewer, 403), (stranger, 404)):
        api_client = APIClient()
        api_client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=user).key}")
        assert api_client.get(api).status_code == code
        client.force_login(user)
        assert client.get(page).status_code == code
    assert APIClient().get(api).status_code == 401
    lead = _lead_client(project)
    missing = lead.get(reverse("api:model-version-download", args=[project.pk, version.number + 1]))
    assert missing.status_code == 404
    client.force_login(project.memberships.get(role="manager").user)
    response = client.get(page)
    assert response.status_code == 200 and response.content[:2] == b"PK"
