"""Agreement between annotators, read from the counts kept incrementally (annotate/quality/votes.py).

No figure here walks the annotations: each comes from a project's "coincidence" and "pair"
tallies, which the submit (and every other change of an item's voters) keeps right in its own
transaction, so a page costs a few queries whatever the project's size.

Per scope ("" for the whole value; in multi-label projects also each label, chosen or not):

- percent agreement: the share of agreeing ordered pairs of ratings (two voters of one item);
- Krippendorff's alpha (nominal): the coincidence matrix o_ck = sum over m of count(m, c, k) / (m - 1),
  which is exactly the one Krippendorff builds from the pairable values (items with ≥ 2 ratings,
  however many each), so unequal numbers of ratings per item are handled;
- Fleiss' kappa over the items with exactly m ratings (the project's overlap unless asked
  otherwise): from the coincidence counts of that m, the agreeing pairs are
  sum_i sum_j n_ij (n_ij - 1) and the ratings of category j are sum_k count(m, j, k) / (m - 1);
- per pair of annotators, percent agreement and Cohen's kappa from the pair's confusion counts.

Boxes and spans (annotate/quality/votes.py): the units are clusters of matched objects and a
voter with no object in one rates it MISSING, so the same figures read objects where they read
items; per pair there is also an F1, 2 × (clusters both gave the same label) / (objects of a +
objects of b), a detection-style figure that ignores the clusters neither marked. Span projects
report scope "" (exact offsets) and OVERLAP_SCOPE (overlapping offsets).

Arithmetic is in integers until one final (correctly rounded) division, so a figure does not
depend on the order the tallies come back in. A figure that is undefined (no pairs, a single
category, expected disagreement 0) is None, shown as "n/a": a page must never show 0 for
"cannot tell", nor fail.
"""

import json
import math
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from django.contrib.auth import get_user_model

from annotate.models import Project
from annotate.quality.tallies import tallies_read
from annotate.quality.votes import MISSING, OVERLAP_SCOPE

Coincidences = Mapping[tuple[int, str, str], int]  # (m, category a, category b) -> ordered pairs
Confusion = Mapping[tuple[str, str], int]  # (category of a, category of b) -> items


# --- the measures, pure functions over the counts -------------------------------------------


def percent_agreement(coincidences: Coincidences) -> float | None:
    """The share of ordered pairs of ratings (two voters of one item) that agree."""
    total = sum(coincidences.values())
    if total <= 0:
        return None
    agreed = sum(n for (_, a, b), n in coincidences.items() if a == b)
    return agreed / total


