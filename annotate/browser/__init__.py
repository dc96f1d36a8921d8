"""The item browser (a lead's "data manager"): a project's items filtered, searched and sorted in
keyset pages, one item opened with its annotations and reviews, and the actions on a selection.

- filters.py: the filters (`ItemFilters`, `item_filters_parse`), the model's `Proposals`, and
  `item_list_filtered` / `items_filtered`, which apply them;
- pages.py: keyset pages (`item_page`), `item_count`, `browser_members`, one item in full
  (`item_detail_get`);
- actions.py: selections (`selection_parse`) and their actions (`ACTIONS`).

Callers import from the package (`from annotate import browser`); the names below are its API.
"""

from django.core.exceptions import ValidationError

from annotate.browser.actions import (
    ACTIONS,
    ActionResult,
    Selection,
    selection_export,
    selection_gold_mark,
    selection_parse,
    selection_review_send,
)
from annotate.browser.filters import (
    FILTER_NAMES,
    MAX_IDS,
    MAX_PAGE_SIZE,
    MAX_SEARCH_LENGTH,
    PAGE_SIZE,
    SORTS,
    HasChoice,
    ItemFilters,
    Proposals,
    flag_parse,
    item_filters_parse,
    item_list_filtered,
    items_filtered,
    page_size_parse,
)
from annotate.browser.pages import (
    ItemDetail,
    ItemPage,
    RowAfter,
    browser_members,
    item_count,
    item_detail_get,
    item_page,
)

__all__ = [
    "ACTIONS",
    "FILTER_NAMES",
    "MAX_IDS",
    "MAX_PAGE_SIZE",
    "MAX_SEARCH_LENGTH",
    "PAGE_SIZE",
    "SORTS",
    "ActionResult",
    "HasChoice",
    "ItemDetail",
    "ItemFilters",
    "ItemPage",
    "Proposals",
    "RowAfter",
    "Selection",
    "ValidationError",
    "browser_members",
    "flag_parse",
    "item_count",
    "item_detail_get",
    "item_filters_parse",
    "item_list_filtered",
    "item_page",
    "items_filtered",
    "page_size_parse",
    "selection_export",
    "selection_gold_mark",
    "selection_parse",
    "selection_review_send",
]
