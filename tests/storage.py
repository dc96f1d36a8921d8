"""A storage backend whose `path()` raises, as an object store's does, but that keeps its files on
local disk so that worker processes share them. Code that reads a local path behind the storage's
back fails with it."""

import contextlib
import os
import tempfile
from pathlib import Path

from django.core.files import File
from django.core.files.storage import FileSystemStorage


class NoPathStorage(FileSystemStorage):
    def path(self, name):
        raise NotImplementedError("NoPathStorage has no local paths: open the file through the storage")

    def _local(self, name) -> str:
        return super().path(name)

    def _open(self, name, mode="rb"):
        return File(open(self._local(name), mode))

    def _save(self, name, content):
        target = Path(self._local(name))
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, temp = tempfile.mkstemp(dir=target.parent, prefix=".upload-")
        with os.fdopen(fd, "wb") as fh:
            for chunk in content.chunks():
                fh.write(chunk)
        os.replace(temp, target)
        return str(name).replace("\\", "/")

    def delete(self, name):
        with contextlib.suppress(FileNotFoundError):
            os.remove(self._local(name))

    def exists(self, name):
        return os.path.lexists(self._local(name))

    def listdir(self, path):
        directories, files = [], []
        with os.scandir(self._local(path)) as entries:
            for entry in entries:
                (directories if entry.is_dir() else files).append(entry.name)
        return directories, files

    def size(self, name):
        return os.path.getsize(self._local(name))
