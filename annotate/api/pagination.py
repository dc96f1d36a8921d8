"""Keyset pagination: a cursor on the primary key, so page 1,000 costs what page 1 does.

A cursor that does not decode, or whose position is not a row id, is a 400 naming `cursor` (DRF
answers 404 for the first and lets the second reach the query: an id over 2**63 − 1 overflowed on
SQLite, a 500).
"""

from rest_framework.exceptions import NotFound, ValidationError
from rest_framework.pagination import CursorPagination

from annotate.converters import DB_ID_MAX

CURSOR_REFUSED = "is not a cursor of this listing (start again from the first page)"


class KeysetPagination(CursorPagination):
    ordering = "id"
    page_size = 100
    page_size_query_param = "page_size"
    max_page_size = 1000

    def decode_cursor(self, request):
        try:
            cursor = super().decode_cursor(request)
        except NotFound:
            raise ValidationError({self.cursor_query_param: [CURSOR_REFUSED]}) from None
        position = None if cursor is None else cursor.position
        if position is not None and not (position.isdigit() and int(position) <= DB_ID_MAX):
            raise ValidationError({self.cursor_query_param: [CURSOR_REFUSED]})
        return cursor