def pairable_items(coincidences: Coincidences) -> int:
    """How many items the counts cover: an item with m voters gave m (m - 1) ordered pairs."""
    pairs_by_m: dict[int, int] = defaultdict(int)
    for (m, _, _), n in coincidences.items():
        pairs_by_m[m] += n
    return sum(pairs // (m * (m - 1)) for m, pairs in pairs_by_m.items() if m >= 2)


def krippendorff_alpha(coincidences: Coincidences) -> float | None:
    """Krippendorff's alpha, nominal: 1 - (n - 1) * sum_{c != k} o_ck / sum_{c != k} n_c n_k."""
    # Scale o_ck by L = lcm(m - 1) so that every sum stays an integer; with O = L o, N_c = L n_c
    # and T = L n, alpha = 1 - (T - L) (T - sum_c O_cc) / (T^2 - sum_c N_c^2), divided once.
    scale = math.lcm(*{m - 1 for (m, _, _) in coincidences if m >= 2})
    per_category: dict[str, int] = defaultdict(int)
    agreeing = 0
    for (m, a, b), n in coincidences.items():
        if m < 2:
            continue
        weighted = n * (scale // (m - 1))
        per_category[a] += weighted
        if a == b:
            agreeing += weighted
    total = sum(per_category.values())
    expected = total * total - sum(v * v for v in per_category.values())
    if total <= scale or expected == 0:  # fewer than two pairable values, or a single category
        return None
    return (expected - (total - scale) * (total - agreeing)) / expected


def fleiss_kappa(coincidences: Coincidences, *, m: int) -> tuple[float | None, int]:
    """(Fleiss' kappa, the number of items it covers) over the items with exactly m ratings."""
    if m < 2:
        return None, 0
    # With T ordered pairs on these items, A of them agreeing and R_j = sum_k count(m, j, k)
    # (m - 1 times the ratings of j): P_bar = A / T, P_e = sum_j R_j^2 / T^2.
    per_category: dict[str, int] = defaultdict(int)
    agreeing = 0
    for (mm, a, b), n in coincidences.items():
        if mm != m:
            continue
        per_category[a] += n
        if a == b:
            agreeing += n
    total = sum(per_category.values())
    items = total // (m * (m - 1))
    if items == 0:
        return None, 0
    chance = sum(v * v for v in per_category.values())
    if chance == total * total:  # a single category: P_e = 1
        return None, items
    return (agreeing * total - chance) / (total * total - chance), items


def pair_percent_agreement(confusion: Confusion) -> float | None:
    """The share of the items two annotators both rated on which they agree."""
    total = sum(confusion.values())
    if total <= 0:
        return None
    return sum(n for (a, b), n in confusion.items() if a == b) / total


def cohen_kappa(confusion: Confusion) -> float | None:
    """Cohen's kappa of two annotators from their confusion counts."""
    rows: dict[str, int] = defaultdict(int)
    columns: dict[str, int] = defaultdict(int)
    agreeing = 0
    for (a, b), n in confusion.items():
        rows[a] += n
        columns[b] += n
        if a == b:
            agreeing += n
    total = sum(rows.values())
    chance = sum(n * columns.get(c, 0) for c, n in rows.items())  # total^2 * p_e
    if total <= 0 or chance == total * total:
        return None
    return (agreeing * total - chance) / (total * total - chance)


def pair_f1(confusion: Confusion) -> float | None:
    """F1 between two annotators' objects: 2 × same label / (a's objects + b's objects)."""
    same = sum(n for (a, b), n in confusion.items() if a == b and a != MISSING)
    objects = sum(n * ((a != MISSING) + (b != MISSING)) for (a, b), n in confusion.items())
    return 2 * same / objects if objects else None


def format_measure(value: float | None) -> str:
    """A measure as pages show it: three decimals, "n/a" when undefined."""
    if value is None:
        return "n/a"
    return f"{value:.3f}"


# --- what a page, the API and the chart read ------------------------------------------------


@dataclass(frozen=True)
class Annotator:
    id: int
    username: str


@dataclass(frozen=True)
class PairAgreement:
    annotator_a: int  # annotator_a < annotator_b (ids)
    annotator_b: int
    username_a: str
    username_b: str
    items: int  # items both rated as voters
    agreed: int
    percent_agreement: float | None
    cohen_kappa: float | None
    f1: float | None = None  # boxes and spans only: see the module's docstring


@dataclass(frozen=True)
class ScopeAgreement:
    scope: str  # "" for the whole value, else a label's name (multi-label projects)
    items: int  # items with at least two voters
    pairs: int  # ordered pairs of ratings by two voters of one item
    percent_agreement: float | None
    krippendorff_alpha: float | None
    fleiss_kappa: float | None
    fleiss_m: int  # Fleiss' kappa reads only the items with exactly this many voters
    fleiss_items: int
    pair_figures: tuple[PairAgreement, ...]
    # Cohen's kappa per pair, rows and columns in ProjectAgreement.annotators' order; None on the
    # diagonal and for pairs with no item in common.
    kappa_matrix: tuple[tuple[float | None, ...], ...]


@dataclass(frozen=True)
class ProjectAgreement:
    project_id: int
    multi_label: bool
    annotators: tuple[Annotator, ...]  # everyone in a pair, by username
    scopes: tuple[ScopeAgreement, ...] = field(default=())  # "" first, then the labels in order

    def scope(self, name: str = "") -> ScopeAgreement | None:
        """The figures of one scope ("" for the whole value), None for a scope not reported."""
        return next((s for s in self.scopes if s.scope == name), None)


def _loads(raw: str):
    try:
        return json.loads(raw)
    except ValueError:
        return None


def _rows(counts: Mapping[str, int], shape: tuple[type, ...]) -> list[tuple]:
    """(*parts, n) for each positive count whose key is a list of this shape; others left out.

    A count at or below zero adds nothing (a negative one could only come from a fault
    elsewhere): leaving it out keeps every figure in its range, and a key of another shape
    never turns into an error on a page."""
    found = [(raw, n) for raw, n in counts.items() if n > 0]
    # One json.loads for all the keys: per key, parsing was most of the time at 35,000 keys.
    parsed = _loads("[" + ",".join(raw for raw, _ in found) + "]")
    if not isinstance(parsed, list) or len(parsed) != len(found):
        parsed = [_loads(raw) for raw, _ in found]
    rows = []
    for parts, (_, n) in zip(parsed, found, strict=True):
        if type(parts) is list and tuple(map(type, parts)) == shape:
            rows.append((*parts, n))
    return rows


_COINCIDENCE = (str, int, str, str)  # scope, m, a, b
_PAIR = (int, int, str, str, str)  # annotator a, annotator b, scope, value of a, value of b


def _split(
    tallies: Mapping[str, Mapping[str, int]],
) -> tuple[dict[str, dict], dict[str, dict[tuple[int, int], dict]]]:
    """The coincidence counts per scope, and the confusion counts per scope and pair."""
    coincidences: dict[str, dict] = defaultdict(dict)
    for scope, m, a, b, n in _rows(tallies.get("coincidence", {}), _COINCIDENCE):
        counts = coincidences[scope]
        counts[m, a, b] = counts.get((m, a, b), 0) + n
    confusions: dict[str, dict[tuple[int, int], dict]] = defaultdict(lambda: defaultdict(dict))
    for annotator_a, annotator_b, scope, a, b, n in _rows(tallies.get("pair", {}), _PAIR):
        if annotator_a == annotator_b:
            continue
        counts = confusions[scope][annotator_a, annotator_b]
        counts[a, b] = counts.get((a, b), 0) + n
    return coincidences, confusions


def agreement_from_tallies(
    tallies: Mapping[str, Mapping[str, int]],
    *,
    project_id: int = 0,
    multi_label: bool,
    label_names: Sequence[str],
    fleiss_m: int,
    usernames: Mapping[int, str] | None = None,
    kind: str = "choices",
) -> ProjectAgreement:
    """The agreement figures from a project's "coincidence" and "pair" tallies ({kind: {key: n}},
    as tallies_read returns them). Scopes reported: "" and, for multi-label, each label in
    `label_names`; counts under other scopes (a label since removed) are left out."""
    coincidences, confusions = _split(tallies)
    return _figures(
        coincidences,
        confusions,
        project_id=project_id,
        multi_label=multi_label,
        label_names=label_names,
        fleiss_m=fleiss_m,
        usernames=usernames or {},
        kind=kind,
    )


def _figures(
    coincidences: Mapping[str, Coincidences],
    confusions: Mapping[str, Mapping[tuple[int, int], Confusion]],
    *,
    project_id: int,
    multi_label: bool,
    label_names: Sequence[str],
    fleiss_m: int,
    usernames: Mapping[int, str],
    kind: str = "choices",
) -> ProjectAgreement:
    """`kind`: "choices", "boxes" or "spans" (annotate.quality.matching.value_kind)."""
    scope_names = [""] + (list(label_names) if multi_label else [])
    if kind == "spans":
        scope_names.append(OVERLAP_SCOPE)
    annotator_ids = {a for name in scope_names for pair in confusions.get(name, {}) for a in pair}
    annotators = tuple(
        sorted(
            (Annotator(id=a, username=usernames.get(a, f"#{a}")) for a in annotator_ids),
            key=lambda annotator: (annotator.username, annotator.id),
        )
    )
    position = {annotator.id: i for i, annotator in enumerate(annotators)}
    scopes = []
    for name in scope_names:
        counts = coincidences.get(name, {})
        kappa, fleiss_items = fleiss_kappa(counts, m=fleiss_m)
        pair_figures = []
        matrix: list[list[float | None]] = [[None] * len(annotators) for _ in annotators]
        for (a, b), confusion in sorted(confusions.get(name, {}).items()):
            figure = PairAgreement(
                annotator_a=a,
                annotator_b=b,
                username_a=usernames.get(a, f"#{a}"),
                username_b=usernames.get(b, f"#{b}"),
                items=sum(confusion.values()),
                agreed=sum(n for (x, y), n in confusion.items() if x == y),
                percent_agreement=pair_percent_agreement(confusion),
                cohen_kappa=cohen_kappa(confusion),
                f1=pair_f1(confusion) if kind != "choices" else None,
            )
            pair_figures.append(figure)
            matrix[position[a]][position[b]] = matrix[position[b]][position[a]] = figure.cohen_kappa
        scopes.append(
            ScopeAgreement(
                scope=name,
                items=pairable_items(counts),
                pairs=sum(counts.values()),
                percent_agreement=percent_agreement(counts),
                krippendorff_alpha=krippendorff_alpha(counts),
                fleiss_kappa=kappa,
                fleiss_m=fleiss_m,
                fleiss_items=fleiss_items,
                pair_figures=tuple(pair_figures),
                kappa_matrix=tuple(tuple(row) for row in matrix),
            )
        )
    return ProjectAgreement(
        project_id=project_id, multi_label=multi_label, annotators=annotators, scopes=tuple(scopes)
    )


def project_agreement(*, project: Project, fleiss_m: int | None = None) -> ProjectAgreement:
    """The project's agreement figures per scope and per pair of annotators, in three queries
    (the labels, the tallies, the usernames) whatever the number of annotations.

    Fleiss' kappa covers the items with `fleiss_m` voters, the project's overlap by default."""
    label_names = list(project.labels.order_by("order", "id").values_list("name", flat=True))
    coincidences, confusions = _split(tallies_read(project_id=project.id, kinds=("coincidence", "pair")))
    ids = {a for pairs in confusions.values() for pair in pairs for a in pair}
    User = get_user_model()
    usernames = dict(User.objects.filter(pk__in=ids).values_list("pk", User.USERNAME_FIELD)) if ids else {}
    return _figures(
        coincidences,
        confusions,
        project_id=project.id,
        multi_label=project.multi_label,
        label_names=label_names,
        fleiss_m=project.overlap if fleiss_m is None else fleiss_m,
        usernames=usernames,
        kind=_KINDS.get(project.task_type, "choices"),
    )


_KINDS = {Project.TaskType.IMAGE_BOXES: "boxes", Project.TaskType.TEXT_SPANS: "spans"}
