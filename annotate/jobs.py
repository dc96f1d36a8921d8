"""The lifecycle every background job shares (ImportJob, ExportJob): claim, heartbeat, finish, sweep.

    queued --job_claim--> running --job_finish--> succeeded | failed
                             \\--jobs_sweep (heartbeat silent too long: the worker was lost)--> failed

A worker claims a job with one conditional UPDATE (queued -> running), so a task delivered
twice runs once. While it runs, the job writes its progress and a heartbeat (`JobProgress`)
where pollers and the sweeper see them although the job's own transaction is still open. The
sweeper (a beat task per job model) fails running jobs whose heartbeat went silent, again with
a conditional UPDATE, so it never overwrites a job that finished meanwhile.
"""

import logging
import time
from collections.abc import Callable
from datetime import datetime, timedelta

from django.db import DEFAULT_DB_ALIAS, DatabaseError, connection, connections, models
from django.db.models import Q
from django.utils import timezone

from annotate.models import JobStatus

logger = logging.getLogger(__name__)

# A running job writes its heartbeat at least this often, even when its progress has not moved.
HEARTBEAT_SECONDS = 30


class ProgressConnection:
    """A second connection to the default database, in autocommit, for a job's progress.

    Each update commits at once, so the job's page sees the bar move while the job's own
    transaction (an export's snapshot, an import's writes) is still open, and the job's own
    connection is never touched. It cannot see a job row that the caller's transaction has
    not committed: callers inside a transaction do without it.
    """

    def __init__(self) -> None:
        self.connection = connections.create_connection(DEFAULT_DB_ALIAS)

    def update(self, model: type[models.Model], pk: int, **fields) -> None:
        quote = self.connection.ops.quote_name
        meta = model._meta
        assignments = ", ".join(f"{quote(meta.get_field(name).column)} = %s" for name in fields)
        with self.connection.cursor() as cursor:
            cursor.execute(
                f"UPDATE {quote(meta.db_table)} SET {assignments} WHERE {quote(meta.pk.column)} = %s",
                [*fields.values(), pk],
            )

    def close(self) -> None:
        self.connection.close()


def job_claim(*, model: type[models.Model], job_id: int, **fields) -> bool:
    """Move job `job_id` from queued to running with a first heartbeat (and `fields`); False when
    it was not queued (running elsewhere, finished, or gone)."""
    claimed = model.objects.filter(pk=job_id, status=JobStatus.QUEUED).update(
        status=JobStatus.RUNNING, heartbeat_at=timezone.now(), **fields
    )
    return bool(claimed)


def job_finish(*, job: models.Model, status: str, **fields) -> models.Model:
    """Mark `job` succeeded or failed now, with `fields`; returns it refreshed."""
    type(job).objects.filter(pk=job.pk).update(status=status, finished_at=timezone.now(), **fields)
    job.refresh_from_db()
    return job


def jobs_sweep(
    *,
    model: type[models.Model],
    silent_seconds: float,
    error: str,
    now: datetime | None = None,
    fields: dict | None = None,
    on_failed: Callable[[models.Model], None] | None = None,
) -> list[int]:
    """Fail `model`'s running jobs whose heartbeat is older than `silent_seconds` (or missing).

    Each is failed by a conditional UPDATE, so a job that finished in the meantime keeps its
    status; `on_failed(job)` then runs for each job failed (e.g. to delete its upload).
    """
    now = now or timezone.now()
    cutoff = now - timedelta(seconds=silent_seconds)
    silent = Q(heartbeat_at__lt=cutoff) | Q(heartbeat_at__isnull=True)
    failed = []
    for job in model.objects.filter(silent, status=JobStatus.RUNNING):
        updated = model.objects.filter(silent, pk=job.pk, status=JobStatus.RUNNING).update(
            status=JobStatus.FAILED, error=error, finished_at=now, **(fields or {})
        )
        if not updated:
            continue
        logger.warning("%s %s: its worker was lost", model._meta.verbose_name, job.pk)
        if on_failed is not None:
            on_failed(job)
        failed.append(job.pk)
    return failed


class JobProgress:
    """Writes a running job's progress and heartbeat where pollers and the sweeper see them.

    Outside a transaction the writes go through a ProgressConnection, which commits each at once
    while the job's own transaction is open, except when `shares_writer` says the job's own
    connection holds the database's one writer (an import on SQLite): then nothing is written
    until the job finishes. Inside a caller's transaction a second connection could not see the
    uncommitted job row: the writes go to the caller's connection (`in_transaction="same"`) or
    nowhere (`in_transaction="skip"`). A failed write is logged, never raised: progress must not
    fail the job.
    """

    def __init__(
        self, *, model: type[models.Model], job_id: int, shares_writer: bool = False, in_transaction: str
    ) -> None:
        self.model = model
        self.job_id = job_id
        self._own: ProgressConnection | None = None
        self._same = False
        if connections[DEFAULT_DB_ALIAS].in_atomic_block:
            self._same = in_transaction == "same"
        elif not (shares_writer and connection.vendor != "postgresql"):
            self._own = ProgressConnection()
        self._written_at = time.monotonic()

    @property
    def visible(self) -> bool:
        """Whether writes go anywhere."""
        return self._own is not None or self._same

    def write(self, **fields) -> None:
        """Write `fields` and the heartbeat."""
        if not self.visible:
            return
        fields["heartbeat_at"] = timezone.now()
        try:
            if self._own is not None:
                self._own.update(self.model, self.job_id, **fields)
            else:
                self.model.objects.filter(pk=self.job_id).update(**fields)
        except DatabaseError:
            logger.warning(
                "%s %s: could not write its progress",
                self.model._meta.verbose_name,
                self.job_id,
                exc_info=True,
            )
        self._written_at = time.monotonic()

    def beat(self) -> None:
        """Write the heartbeat alone when nothing was written for HEARTBEAT_SECONDS."""
        if time.monotonic() - self._written_at >= HEARTBEAT_SECONDS:
            self.write()

    def close(self) -> None:
        if self._own is not None:
            self._own.close()
            self._own = None

    def __enter__(self) -> "JobProgress":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()
