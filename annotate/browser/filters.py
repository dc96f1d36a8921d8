"""The item browser's filters: parsed from a query string or a JSON object, and applied.

Filters are what the page's query string and the API's parameters give (`item_filters_parse`
names the parameter at fault): `q` (case-insensitive substring of the text), `labeled`,
`final_label`, `final_source`, `annotator` (a user id: the item has an annotation by them),
`disagreement`, `gold`, `suspicious`, `flagged` (an open flag for the leads, annotate/notes.py),
`proposal` (a label the active model proposes),
`confidence_min` / `confidence_max` (that proposal's score), `ids`, and `sort` (`created_at`,
`-created_at`, `confidence` — least confident first — or `-confidence`).

The model's proposals live in training's tables, and annotate never imports training: the web
layer passes a `Proposals` (the name of Item's reverse relation to them and the model version
whose rows count), which the query joins with a FilteredRelation. A selection stored for later
(an ExportJob's `selection`, read back through `items_filtered`) keeps that pair, so it means
the proposals of the version the lead saw, whichever is active when it is read.
"""

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

from django.core.exceptions import FieldDoesNotExist, ValidationError
from django.db.models import BooleanField, Exists, F, FilteredRelation, Func, OuterRef, Q, QuerySet, Value

from annotate.models import Annotation, FinalSource, Item, ItemNote, Label, PickKind, Project

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
