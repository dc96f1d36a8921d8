"""The item browser (a lead's "data manager"): a project's items filtered, searched and sorted in
keyset pages, one item opened with its annotations and reviews, and the actions on a selection.

Filters are what the page's query string and the API's parameters give (`item_filters_parse`
names the parameter at fault): `q` (case-insensitive substring of the text), `labeled`,
`final_label`, `final_source`, `annotator` (a user id: the item has an annotation by them),
`disagreement`, `gold`, `suspicious`, `flagged` (an open flag for the leads, annotate/notes.py),
`proposal` (a label the active model proposes),
`confidence_min` / `confidence_max` (that proposal's score), `ids`, and `sort` (`created_at`,
`-created_at`, `confidence` — least confident first — or `-confidence`).

Pages are keyset pages: a cursor holds the last row's sort key and id, and the next page starts
right after it, so page 50 costs what page 1 does and ties in the sort key never repeat or skip
an item. By time, a row comparison `(created_at, id) > (…)` starts a range of the (project,
created_at, id) index, either way round (an import gives all its items one created_at, so
`created_at >= …` alone would start at the project's first item). By confidence, the items with
a proposal come first in (score, id) order, then the items without one in id order: two plain
keyset walks, no made-up score. How many items match is its own question (`item_count`), which
the page asks after showing the rows: counting reads every match.

The model's proposals live in training's tables, and annotate never imports training: the web
layer passes a `Proposals` (the name of Item's reverse relation to them and the model version
whose rows count), which the query joins with a FilteredRelation. A selection stored for later
(an ExportJob's `selection`, read back through `items_filtered`) keeps that pair, so it means
the proposals of the version the lead saw, whichever is active when it is read.

Actions (`selection_review_send`, `selection_gold_mark`, `selection_export`) each change their
whole selection in one statement, never a loop over items.
"""

import base64
import binascii
import json
import math
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime

from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import FieldDoesNotExist, ValidationError
from django.db import connection, transaction
from django.db.models import (
    BooleanField,
    Count,
    Exists,
    F,
    FilteredRelation,
    Func,
    OuterRef,
    Q,
    QuerySet,
    Value,
)
from django.utils import timezone

from annotate.models import (
    Annotation,
    ExportJob,
    FinalSource,
    Item,
    ItemNote,
    Label,
    Membership,
    PickKind,
    Project,
    Review,
    ReviewState,
)
from annotate.quality.tallies import tallies_add
from annotate.raw_rows import table

SORTS = ("created_at", "-created_at", "confidence", "-confidence")
PAGE_SIZE = 50
MAX_PAGE_SIZE = 200
MAX_IDS = 10_000
MAX_SEARCH_LENGTH = 200
FILTER_NAMES = (
    "q",
    "labeled",
    "final_label",
    "final_source",
    "annotator",
    "disagreement",
    "gold",
    "suspicious",
    "flagged",
    "proposal",
    "confidence_min",
    "confidence_max",
    "ids",
)
_PROPOSAL_ALIAS = "browser_proposal"
_TRUE, _FALSE = {"true", "1", "yes", "on"}, {"false", "0", "no", "off"}


@dataclass(frozen=True)
class Proposals:
    """Where the model's proposals are, as the web layer finds them: `relation` names a reverse
    relation of Item whose rows carry `value` ({"choices": [...]}), `score` (0–1) and
    `model_version`; the rows of `model_version_id` count (one per item at most)."""

    relation: str
    model_version_id: int

    def as_dict(self) -> dict:
        return {"relation": self.relation, "model_version": self.model_version_id}


