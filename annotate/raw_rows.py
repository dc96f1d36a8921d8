"""Model instances from the rows of hand-written SQL, for the hot paths.

A label-and-next cycle runs about fifteen statements. Built with the ORM, each cost about
1 ms of CPU on the 2-core machines we measure on, ten times what PostgreSQL spends on it,
so the statements of that path (annotate/queue.py, the membership and token lookups, the
proposal) are written in SQL, the same text on PostgreSQL and SQLite. Rows still become
model instances through the fields' own converters, so callers get what the ORM would give.
Table and column names come from the models' `_meta` (`table`, `columns`), never literals.
"""

from django.db import connection, models
from django.db.models.expressions import Col

_converters: dict[tuple[type[models.Model], str, tuple[str, ...]], list] = {}


def _fields(model: type[models.Model], attnames: tuple[str, ...] | None) -> list[models.Field]:
    fields = model._meta.concrete_fields
    if attnames is None:
        return list(fields)
    # In the model's field order whatever the order asked: Model.from_db expects it.
    unknown = set(attnames) - {field.attname for field in fields}
    if unknown:
        raise ValueError(f"{model.__name__} has no field {sorted(unknown)[0]!r}")
    return [field for field in fields if field.attname in attnames]


def table(model: type[models.Model]) -> str:
    """The model's table name, quoted for SQL."""
    return connection.ops.quote_name(model._meta.db_table)


def columns(model: type[models.Model], alias: str, attnames: tuple[str, ...] | None = None) -> str:
    """`alias.column, …` for the model's concrete fields (or those named), in the model's order."""
    return ", ".join(f"{alias}.{field.column}" for field in _fields(model, attnames))


def from_row(model: type[models.Model], row, attnames: tuple[str, ...] | None = None) -> models.Model:
    """An instance from a row of `columns(model, …, attnames)`; fields left out are deferred."""
    key = (model, connection.vendor, attnames or ())
    converters = _converters.get(key)
    fields = _fields(model, attnames)
    if converters is None:
        converters = []
        for field in fields:
            expression = Col(model._meta.db_table, field)
            field_converters = connection.ops.get_db_converters(expression) + field.get_db_converters(
                connection
            )
            converters.append([(convert, expression) for convert in field_converters])
        _converters[key] = converters
    values = list(row)
    for index, field_converters in enumerate(converters):
        for convert, expression in field_converters:
            values[index] = convert(values[index], expression, connection)
    return model.from_db(connection.alias, [field.attname for field in fields], values)


def insert(cursor, instance: models.Model, attnames: tuple[str, ...]) -> None:
    """INSERT the instance's `attnames`, each prepared by its field, and set its primary key."""
    model = type(instance)
    fields = _fields(model, attnames)
    values = [field.get_db_prep_save(getattr(instance, field.attname), connection) for field in fields]
    cursor.execute(
        f"INSERT INTO {table(model)} ({', '.join(field.column for field in fields)})"
        f" VALUES ({', '.join(['%s'] * len(fields))}) RETURNING {model._meta.pk.column}",
        values,
    )
    instance.pk = cursor.fetchone()[0]
    instance._state.adding = False
    instance._state.db = connection.alias
