"""Model artifacts in Django's storage, so web servers and workers on other machines share them.

A backend saves a model as a folder of files (training/backends/base.py). Here that folder is
uploaded file by file under a prefix no other version uses (`models/project-<id>/<random>`); the
ModelVersion row that names the prefix is the commit point, because an object store has no folder
rename. A reader downloads the files once into this machine's cache (LABELLOOP_CACHE_DIR) and loads
from there. Nothing here asks the storage for a local path: any storage backend works (local files
by default, an S3-compatible one through django-storages).
"""

import contextlib
import os
import secrets
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from django.conf import settings
from django.core.files import File
from django.core.files.storage import default_storage

from annotate.faults import fault_point
from training.backends.artifacts import read_json
from training.backends.base import MANIFEST


def _cache_root() -> Path:
    path = Path(settings.LABELLOOP_CACHE_DIR) / "models"
    path.mkdir(parents=True, exist_ok=True)
    return path


def _cache_path(prefix: str) -> Path:
    # One flat folder per prefix: "models/project-3/ab12" -> "models--project-3--ab12".
    return _cache_root() / prefix.strip("/").replace("/", "--")


def artifact_prefix_new(*, project_id: int) -> str:
    """A storage prefix for a new version's files that no other version uses."""
    return f"models/project-{project_id}/{secrets.token_hex(8)}"


@contextlib.contextmanager
def artifact_staging() -> Iterator[Path]:
    """A local folder for a backend to save into; removed afterwards unless kept by the upload."""
    folder = Path(tempfile.mkdtemp(prefix=".staging-", dir=_cache_root()))
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def artifact_upload(*, folder: Path, prefix: str) -> list[str]:
    """Upload a saved model's files under `prefix`, the manifest last; return the storage names.

    On any error (a full disk among them) the files already uploaded are deleted again, and so is
    whatever part of the file being written the storage kept (FileSystemStorage leaves a partial
    file behind when a write fails): every name under the prefix that was not there before. On
    success the local folder becomes this machine's cached copy, so the version loads here
    without a download.
    """
    names = sorted(p.name for p in folder.iterdir() if p.is_file() and p.name != MANIFEST) + [MANIFEST]
    before = set(_stored_names(prefix))
    stored: list[str] = []
    try:
        for name in names:
            wanted = f"{prefix}/{name}"
            with open(folder / name, "rb") as fh:
                saved = default_storage.save(wanted, _WatchedFile(fh, name=name, storage_name=wanted))
            stored.append(saved)
            if saved != wanted:
                raise FileExistsError(f"storage already held {wanted!r} (saved as {saved!r})")
    except BaseException:
        partial = [n for n in _stored_names(prefix) if n not in before and n not in stored]
        artifact_discard(prefix=prefix, names=stored + partial)
        raise
    cached = _cache_path(prefix)
    if not cached.exists():
        with contextlib.suppress(OSError):
            os.replace(folder, cached)
            folder.mkdir()  # artifact_staging removes it
    return stored


class _WatchedFile(File):
    """A file whose chunks pass the fault point `artifact.file_writing` as the storage writes them."""

    def __init__(self, file, *, name: str, storage_name: str) -> None:
        super().__init__(file, name=name)
        self.storage_name = storage_name

    def chunks(self, chunk_size=None):
        written = 0
        for chunk in super().chunks(chunk_size):
            yield chunk
            written += len(chunk)
            fault_point("artifact.file_writing", name=self.storage_name, written=written)


def _stored_names(prefix: str) -> list[str]:
    """The storage names of the files under `prefix` (none when it does not exist)."""
    try:
        _, files = default_storage.listdir(prefix)
    except (FileNotFoundError, NotADirectoryError):
        return []
    return [f"{prefix}/{name}" for name in files]


def artifact_discard(*, prefix: str, names: list[str]) -> None:
    """Delete a version's stored files and this machine's cached copy (a version not recorded)."""
    for name in names:
        with contextlib.suppress(FileNotFoundError):
            default_storage.delete(name)
    shutil.rmtree(_cache_path(prefix), ignore_errors=True)


def artifact_local(*, prefix: str) -> Path:
    """A local folder holding the version's files: this machine's cache, downloaded once."""
    cached = _cache_path(prefix)
    if (cached / MANIFEST).exists():
        return cached
    download = Path(tempfile.mkdtemp(prefix=".download-", dir=_cache_root()))
    try:
        with default_storage.open(f"{prefix}/{MANIFEST}", "rb") as fh:
            manifest_bytes = fh.read()
        (download / MANIFEST).write_bytes(manifest_bytes)
        for name in read_json(download / MANIFEST)["files"]:
            if "/" in name or name in ("", ".", ".."):
                raise ValueError(f"{prefix}/{MANIFEST} names an unsafe file {name!r}")
            with default_storage.open(f"{prefix}/{name}", "rb") as src, open(download / name, "wb") as dst:
                shutil.copyfileobj(src, dst)
        try:
            os.replace(download, cached)
        except OSError:
            # Another process cached it meanwhile (os.replace cannot replace a non-empty folder).
            if not (cached / MANIFEST).exists():
                raise
    finally:
        shutil.rmtree(download, ignore_errors=True)
    return cached


def artifact_delete(*, prefix: str) -> None:
    """Delete every stored file under a version's prefix and this machine's cached copy (a version
    deleted, with its project or alone)."""
    with contextlib.suppress(FileNotFoundError, NotADirectoryError):
        _, files = default_storage.listdir(prefix)
        artifact_discard(prefix=prefix, names=[f"{prefix}/{name}" for name in files])
    shutil.rmtree(_cache_path(prefix), ignore_errors=True)
