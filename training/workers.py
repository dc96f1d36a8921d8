"""The training worker as bin/run's supervisor (config/supervisor.py) sees it, for the project page.

The supervisor writes the state of the processes it runs to settings.LABELLOOP_SUPERVISOR_STATE.
Without a live supervisor (no file, an unreadable one, or its pid gone: a worker started some other
way, say) nothing is known, so nothing is said.
"""

import json
import os
from pathlib import Path

from django.conf import settings

from config.supervisor import GIVEN_UP, TRAINING_WORKER


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # alive, under another user
    return True


def training_unavailable_reason() -> str | None:
    """Why training runs cannot start, as a sentence for the page; None when they can or nobody knows."""
    try:
        state = json.loads(Path(settings.LABELLOOP_SUPERVISOR_STATE).read_text())
        pid = int(state["supervisor_pid"])
        worker = state["processes"][TRAINING_WORKER]
        given_up = worker["state"] == GIVEN_UP
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if not given_up or pid <= 0 or not _alive(pid):
        return None
    return (
        f"Training is unavailable: the training worker stopped after {worker.get('fast_failures')} "
        f"failed starts (last: {worker.get('last_exit')}). See {worker.get('log')}."
    )
