"""What the import tests share: upload builders, a look at what was stored, and fixtures.

A test module takes a fixture by naming it at module level (`nothing_stored = uploads.nothing_stored`).
"""

import io
import zipfile
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model
from PIL import Image

from annotate.models import Annotation, Item, Project
from tests.factories import make_project

IMAGE = Project.TaskType.IMAGE_CLASSIFICATION


def file(text: str | bytes) -> io.BytesIO:
    return io.BytesIO(text.encode("utf-8") if isinstance(text, str) else text)


def image(fmt: str = "PNG", size=(8, 6), color=(200, 30, 30)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, color).save(buffer, format=fmt)
    return buffer.getvalue()


def zip_of(entries: dict[str, bytes]) -> io.BytesIO:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in entries.items():
            if name.endswith("/"):
                archive.writestr(zipfile.ZipInfo(name), b"")
            else:
                archive.writestr(name, data)
    buffer.seek(0)
    return buffer


def media_files(settings) -> list[Path]:
    root = Path(settings.MEDIA_ROOT)
    return sorted(p for p in root.rglob("*") if p.is_file()) if root.exists() else []


def stored_counts():
    return Item.objects.count(), Annotation.objects.count(), get_user_model().objects.count()


@pytest.fixture
def project():
    return make_project(labels=["positive", "negative"])


@pytest.fixture
def image_project():
    return make_project(labels=["cat", "dog"], task_type=IMAGE)


@pytest.fixture
def nothing_stored(settings):
    """Asserts, after the test body, that no item, annotation, user or file was added."""
    before = stored_counts()
    yield
    assert stored_counts() == before
    assert media_files(settings) == []