@dataclass(frozen=True)
class ItemFilters:
    """A parsed, valid set of filters (empty and None: not filtered on)."""

    q: str = ""
    labeled: bool | None = None
    final_label: str = ""
    final_source: str = ""
    annotator: int | None = None
    disagreement: bool | None = None
    gold: bool | None = None
    suspicious: bool | None = None
    flagged: bool | None = None
    proposal: str = ""
    confidence_min: float | None = None
    confidence_max: float | None = None
    ids: tuple[int, ...] | None = None
    sort: str = "created_at"
    proposals: Proposals | None = field(default=None, compare=False)

    @property
    def uses_proposals(self) -> bool:
        """Whether the selection itself depends on the model's proposals (the sort aside)."""
        return bool(self.proposal) or self.confidence_min is not None or self.confidence_max is not None

    @property
    def is_filtered(self) -> bool:
        return any(getattr(self, name) not in ("", None) for name in FILTER_NAMES)

    def as_selection(self) -> dict:
        """The filters as JSON, as an ExportJob's `selection` stores them (no sort: a selection
        is a set), with the proposals they read when they read any."""
        stored = {}
        for name in FILTER_NAMES:
            value = getattr(self, name)
            if value not in ("", None):
                stored[name] = list(value) if name == "ids" else value
        if self.uses_proposals and self.proposals is not None:
            stored["proposals"] = self.proposals.as_dict()
        return stored

    def as_params(self) -> dict[str, str]:
        """The filters and the sort as query-string values (the page's links and hidden fields)."""
        params = {}
        for name in (*FILTER_NAMES, "sort"):
            value = getattr(self, name)
            if value in ("", None) or (name == "sort" and value == "created_at"):
                continue
            if isinstance(value, bool):
                value = "true" if value else "false"
            elif name == "ids":
                value = ",".join(map(str, value))
            params[name] = str(value)
        return params


# Parsing ---------------------------------------------------------------------------------


def _bool(name: str, raw) -> bool:
    if isinstance(raw, bool):
        return raw
    if isinstance(raw, str) and raw.strip().lower() in _TRUE | _FALSE:
        return raw.strip().lower() in _TRUE
    raise ValidationError({name: "must be true or false"})


def _text(name: str, raw, *, max_length: int) -> str:
    if not isinstance(raw, str):
        raise ValidationError({name: "must be a string"})
    if "\x00" in raw:
        raise ValidationError({name: "must not contain NUL characters"})
    if len(raw) > max_length:
        raise ValidationError({name: f"must be at most {max_length} characters"})
    return raw


def _positive_int(name: str, raw) -> int:
    if isinstance(raw, bool):
        raise ValidationError({name: "must be a positive integer"})
    if isinstance(raw, int):
        value = raw
    elif isinstance(raw, str) and raw.strip().isdigit():
        value = int(raw.strip())
    else:
        raise ValidationError({name: "must be a positive integer"})
    if not 1 <= value <= 2**63 - 1:
        raise ValidationError({name: "must be a positive integer"})
    return value


def _fraction(name: str, raw) -> float:
    try:
        if isinstance(raw, bool):
            raise ValueError
        value = float(raw)
    except (TypeError, ValueError):
        raise ValidationError({name: "must be a number from 0 to 1"}) from None
    if not (math.isfinite(value) and 0 <= value <= 1):
        raise ValidationError({name: "must be a number from 0 to 1"})
    return value


def _ids(raw) -> tuple[int, ...]:
    parts = raw.split(",") if isinstance(raw, str) else raw
    if not isinstance(parts, list | tuple) or not parts:
        raise ValidationError({"ids": "must be a non-empty list of item ids"})
    if len(parts) > MAX_IDS:
        raise ValidationError({"ids": f"at most {MAX_IDS} items at once; select all matching instead"})
    return tuple(sorted({_positive_int("ids", part) for part in parts}))


def _label(project: Project, name: str, raw) -> str:
    value = _text(name, raw, max_length=Label._meta.get_field("name").max_length)
    if not Label.objects.filter(project=project, name=value).exists():
        raise ValidationError({name: f"this project has no label named {value!r}"})
    return value


def _stored_proposals(raw) -> Proposals:
    """The proposals a stored selection names, checked to be a relation as Proposals describes."""
    if not isinstance(raw, dict) or set(raw) != {"relation", "model_version"}:
        raise ValidationError({"proposals": "must be {relation, model_version}"})
    relation = raw["relation"]
    try:
        rel = Item._meta.get_field(relation) if isinstance(relation, str) else None
    except FieldDoesNotExist:
        rel = None
    related = {f.name for f in rel.related_model._meta.get_fields()} if rel is not None else set()
    if rel is None or not rel.one_to_many or not {"value", "score", "model_version"} <= related:
        raise ValidationError({"proposals": "names no proposals of items"})
    return Proposals(relation=relation, model_version_id=_positive_int("proposals", raw["model_version"]))


