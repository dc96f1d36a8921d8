"""Background jobs' progress, written where pollers see it while the job's transaction is open."""

from django.db import DEFAULT_DB_ALIAS, connections, models


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
