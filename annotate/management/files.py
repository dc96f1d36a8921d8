"""Files the management commands write: beside the target, then renamed, so that a reader never
sees half a file and a failed command leaves none behind."""

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

from django.core.management.base import CommandError


@contextmanager
def file_replaced_whole(path: Path) -> Iterator[BinaryIO]:
    """A binary file to write `path` into: renamed into place when the block ends, removed when it
    raises. CommandError when the folder does not exist. The file gets the mode a plain open()
    would give it (mkstemp makes it 0600)."""
    directory = path.parent if str(path.parent) else Path(".")
    if not directory.is_dir():
        raise CommandError(f"folder {directory} does not exist")
    fd, temporary = tempfile.mkstemp(dir=directory, prefix=f".{path.name}.", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as out:
            yield out
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(path, 0o666 & ~umask)
