"""Signals annotate sends for the apps that build on it; annotate itself never imports them.

annotations_stored: some annotations of `project` were stored (a submit, an import of labels).
It is sent once the transaction that stored them commits, so a receiver that reads or counts
them sees them, and one that dispatches work never dispatches it for rows rolled back. training
connects its retrain-every-N receiver to it (TrainingConfig.ready).

items_imported: items were imported into `project` with random priorities (annotate/importing/
writer.py), sent once the import commits; training computes a diverse seed set for the queue
in the background (training/coldstart.py).
"""

import logging

from django.db import transaction
from django.dispatch import Signal

from annotate.models import Project

logger = logging.getLogger(__name__)

annotations_stored = Signal()
items_imported = Signal()


def annotations_stored_on_commit(*, project: Project) -> None:
    """Send annotations_stored for `project` once the current transaction commits (at once outside one)."""
    transaction.on_commit(lambda: _annotations_stored_send(project))


def items_imported_on_commit(*, project: Project) -> None:
    """Send items_imported for `project` once the current transaction commits (at once outside one)."""
    transaction.on_commit(lambda: _send_robust(items_imported, "items_imported", project))


def _annotations_stored_send(project: Project) -> None:
    _send_robust(annotations_stored, "annotations_stored", project)


def _send_robust(signal: Signal, name: str, project: Project) -> None:
    # The rows are stored already: a receiver that fails must not turn that into an error.
    for receiver, result in signal.send_robust(sender=Project, project=project):
        if isinstance(result, Exception):
            logger.error(
                "%s receiver %s failed for project %s",
                name,
                getattr(receiver, "__qualname__", receiver),
                project.pk,
                exc_info=result,
            )
