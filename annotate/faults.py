"""Named fault points: places in the code where a test pauses, injects a fault, then resumes.

`fault_point(point, **context)` calls the callback a test registered for `point` (with the context as
keyword arguments) and otherwise does nothing but one dict lookup. A callback may raise (the fault
happens there, inside the code under test), or act on the world from outside (terminate the
database connection, kill a process) and return. No Django here: annotate and training both use it.

The points:

- `import.batch_written` (annotate/importing/writer.py): a batch of items has been sent to the
  database, inside the import's transaction, before its commit. Context: `connection` (the
  Django connection that wrote it), `batch` (its number, from 1), `rows` (rows in it).
- `artifact.file_writing` (training/artifact_store.py `artifact_upload`): a model file is being
  written to the storage, its first chunk already handed over. Context: `name` (the storage name
  being written), `written` (bytes handed over so far).

Tests register with `fault_hooked(name, callback)`, a context manager.
"""

import contextlib
from collections.abc import Callable, Iterator

_hooks: dict[str, Callable[..., None]] = {}

NAMES = frozenset({"import.batch_written", "artifact.file_writing"})


def fault_point(point: str, /, **context) -> None:
    """Call the callback registered for the point, if any (tests only), with `context`."""
    hook = _hooks.get(point)
    if hook is not None:
        hook(**context)


@contextlib.contextmanager
def fault_hooked(name: str, callback: Callable[..., None]) -> Iterator[None]:
    """Register `callback` at the fault point `name` for the block (a name not in NAMES is refused)."""
    if name not in NAMES:
        raise ValueError(f"no fault point is named {name!r}")
    if name in _hooks:
        raise RuntimeError(f"fault point {name!r} already has a callback")
    _hooks[name] = callback
    try:
        yield
    finally:
        del _hooks[name]
