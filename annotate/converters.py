"""Bounds of what the database stores, for input checked before it reaches a query.

Every id is a BigAutoField (1 to 2**63 − 1); a count or duration in a PositiveIntegerField is at
most 2**31 − 1, PostgreSQL's `integer`. An id in a URL longer than that used to overflow on SQLite
(a 500) and a duration over it to be truncated or refused by PostgreSQL (a 500): the `id` path
converter (registered in annotate/apps.py, used by every route of both apps) makes such a URL no
route at all, a 404, and the serializers' DB_ID_MAX and DB_INT_MAX refuse such a body with a 400
naming the field.
"""

DB_ID_MAX = 2**63 - 1
DB_INT_MAX = 2**31 - 1


class DatabaseId:
    """A row id in a URL: digits, at most DB_ID_MAX."""

    regex = "[0-9]{1,19}"

    def to_python(self, value: str) -> int:
        number = int(value)
        if number > DB_ID_MAX:
            raise ValueError(f"{value} is beyond any row id")  # Django: no match, so a 404
        return number

    def to_url(self, value) -> str:
        return str(int(value))
