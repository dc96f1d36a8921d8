"""Writing model files so that a reader never sees half of one: temp file in the same directory, then rename.

The temporary file lives beside the target because `os.replace` is atomic only within one file system.
A write that raises removes its temporary file and leaves any previous file at the path untouched.
"""

import contextlib
import json
import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

import numpy as np

TEMP_SUFFIX = ".tmp"


@contextlib.contextmanager
def atomic_open(path: Path) -> Iterator[IO[bytes]]:
    """Yield a binary file that becomes `path` only if the block finishes without raising."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=TEMP_SUFFIX)
    try:
        with os.fdopen(fd, "wb") as fh:
            # mkstemp makes the file 0600; a model file is read by other processes (web, workers).
            os.fchmod(fh.fileno(), 0o644)
            yield fh
            fh.flush()
            # Without fsync a crash after the rename can leave an empty file under the final name.
            os.fsync(fh.fileno())
        os.replace(temp_name, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp_name)
        raise


def atomic_write(path: Path, write: Callable[[IO[bytes]], Any]) -> Path:
    """Call `write(fileobj)` on a temporary file, then rename it to `path`; return `path`."""
    with atomic_open(path) as fh:
        write(fh)
    return Path(path)


def atomic_write_bytes(path: Path, data: bytes) -> Path:
    """Write `data` to `path` atomically."""
    return atomic_write(path, lambda fh: fh.write(data))


def atomic_write_json(path: Path, obj: Any) -> Path:
    """Write `obj` as indented UTF-8 JSON to `path` atomically."""
    text = json.dumps(obj, indent=1, sort_keys=True, allow_nan=False) + "\n"
    return atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_npz(path: Path, *, compress: bool = True, **arrays: np.ndarray) -> Path:
    """Write plain arrays to an `.npz` at `path` atomically; refuses object arrays (they need pickle)."""
    for key, value in arrays.items():
        if np.asarray(value).dtype.hasobject:
            raise TypeError(f"array {key!r} has dtype object, which would need pickle")
    save = np.savez_compressed if compress else np.savez
    return atomic_write(path, lambda fh: save(fh, **arrays))


def read_json(path: Path) -> Any:
    """Read a JSON file written by `atomic_write_json`."""
    return json.loads(Path(path).read_text(encoding="utf-8"))


def read_npz(path: Path) -> dict[str, np.ndarray]:
    """Read every array of an `.npz` into memory, refusing pickled objects."""
    with np.load(Path(path), allow_pickle=False) as data:
        return {key: data[key] for key in data.files}