def page_size_parse(raw) -> int:
    """A page size from a query string (absent: PAGE_SIZE); ValidationError naming page_size."""
    if raw in (None, ""):
        return PAGE_SIZE
    if not (isinstance(raw, str) and raw.isdigit() and 1 <= int(raw) <= MAX_PAGE_SIZE):
        raise ValidationError({"page_size": f"must be from 1 to {MAX_PAGE_SIZE}"})
    return int(raw)


def flag_parse(name: str, raw) -> bool:
    """A yes/no query parameter (true, false, 1, 0, yes, no, on, off; absent: false)."""
    return False if raw in (None, "") else _bool(name, raw)


def _no_model(name: str) -> ValidationError:
    return ValidationError({name: "this project has no active model yet, so there are no proposals"})


def item_filters_parse(
    *,
    project: Project,
    params: Mapping,
    proposals: Proposals | None = None,
    strict: bool = False,
) -> ItemFilters:
    """Filters from a query string (a QueryDict) or a JSON object; ValidationError naming the
    parameter at fault. An empty value is no filter (an HTML form sends every field).

    `proposals`: the active model's, from the web layer (None before the first model). `strict`
    (JSON objects: an action's filters, a stored selection): unknown names are refused, since a
    misspelt filter would otherwise widen an action to every item; a stored `proposals` is read.
    """
    values = {}
    for name in params:
        raw = params.get(name)
        if name in ("proposals", "sort") or raw in ("", None):
            continue
        if name not in FILTER_NAMES:
            if strict:
                raise ValidationError({name: "is not a filter"})
            continue
        if name in ("labeled", "disagreement", "gold", "suspicious", "flagged"):
            values[name] = _bool(name, raw)
        elif name == "q":
            values[name] = _text(name, raw, max_length=MAX_SEARCH_LENGTH)
        elif name in ("final_label", "proposal"):
            values[name] = _label(project, name, raw)
        elif name == "final_source":
            if raw not in FinalSource.values:
                raise ValidationError({name: f"must be one of {', '.join(FinalSource.values)}"})
            values[name] = raw
        elif name == "annotator":
            values[name] = _positive_int(name, raw)
        elif name in ("confidence_min", "confidence_max"):
            values[name] = _fraction(name, raw)
        elif name == "ids":
            values[name] = _ids(raw)
    sort = params.get("sort") or "created_at"
    if sort not in SORTS:
        raise ValidationError({"sort": f"must be one of {', '.join(SORTS)}"})
    if strict and params.get("proposals") is not None:
        proposals = _stored_proposals(params.get("proposals"))
    low, high = values.get("confidence_min"), values.get("confidence_max")
    if low is not None and high is not None and low > high:
        raise ValidationError({"confidence_min": "must not be above confidence_max"})
    filters = ItemFilters(**values, sort=sort, proposals=proposals)
    if proposals is None:
        for name in ("proposal", "confidence_min", "confidence_max"):
            if getattr(filters, name) not in ("", None):
                raise _no_model(name)
        if sort in ("confidence", "-confidence"):
            raise _no_model("sort")
    return filters


# Selectors -------------------------------------------------------------------------------


class HasChoice(Func):
    """`expression` (a value {"choices": [...]}) holds the label `label` (a Value)."""

    output_field = BooleanField()
    arity = 2

    def as_sql(self, compiler, connection, **extra):
        raise NotImplementedError(f"HasChoice is not written for {connection.vendor}")

    def _compiled(self, compiler):
        column, label = self.get_source_expressions()
        column_sql, column_params = compiler.compile(column)
        label_sql, label_params = compiler.compile(label)
        return column_sql, label_sql, (*column_params, *label_params)

    def as_postgresql(self, compiler, connection, **extra):
        column_sql, label_sql, params = self._compiled(compiler)
        return f"(({column_sql} -> 'choices') ? ({label_sql})::text)", params

    def as_sqlite(self, compiler, connection, **extra):
        column_sql, label_sql, params = self._compiled(compiler)
        return (
            f"EXISTS (SELECT 1 FROM json_each({column_sql}, '$.choices') c WHERE c.value = {label_sql})",
            params,
        )


