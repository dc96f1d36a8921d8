"""The simulation's own database and files: nothing it writes reaches the studio's data.

`simulation_sandbox()` swaps Django's default connection for a fresh in-memory SQLite database
(shared cache, so any thread that opens a connection meanwhile lands there too, never on the
configured database), migrates it, and points the media storage and the per-machine caches
(LABELLOOP_CACHE_DIR: feature rows, model artifacts) at a temporary folder. On the way out the
memory database is dropped, the folder removed, and the configured connection put back as it
was, untouched (an open transaction on it, a test's say, carries on).

Celery runs eagerly meanwhile: a task a service dispatches on commit (the cold start's seed
set after an import, training/coldstart.py) runs in this process against the sandbox, as a
worker would have run it before the first labels; nothing reaches the broker, where a worker
would have read a simulated project's id against the studio's database.

Why not a transaction rolled back on the configured database: the features cache is keyed by
project and item id, and SQLite reuses ids after a rollback, so a simulated project's cached
rows could later be read as a real project's; the artifacts would land in the real storage;
and a long transaction would hold PostgreSQL's locks on the studio's tables.
"""

import contextlib
import secrets
import sqlite3
import tempfile
from collections.abc import Iterator
from pathlib import Path

from celery import current_app
from django.core.management import call_command
from django.db import DEFAULT_DB_ALIAS, connections
from django.test.utils import override_settings


@contextlib.contextmanager
def simulation_sandbox() -> Iterator[Path]:
    """Run the block against a migrated in-memory database and a temporary media and cache
    folder (yielded); the configured database and storage are never opened meanwhile."""
    alias = DEFAULT_DB_ALIAS
    name = f"file:labelloop-simulation-{secrets.token_hex(6)}?mode=memory&cache=shared"
    configured_settings = connections.settings[alias]
    configured = connections[alias]
    # Holds the shared-cache database open while Django's connection closes and reopens.
    keeper = sqlite3.connect(name, uri=True)
    connections.settings[alias] = {
        **configured_settings,
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": name,
        "USER": "",
        "PASSWORD": "",
        "HOST": "",
        "PORT": "",
        "ATOMIC_REQUESTS": False,
        "AUTOCOMMIT": True,
        "CONN_MAX_AGE": 0,
        "CONN_HEALTH_CHECKS": False,
        "OPTIONS": {"transaction_mode": "IMMEDIATE"},
        "TEST": {"NAME": name},
    }
    connections[alias] = connections.create_connection(alias)
    celery = current_app.conf
    eager = (celery.task_always_eager, celery.task_eager_propagates)
    celery.task_always_eager, celery.task_eager_propagates = True, True
    try:
        with tempfile.TemporaryDirectory(prefix="labelloop-simulation-") as folder:
            media = Path(folder) / "media"
            media.mkdir()
            storages = {
                "default": {
                    "BACKEND": "django.core.files.storage.FileSystemStorage",
                    "OPTIONS": {"location": str(media)},
                },
                "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
            }
            with override_settings(
                MEDIA_ROOT=str(media), STORAGES=storages, LABELLOOP_CACHE_DIR=Path(folder) / "cache"
            ):
                call_command("migrate", verbosity=0, interactive=False)
                yield Path(folder)
    finally:
        celery.task_always_eager, celery.task_eager_propagates = eager
        connections[alias].close()
        connections.settings[alias] = configured_settings
        connections[alias] = configured
        keeper.close()
