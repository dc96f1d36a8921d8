"""The loader of a downloaded model: `python -m labelloop_model`, outside the studio.

A model version's download (training/download.py) is a zip whose folder holds the version's
saved model (`model/`: model.json and the weight files, as the studio stores them), `download.json`
(the version, its classes, the sha256 of every model file and the packages it needs, with the
versions the studio ran), this module as the package `labelloop_model`, and the Django-free code
the studio itself predicts with (training/backends/, training/strategies.py, annotate/tokens.py).
So the loader reads inputs exactly as the studio does (training/backends/inputs.py) and gives the
same labels and probabilities.

    unzip labelloop-project-3-v2.zip && cd labelloop-project-3-v2
    python -m labelloop_model --text "a fine film" --text "dull"      # one JSON line per input
    python -m labelloop_model --input texts.txt                       # one text per line (or .jsonl
                                                                      # with a "text" field)
    python -m labelloop_model --image cat.png --image dog.jpg         # image models

From Python: `model = labelloop_model.load(".")`, then `model.predict_texts([...])` or
`model.predict_images([pil_image, ...])`; each answer is {"value", "confidence",
"probabilities"} ({"value": {"spans": [...]}, "confidence"} for span models).

Safety: only the files download.json lists are read, each checked against its sha256 first; weights
are NumPy arrays read with allow_pickle=False, torch tensors with weights_only=True, or crfsuite's
own model file: nothing is unpickled.
"""

import argparse
import hashlib
import json
import sys
from collections.abc import Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

DOWNLOAD_MANIFEST = "download.json"
MODEL_FOLDER = "model"


class ModelFileError(Exception):
    """The download is incomplete, altered or needs a package that is not installed."""


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def packages_check(packages: dict[str, str]) -> list[str]:
    """Raise ModelFileError naming the packages that are not installed; return a note for each
    installed at another version than the studio's (predictions may then differ slightly)."""
    missing, notes = [], []
    for name, wanted in packages.items():
        try:
            found = metadata.version(name)
        except metadata.PackageNotFoundError:
            missing.append(f"{name}=={wanted}")
            continue
        if found != wanted:
            notes.append(f"{name} {found} is installed; the studio ran {wanted}")
    if missing:
        raise ModelFileError(f"missing package(s): pip install {' '.join(missing)}")
    return notes


class DownloadedModel:
    """A model version from a download folder: its manifest, and the backend it loads."""

    def __init__(self, folder: Path | str, *, check_packages: bool = True) -> None:
        self.folder = Path(folder)
        try:
            self.manifest: dict[str, Any] = json.loads((self.folder / DOWNLOAD_MANIFEST).read_text("utf-8"))
        except (OSError, ValueError) as exc:
            raise ModelFileError(f"{self.folder / DOWNLOAD_MANIFEST}: {exc}") from None
        self.notes = packages_check(self.manifest.get("packages", {})) if check_packages else []
        model = self.folder / MODEL_FOLDER
        for name, digest in self.manifest["files"].items():
            if "/" in name or "\\" in name or name in ("", ".", ".."):
                raise ModelFileError(f"{DOWNLOAD_MANIFEST} names an unsafe file {name!r}")
            path = model / name
            if not path.is_file():
                raise ModelFileError(f"{path}: missing")
            if _sha256(path) != digest:
                raise ModelFileError(f"{path}: sha256 differs from {DOWNLOAD_MANIFEST}: the file was altered")
        from training.backends import load_backend

        self.backend = load_backend(model)

    @property
    def takes_images(self) -> bool:
        from training.backends.inputs import takes_images

        return takes_images(self.backend)

    def predict_texts(self, texts: Sequence[str]) -> list[dict[str, Any]]:
        from training.backends.inputs import inputs_from_texts, predictions

        return predictions(self.backend, inputs_from_texts(self.backend, texts)) if len(texts) else []

    def predict_images(self, images: Sequence) -> list[dict[str, Any]]:
        """Pillow images (any mode; read as the studio reads an item's file)."""
        from training.backends.inputs import inputs_from_images, predictions

        return predictions(self.backend, inputs_from_images(self.backend, images)) if len(images) else []


def load(folder: Path | str = ".", *, check_packages: bool = True) -> DownloadedModel:
    """The downloaded model in `folder` (the unzipped download's folder)."""
    return DownloadedModel(folder, check_packages=check_packages)


def _texts_from(path: Path) -> list[str]:
    """One text per line of a .txt file, or each line's "text" of a .jsonl file."""
    lines = path.read_text(encoding="utf-8").splitlines()
    if path.suffix.lower() != ".jsonl":
        return lines
    texts = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except ValueError as exc:
            raise ModelFileError(f"{path}, line {number}: not JSON ({exc})") from None
        if not isinstance(record, dict) or not isinstance(record.get("text"), str):
            raise ModelFileError(f'{path}, line {number}: a "text" string is expected')
        texts.append(record["text"])
    return texts


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m labelloop_model", description="Predict with a model downloaded from LabelLoop."
    )
    parser.add_argument("--model", default=".", help="the unzipped download's folder (default: here)")
    parser.add_argument("--text", action="append", default=[], help="a text to label (repeatable)")
    parser.add_argument("--input", type=Path, help="a .txt file (a text per line) or .jsonl ({'text': …})")
    parser.add_argument("--image", action="append", default=[], type=Path, help="an image file (repeatable)")
    args = parser.parse_args(argv)
    try:
        model = load(args.model)
        for note in model.notes:
            print(f"note: {note}", file=sys.stderr)
        if model.takes_images:
            if args.text or args.input:
                raise ModelFileError("this is an image model: give --image files")
            from PIL import Image

            images = []
            for path in args.image:
                try:
                    with Image.open(path) as image:
                        image.load()
                        images.append(image)
                except (OSError, ValueError) as exc:
                    raise ModelFileError(f"{path}: not an image ({exc})") from None
            inputs, answers = [str(p) for p in args.image], model.predict_images(images)
        else:
            if args.image:
                raise ModelFileError("this is a text model: give --text or --input")
            texts = list(args.text) + (_texts_from(args.input) if args.input else [])
            inputs, answers = texts, model.predict_texts(texts)
    except (ModelFileError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for given, answer in zip(inputs, answers, strict=True):
        print(json.dumps({"input": given, **answer}, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
