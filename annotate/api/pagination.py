"""Keyset pagination: a cursor on the primary key, so page 1,000 costs what page 1 does."""

from rest_framework.pagination import CursorPagination


class KeysetPagination(CursorPagination):
    ordering = "id"
    page_size = 100
    page_size_query_param = "page_size"
    max_page_size = 1000