def item_list_filtered(
    *, project: Project, filters: ItemFilters, with_proposals: bool = False
) -> QuerySet[Item]:
    """The project's items that pass `filters`, unordered (item_page orders and pages them).

    Where the filters read proposals (or `with_proposals`), each item has `proposal_value` and
    `proposal_score`, its proposal of that version (None without one): one LEFT JOIN on the
    unique (item, version) pair. Every filter refers to those two, never to the relation again:
    each reference to a reverse relation in its own filter() call would join it once more.
    """
    qs = Item.objects.filter(project=project)
    if filters.proposals is not None and (with_proposals or filters.uses_proposals):
        relation, version = filters.proposals.relation, filters.proposals.model_version_id
        condition = Q(**{f"{relation}__model_version_id": version})
        qs = qs.alias(**{_PROPOSAL_ALIAS: FilteredRelation(relation, condition=condition)}).annotate(
            proposal_value=F(f"{_PROPOSAL_ALIAS}__value"), proposal_score=F(f"{_PROPOSAL_ALIAS}__score")
        )
    if filters.q:
        qs = qs.filter(text__icontains=filters.q)
    if filters.labeled is not None:
        qs = qs.filter(final_value__isnull=not filters.labeled)
    if filters.final_label:
        qs = qs.filter(HasChoice("final_value", Value(filters.final_label)))
    if filters.final_source:
        qs = qs.filter(final_source=filters.final_source)
    if filters.annotator is not None:
        by = Annotation.objects.filter(item_id=OuterRef("pk"), annotator_id=filters.annotator)
        qs = qs.filter(Exists(by))
    if filters.disagreement is not None:
        qs = qs.filter(disagreement=filters.disagreement)
    if filters.gold is not None:
        qs = qs.filter(pick_kind=PickKind.GOLD) if filters.gold else qs.exclude(pick_kind=PickKind.GOLD)
    if filters.suspicious is not None:
        qs = qs.filter(suspicion__isnull=not filters.suspicious)
    if filters.flagged is not None:
        flags = ItemNote.objects.filter(item_id=OuterRef("pk"), flagged=True, resolved_at__isnull=True)
        qs = qs.filter(Exists(flags)) if filters.flagged else qs.exclude(Exists(flags))
    if filters.ids is not None:
        qs = qs.filter(pk__in=filters.ids)
    if filters.proposal:
        qs = qs.filter(HasChoice("proposal_value", Value(filters.proposal)))
    if filters.confidence_min is not None:
        qs = qs.filter(proposal_score__gte=filters.confidence_min)
    if filters.confidence_max is not None:
        qs = qs.filter(proposal_score__lte=filters.confidence_max)
    return qs


def items_filtered(*, project: Project, filters: Mapping) -> QuerySet[Item]:
    """The project's items a stored selection names (ExportJob.selection: `ItemFilters.as_selection`,
    or {"ids": [...]}); {} is every item. ValidationError for a selection that is no longer valid
    (a label renamed since). For the exporter: it reads no proposals but those stored."""
    parsed = item_filters_parse(project=project, params=filters, strict=True)
    items = item_list_filtered(project=project, filters=parsed)
    if parsed.uses_proposals:
        # A queryset the exporter can combine with its own (`&`): Django cannot merge the
        # proposals' FilteredRelation join into another query, so it becomes a subquery.
        return Item.objects.filter(project=project, pk__in=items.values("id"))
    return items


@dataclass(frozen=True)
class ItemPage:
    items: list[Item]  # each with .proposal_value and .proposal_score (None without one)
    next_cursor: str | None


