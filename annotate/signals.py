"""Signals annotate sends for the apps that build on it; annotate itself never imports them.

annotations_stored: some annotations of `project` were stored (a submit, an import of labels).
It is sent once the transaction that stored them commits, so a receiver that reads or counts
them sees them, and one that dispatches work never dispatches it for rows rolled back. training
connects its retrain-every-N receiver to it (TrainingConfig.ready).
"""

import logging

from django.db import transaction
from django.dispatch import Signal

from annotate.models import Project

logger = logging.getLogger(__name__)

annotations_stored = Signal()


def annotations_stored_on_commit(*, project: Project) -> None:
    """Send annotations_stored for `project` once the current transaction commits (at once outside one)."""
    transaction.on_commit(lambda: _annotations_stored_send(project))


def _annotations_stored_send(project: Project) -> None:
    # The annotations are stored already: a receiver that fails must not turn that into an error.
    for receiver, result in annotations_stored.send_robust(sender=Project, project=project):
        if isinstance(result, Exception):
            logger.error(
                "annotations_stored receiver %s failed for project %s",
                getattr(receiver, "__qualname__", receiver),
                project.pk,
                exc_info=result,
            )
