"""Reachability of the real services the tests use, and what to do when one is down.

A test that needs a service skips with a reason naming it when it is unreachable, unless
LABELLOOP_REQUIRE_SERVICES=1 (set by .ci/run): then the same condition fails the run, so
CI always exercises PostgreSQL and Redis.
"""

import os
import socket
from urllib.parse import urlparse

import pytest

POSTGRES_URL = os.environ.get("LABELLOOP_TEST_POSTGRES_URL", "postgres://postgres@127.0.0.1:5432/labelloop")
REDIS_URL = os.environ.get("LABELLOOP_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")


def services_required() -> bool:
    return os.environ.get("LABELLOOP_REQUIRE_SERVICES") == "1"


def unreachable_reason(url: str) -> str | None:
    """None when a TCP connection to the URL's host and port opens, else why not."""
    parsed = urlparse(url)
    host, port = parsed.hostname or "127.0.0.1", parsed.port
    try:
        with socket.create_connection((host, port), timeout=2):
            return None
    except OSError as exc:
        return f"{parsed.scheme} at {host}:{port} is unreachable ({exc})"


def skip_or_fail(reason: str) -> None:
    if services_required():
        pytest.fail(f"LABELLOOP_REQUIRE_SERVICES=1 but {reason}", pytrace=False)
    pytest.skip(reason)