def _cursor_encode(sort: str, key, item_id: int) -> str:
    raw = json.dumps([sort, key, item_id], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _cursor_decode(cursor: str, sort: str):
    """(sort key, item id) after which the page starts; ValidationError for a foreign cursor.
    A confidence cursor's key is None once the pages have reached the items without a proposal."""
    bad = ValidationError({"cursor": "is not a cursor of this listing (start again from the first page)"})
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        cursor_sort, key, item_id = json.loads(text)
    except (binascii.Error, UnicodeDecodeError, ValueError, TypeError):
        raise bad from None
    if cursor_sort != sort or not isinstance(item_id, int) or isinstance(item_id, bool):
        raise bad
    if sort.endswith("created_at"):
        try:
            key = datetime.fromisoformat(key)
        except (TypeError, ValueError):
            raise bad from None
        if timezone.is_naive(key):
            raise bad
    elif key is not None and (
        isinstance(key, bool) or not isinstance(key, int | float) or not math.isfinite(key)
    ):
        raise bad
    return key, item_id


class RowAfter(Func):
    """`(key, id) > (value, item_id)` (`<` when descending): a row comparison, which PostgreSQL
    turns into the start of an index range on (…, key, id). Written as `key > v OR (key = v AND
    id > i)` it is only a filter: the walk would start at the first row with key = v, which after
    an import (one created_at for all its items) is the first item of the project."""

    output_field = BooleanField()

    def __init__(self, key: str, value, item_id: int, *, descending: bool):
        super().__init__(F(key), F("id"), Value(value), Value(item_id))
        self.operator = "<" if descending else ">"

    def as_sql(self, compiler, connection, **extra):
        (key, key_params), (pk, pk_params), (value, value_params), (item, item_params) = (
            compiler.compile(expression) for expression in self.get_source_expressions()
        )
        sql = f"(({key}, {pk}) {self.operator} ({value}, {item}))"
        return sql, (*key_params, *pk_params, *value_params, *item_params)


def _rows(qs: QuerySet[Item], *, key: str | None, after, descending: bool, limit: int) -> list[Item]:
    """Up to `limit` rows of `qs` in (key, id) order (id order without a key) after the position
    `after` (None: from the start)."""
    if after is not None:
        value, item_id = after
        if key:
            # The plain bound as well: where key and id come from different tables (a proposal's
            # score, the item's id) the row comparison cannot start an index range, this can.
            bound = {f"{key}__{'lte' if descending else 'gte'}": value}
            qs = qs.filter(RowAfter(key, value, item_id, descending=descending), **bound)
        else:
            qs = qs.filter(id__lt=item_id) if descending else qs.filter(id__gt=item_id)
    fields = [key, "id"] if key else ["id"]
    return list(qs.order_by(*(f"-{name}" if descending else name for name in fields))[:limit])


def item_page(
    *,
    project: Project,
    filters: ItemFilters,
    cursor: str = "",
    page_size: int = PAGE_SIZE,
) -> ItemPage:
    """One keyset page of the filtered items in the filters' sort, and the cursor of the next.

    By time: (created_at, id). By confidence: the items with a proposal of the version in
    (score, id) order, then those without one in id order (the same direction), so no item
    needs a made-up score and each part is a plain keyset walk.
    """
    if not 1 <= page_size <= MAX_PAGE_SIZE:
        raise ValidationError({"page_size": f"must be from 1 to {MAX_PAGE_SIZE}"})
    after = _cursor_decode(cursor, filters.sort) if cursor else None
    qs = item_list_filtered(project=project, filters=filters, with_proposals=True)
    descending, limit = filters.sort.startswith("-"), page_size + 1
    if filters.sort.endswith("created_at"):
        rows = _rows(qs, key="created_at", after=after, descending=descending, limit=limit)
    else:
        rows = []
        # Every prediction has a score: a null score is an item without a proposal.
        if after is None or after[0] is not None:
            scored = qs.filter(proposal_score__isnull=False)
            rows = _rows(scored, key="proposal_score", after=after, descending=descending, limit=limit)
        if len(rows) < limit:
            unscored = qs.filter(proposal_score__isnull=True)
            since = after if after is not None and after[0] is None else None
            rows += _rows(unscored, key=None, after=since, descending=descending, limit=limit - len(rows))
    next_cursor = None
    if len(rows) > page_size:
        rows = rows[:page_size]
        last = rows[-1]
        if filters.sort.endswith("created_at"):
            next_cursor = _cursor_encode(filters.sort, last.created_at.isoformat(), last.pk)
        else:
            next_cursor = _cursor_encode(filters.sort, last.proposal_score, last.pk)
    if filters.proposals is None:
        for item in rows:
            item.proposal_value = item.proposal_score = None
    return ItemPage(items=rows, next_cursor=next_cursor)


def item_count(*, project: Project, filters: ItemFilters) -> int:
    """How many of the project's items pass the filters: a scan of the matches, so pages ask
    for it apart from their rows (the table shows at once; the count follows)."""
    return item_list_filtered(project=project, filters=filters).count()


def browser_members(*, project: Project) -> QuerySet[Membership]:
    """The project's members by username, with their users (the annotator filter's choices).
    Not projects.membership_list: its annotation counts scan every annotation of the project."""
    return Membership.objects.filter(project=project).select_related("user").order_by("user__username")


@dataclass(frozen=True)
class ItemDetail:
    item: Item
    annotations: list[Annotation]
    reviews: list[Review]
    notes: list[ItemNote]


def item_detail_get(*, project: Project, item_id: int) -> ItemDetail | None:
    """One item of the project with its annotations (and annotators), reviews and notes, oldest first."""
    item = Item.objects.filter(project=project, pk=item_id).first()
    if item is None:
        return None
    annotations = list(Annotation.objects.filter(item=item).select_related("annotator").order_by("id"))
    reviews = list(
        Review.objects.filter(item=item).select_related("reviewer", "annotation__annotator").order_by("id")
    )
    notes = list(ItemNote.objects.filter(item=item).select_related("author").order_by("id"))
    return ItemDetail(item=item, annotations=annotations, reviews=reviews, notes=notes)


# Selections and their actions -------------------------------------------------------------


@dataclass(frozen=True)
class Selection:
    """Items chosen in the browser: by their ids (checkboxes) or by filters ("all N matching")."""

    filters: ItemFilters


def selection_parse(*, project: Project, data, proposals: Proposals | None = None) -> Selection:
    """A selection from {"ids": [...]} or {"filters": {...}}; ValidationError naming the field.
    Ids that are not items of this project are refused, all of them named by count."""
    if not isinstance(data, Mapping) or len(data) != 1 or next(iter(data)) not in ("ids", "filters"):
        raise ValidationError({"selection": 'must be {"ids": [...]} or {"filters": {...}}'})
    if "ids" in data:
        filters = ItemFilters(ids=_ids(data["ids"]))
        found = Item.objects.filter(project=project, pk__in=filters.ids).count()
        if found != len(filters.ids):
            missing = len(filters.ids) - found
            raise ValidationError({"ids": f"{missing} of these ids are not items of this project"})
        return Selection(filters=filters)
    raw = data["filters"]
    if not isinstance(raw, Mapping):
        raise ValidationError({"filters": "must be an object of filters"})
    try:
        filters = item_filters_parse(project=project, params=raw, proposals=proposals, strict=True)
    except ValidationError as exc:
        named = {f"filters.{name}": messages for name, messages in exc.message_dict.items()}
        raise ValidationError(named) from None
    return Selection(filters=filters)


@dataclass(frozen=True)
class ActionResult:
    changed: int
    skipped: int
    message: str
    job: ExportJob | None = None


def _selected(project: Project, selection: Selection) -> QuerySet[Item]:
    return item_list_filtered(project=project, filters=selection.filters).values("id")


def _items(n: int) -> str:
    return f"{n} item" if n == 1 else f"{n} items"


def selection_review_send(*, project: Project, selection: Selection) -> ActionResult:
    """Queue the selected items for review, in one UPDATE. Gold items are never reviewed, and an
    item neither complete nor reviewed before would only be refused by the reviewer's decision
    (annotate/review.py), so both are left out and counted as skipped."""
    selected = item_list_filtered(project=project, filters=selection.filters).count()
    changed = (
        Item.objects.filter(project=project, pk__in=_selected(project, selection))
        .exclude(pick_kind=PickKind.GOLD)
        .filter(Q(is_complete=True) | Q(last_review__isnull=False))
        .update(review_state=ReviewState.QUEUED)
    )
    skipped = selected - changed
    message = f"Sent {_items(changed)} to review."
    if skipped:
        message += f" {_items(skipped)} left out: gold, or not fully annotated yet."
    return ActionResult(changed=changed, skipped=skipped, message=message)


def selection_gold_mark(*, project: Project, selection: Selection) -> ActionResult:
    """Make the selected items gold with their final value as the true value, in one UPDATE.

    Refused (nothing changed) when any selected item has no final value yet. Gold items are
    complete (the queue no longer serves them) and out of the review queue, as
    annotate.gold.item_gold_set leaves one; their final label keeps its value, so of the tallies
    only "final_source" moves: the sources the items had are counted from the rows as they are
    locked and changed, so a submit committing meanwhile cannot make them wrong.
    """
    counts = item_list_filtered(project=project, filters=selection.filters).aggregate(
        total=Count("id"), unlabeled=Count("id", filter=Q(final_value__isnull=True))
    )
    unlabeled = counts["unlabeled"]
    if unlabeled:
        raise ValidationError(
            {
                "selection": f"{_items(unlabeled)} of the selection {'has' if unlabeled == 1 else 'have'}"
                " no final label to make gold; select labeled items only (labeled = yes)"
            }
        )
    with transaction.atomic(), connection.cursor() as cursor:
        sql, params = _selected(project, selection).query.sql_with_params()
        assignments = (
            "pick_kind = %s, gold_value = final_value, final_source = %s, is_complete = %s, review_state = %s"
        )
        values = [PickKind.GOLD, FinalSource.GOLD, True, ReviewState.NONE]
        where = f"id IN ({sql}) AND final_value IS NOT NULL AND pick_kind <> %s"
        if connection.vendor == "postgresql":
            # Lock, change and count in one statement: the sources counted are those the rows
            # had when locked, the ones the UPDATE overwrites.
            cursor.execute(
                f"WITH locked AS (SELECT id, final_source FROM {table(Item)} WHERE {where} FOR UPDATE),"
                f" changed AS (UPDATE {table(Item)} SET {assignments} FROM locked"
                f" WHERE {table(Item)}.id = locked.id RETURNING locked.final_source AS old)"
                " SELECT old, COUNT(*) FROM changed GROUP BY old",
                [*params, PickKind.GOLD, *values],
            )
            before = dict(cursor.fetchall())
        else:
            # SQLite: the transaction holds the database's write lock from its start
            # (transaction_mode IMMEDIATE), so nothing changes between these two statements.
            cursor.execute(
                f"SELECT final_source, COUNT(*) FROM {table(Item)} WHERE {where} GROUP BY final_source",
                [*params, PickKind.GOLD],
            )
            before = dict(cursor.fetchall())
            cursor.execute(
                f"UPDATE {table(Item)} SET {assignments} WHERE {where}", [*values, *params, PickKind.GOLD]
            )
        changed = sum(before.values())
        added: Counter = Counter()
        for source, n in before.items():
            added["final_source", source] -= n
        added["final_source", FinalSource.GOLD] += changed
        tallies_add(cursor, project_id=project.id, added=added)
    skipped = max(counts["total"] - changed, 0)
    message = f"Marked {_items(changed)} as gold with their final labels."
    if skipped:
        message += f" {_items(skipped)} already gold."
    return ActionResult(changed=changed, skipped=skipped, message=message)


def selection_export(
    *,
    project: Project,
    selection: Selection,
    format: str,
    requested_by: AbstractBaseUser | None = None,
    base_url: str = "",
) -> ActionResult:
    """Start a background export of the selection: an ExportJob whose `selection` is the
    selection's filters (`ItemFilters.as_selection`; {"ids": [...]} for ticked items), which the
    exporter applies through `items_filtered`."""
    # Imported here: the exporter imports this module (items_filtered) to read selections.
    from annotate import exporting

    stored = selection.filters.as_selection()
    job = exporting.item_export_start(
        project=project, format=format, selection=stored, created_by=requested_by, base_url=base_url
    )
    count = item_list_filtered(project=project, filters=selection.filters).count()
    return ActionResult(
        changed=count, skipped=0, message=f"Exporting {_items(count)} as {format.upper()}.", job=job
    )


ACTIONS = {
    "review": selection_review_send,
    "gold": selection_gold_mark,
    "export": selection_export,
}
