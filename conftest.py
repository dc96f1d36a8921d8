"""Root pytest configuration: which database this pass runs on, and test-wide settings."""

import os
from pathlib import Path

import pytest

from tests.services import skip_or_fail, unreachable_reason

os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")


def _database_vendor() -> str:
    url = os.environ.get("DATABASE_URL", "")
    return "postgresql" if url.startswith(("postgres://", "postgresql://")) else "sqlite"


def pytest_report_header(config):
    url = os.environ.get("DATABASE_URL", "<unset: SQLite file>")
    return f"LabelLoop test pass on {_database_vendor()} (DATABASE_URL={url})"


# Fixtures that open the test database: a test with none of them (and no django_db mark) runs the
# same whatever DATABASE_URL says.
DATABASE_FIXTURES = {
    "db", "transactional_db", "django_db_reset_sequences", "django_db_serialized_rollback",
    "live_server", "admin_user", "admin_client", "django_user_model",
}  # fmt: skip


def uses_database(item) -> bool:
    return item.get_closest_marker("django_db") is not None or bool(
        DATABASE_FIXTURES & set(getattr(item, "fixturenames", ()))
    )


def pytest_collection_modifyitems(config, items):
    """Deselect what this pass does not run: the other database's tests, and in the PostgreSQL
    pass the tests that touch no database (the SQLite pass has run them)."""
    vendor = _database_vendor()
    unwanted = "sqlite_only" if vendor == "postgresql" else "postgres_only"
    keep, drop = [], []
    for item in items:
        unneeded = vendor == "postgresql" and not uses_database(item)
        (drop if item.get_closest_marker(unwanted) or unneeded else keep).append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep


@pytest.fixture(scope="session", autouse=True)
def _postgres_reachable():
    if _database_vendor() == "postgresql":
        reason = unreachable_reason(os.environ["DATABASE_URL"])
        if reason:
            skip_or_fail(f"PostgreSQL pass: {reason}")


def pytest_configure(config):
    from django.conf import settings

    # WhiteNoise warns on every request when STATIC_ROOT does not exist yet.
    Path(settings.STATIC_ROOT).mkdir(parents=True, exist_ok=True)


@pytest.fixture(autouse=True)
def _test_settings(settings, tmp_path):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    settings.MEDIA_ROOT = tmp_path / "media"
    settings.LABELLOOP_CACHE_DIR = tmp_path / "cache"
    settings.CELERY_TASK_ALWAYS_EAGER = False
