"""Dashboards for a project's leads: figures read from per-project aggregates, never from a scan
of the annotations.

Every figure comes from annotate.models.Tally rows, which the submit, the import, the review and
the gold services add to in the transaction of their change (annotate/quality/tallies.py), or
from counters kept on the Membership rows. A page therefore reads a few hundred small rows,
whatever the number of annotations:

| chart            | read from                                                               |
| ---------------- | ----------------------------------------------------------------------- |
| progress         | "completed_day" [day] (items completed that day); "final_source" summed |
|                  | is the number of items (each counts under exactly one source), gold     |
|                  | ones left out: they need no labels                                      |
| labels_per_day   | "labels_day" [day, annotator]                                           |
| seconds          | "seconds" [annotator, bucket]: a histogram, 4 buckets per doubling, so  |
|                  | the median read from it is approximate (within about 9%)                |
| agreement        | annotate.quality.agreement.project_agreement ("pair", "coincidence")    |
| gold             | Membership.gold_answers / gold_correct, with the Wilson interval        |
| labels           | "final_label" [label] and "final_source" [source]                       |
| proposals        | "proposal" [model version id, "shown" | "accepted"]                     |
| reviews          | "review" [annotator, "accepted" | "corrected" | "rejected"]             |

A figure that is undefined (no answers, no pairs) is None: the pages show "n/a", the API null.
A tally key of an unexpected shape is left out rather than failing the page. Model versions are
ids here: annotate never imports training, so the web layer names them.
"""

import json
import math
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, timedelta

from django.contrib.auth import get_user_model

from annotate.models import FinalSource, Label, Membership, Project
from annotate.quality.agreement import ProjectAgreement, project_agreement
from annotate.quality.gold import GOLD_MIN_ANSWERS, gold_accuracy
from annotate.quality.tallies import SECONDS_BUCKETS_PER_DOUBLING, bucket_seconds, tallies_read

CHARTS = ("progress", "labels_per_day", "seconds", "agreement", "gold", "labels", "proposals", "reviews")

# The tally kinds each chart reads (agreement reads its own, through project_agreement).
_KINDS = {
    "progress": ("completed_day", "final_source"),
    "labels_per_day": ("labels_day",),
    "seconds": ("seconds",),
    "agreement": (),
    "gold": (),
    "labels": ("final_label", "final_source"),
    "proposals": ("proposal",),
    "reviews": ("review",),
}
# Charts that name annotators (their usernames come from the members, then the users).
_NAMED = {"labels_per_day", "seconds", "gold", "reviews"}

# A median read from the histogram is the middle of its bucket: at most half a bucket, a factor
# of 2 ** (1 / 8), from any value in it.
SECONDS_MEDIAN_RELATIVE_ERROR = 2 ** (1 / (2 * SECONDS_BUCKETS_PER_DOUBLING)) - 1

REVIEW_OUTCOMES = ("accepted", "corrected", "rejected")


# --- the figures of each chart --------------------------------------------------------------


@dataclass(frozen=True)
class ProgressDay:
    day: str  # YYYY-MM-DD
    completed: int  # items completed that day (less those a reject reopened that day)
    cumulative: int


@dataclass(frozen=True)
class Progress:
    total_items: int  # the items to label: every item but the gold ones (they need no labels)
    gold_items: int
    completed: int
    days: tuple[ProgressDay, ...]  # every calendar day from the first completion to the last


@dataclass(frozen=True)
class AnnotatorDays:
    annotator_id: int
    username: str
    total: int
    per_day: tuple[int, ...]  # aligned with LabelsPerDay.days


@dataclass(frozen=True)
class LabelsPerDay:
    days: tuple[str, ...]  # every calendar day from the first annotation to the last
    annotators: tuple[AnnotatorDays, ...]


@dataclass(frozen=True)
class AnnotatorSeconds:
    annotator_id: int
    username: str
    annotations: int
    # The middle of the histogram bucket holding the (lower) median, and that bucket's bounds.
    median_seconds: float | None
    median_low_seconds: float | None
    median_high_seconds: float | None


@dataclass(frozen=True)
class Seconds:
    buckets_per_doubling: int
    relative_error: float  # the most a median here can be off, as a share of the true one
    annotators: tuple[AnnotatorSeconds, ...]


@dataclass(frozen=True)
class AgreementPair:
    annotator_a: int
    annotator_b: int
    username_a: str
    username_b: str
    items: int
    agreed: int
    percent_agreement: float | None
    cohen_kappa: float | None
    f1: float | None = None  # boxes and spans: matched with the same label, of both one's objects


@dataclass(frozen=True)
class AgreementScope:
    scope: str  # "" for the whole value, else a label's name (multi-label projects)
    items: int
    percent_agreement: float | None
    krippendorff_alpha: float | None
    fleiss_kappa: float | None
    fleiss_m: int
    fleiss_items: int


@dataclass(frozen=True)
class AnnotatorRef:
    annotator_id: int
    username: str


@dataclass(frozen=True)
class Agreement:
    multi_label: bool
    overall: AgreementScope  # the whole value
    scopes: tuple[AgreementScope, ...]  # the whole value, then each label (multi-label only)
    annotators: tuple[AnnotatorRef, ...]  # the matrix's rows and columns, in this order
    kappa_matrix: tuple[tuple[float | None, ...], ...]  # Cohen's kappa; None: the diagonal, n/a
    pairs: tuple[AgreementPair, ...]


@dataclass(frozen=True)
class AnnotatorGold:
    annotator_id: int
    username: str
    answers: int
    correct: int
    accuracy: float | None
    low: float | None  # the Wilson score interval (95%)
    high: float | None
    paused: bool


@dataclass(frozen=True)
class Gold:
    pause_below: float | None
    min_answers_to_pause: int
    annotators: tuple[AnnotatorGold, ...]


@dataclass(frozen=True)
class LabelCount:
    label: str
    items: int
    share: float | None  # of all items


@dataclass(frozen=True)
class SourceCount:
    source: str
    name: str
    items: int
    share: float | None


@dataclass(frozen=True)
class Labels:
    total_items: int
    labels: tuple[LabelCount, ...]  # the project's labels in order, then any no longer defined
    sources: tuple[SourceCount, ...]
    # What `labels` counts: "items", or for boxes and spans projects "boxes" / "spans" (each
    # object of a final label once; its share is then of all those objects).
    counts: str = "items"


@dataclass(frozen=True)
class VersionAcceptance:
    model_version_id: int
    shown: int
    accepted: int
    rate: float | None


@dataclass(frozen=True)
class Proposals:
    versions: tuple[VersionAcceptance, ...]  # by model version id


@dataclass(frozen=True)
class AnnotatorReviews:
    annotator_id: int
    username: str
    accepted: int
    corrected: int
    rejected: int
    reviewed: int
    accepted_share: float | None


@dataclass(frozen=True)
class Reviews:
    annotators: tuple[AnnotatorReviews, ...]


# --- the selectors ---------------------------------------------------------------------------


def dashboard_read(*, project: Project, charts: Iterable[str] = CHARTS) -> dict[str, object]:
    """{chart: its figures} for the charts asked (names from CHARTS), in at most 7 queries
    whatever the number of items and annotations: one each for the tallies, the members, the
    annotators who are not members (the import's source users, removed members), the labels,
    and project_agreement's three."""
    charts = list(dict.fromkeys(charts))
    unknown = [name for name in charts if name not in _KINDS]
    if unknown:
        raise ValueError(f"no chart {unknown[0]!r}; the charts are: {', '.join(CHARTS)}")
    kinds = sorted({kind for name in charts for kind in _KINDS[name]})
    tallies = tallies_read(project_id=project.pk, kinds=kinds) if kinds else {}
    members: list[Membership] = []
    names: dict[int, str] = {}
    if _NAMED.intersection(charts):
        members = list(Membership.objects.filter(project_id=project.pk).select_related("user"))
        names = _usernames(members, _annotator_ids(tallies))
    found: dict[str, object] = {}
    for name in charts:
        if name == "progress":
            found[name] = _progress(tallies)
        elif name == "labels_per_day":
            found[name] = _labels_per_day(tallies, names)
        elif name == "seconds":
            found[name] = _seconds(tallies, names)
        elif name == "agreement":
            found[name] = _agreement(project_agreement(project=project))
        elif name == "gold":
            found[name] = _gold(project, members)
        elif name == "labels":
            found[name] = _labels(
                tallies, _label_names(project), counts=_COUNTS.get(project.task_type, "items")
            )
        elif name == "proposals":
            found[name] = _proposals(tallies)
        elif name == "reviews":
            found[name] = _reviews(tallies, names)
    return found


def proposal_acceptance_list(*, project_id: int) -> tuple[VersionAcceptance, ...]:
    """Per model version id: proposals shown, accepted as they were, and the rate (one query)."""
    return _proposals(tallies_read(project_id=project_id, kinds=("proposal",))).versions


# --- one chart each: pure functions over the tallies ------------------------------------------


def _parts(raw: str, length: int) -> list | None:
    """A tally key's parts, or None for a key of another shape."""
    try:
        parts = json.loads(raw)
    except ValueError:
        return None
    if not isinstance(parts, list) or len(parts) != length:
        return None
    return parts


def _day(raw) -> date | None:
    try:
        return date.fromisoformat(raw)
    except (TypeError, ValueError):
        return None


def _days(first: date, last: date) -> list[date]:
    return [first + timedelta(days=n) for n in range((last - first).days + 1)]


def _share(n: int, total: int) -> float | None:
    return n / total if total else None


def _annotator_ids(tallies: Mapping[str, Mapping[str, int]]) -> set[int]:
    ids: set[int] = set()
    for kind, at, length in (("labels_day", 1, 2), ("seconds", 0, 2), ("review", 0, 2)):
        for raw in tallies.get(kind, {}):
            parts = _parts(raw, length)
            if parts is not None and isinstance(parts[at], int):
                ids.add(parts[at])
    return ids


def _usernames(members: Sequence[Membership], ids: set[int]) -> dict[int, str]:
    """Usernames of the members and of the other annotators in `ids` (removed members, the
    import's source users): one query for the latter, none when there are none."""
    names = {m.user_id: m.user.get_username() for m in members}
    missing = ids - set(names)
    if missing:
        User = get_user_model()
        names.update(User.objects.filter(pk__in=missing).values_list("pk", User.USERNAME_FIELD))
    return names


def _name(names: Mapping[int, str], annotator_id: int) -> str:
    return names.get(annotator_id, f"#{annotator_id}")


def _by_name(rows, names: Mapping[int, str]):
    return sorted(rows, key=lambda a: (_name(names, a).lower(), a))


def _progress(tallies) -> Progress:
    per_day: dict[date, int] = defaultdict(int)
    for raw, n in tallies.get("completed_day", {}).items():
        day = _day(raw)
        if day is not None:
            per_day[day] += n
    sources = {source: n for source, n in tallies.get("final_source", {}).items() if n > 0}
    gold = sources.get(FinalSource.GOLD, 0)
    days: list[ProgressDay] = []
    cumulative = 0
    if per_day:
        for day in _days(min(per_day), max(per_day)):
            cumulative += per_day.get(day, 0)
            days.append(
                ProgressDay(day=day.isoformat(), completed=per_day.get(day, 0), cumulative=cumulative)
            )
    return Progress(
        total_items=sum(sources.values()) - gold, gold_items=gold, completed=cumulative, days=tuple(days)
    )


def _labels_per_day(tallies, names) -> LabelsPerDay:
    counts: dict[int, dict[date, int]] = defaultdict(lambda: defaultdict(int))
    for raw, n in tallies.get("labels_day", {}).items():
        parts = _parts(raw, 2)
        if parts is None or not isinstance(parts[1], int):
            continue
        day = _day(parts[0])
        if day is not None:
            counts[parts[1]][day] += n
    every = [day for per_day in counts.values() for day in per_day]
    days = _days(min(every), max(every)) if every else []
    rows = tuple(
        AnnotatorDays(
            annotator_id=a,
            username=_name(names, a),
            total=sum(counts[a].values()),
            per_day=tuple(counts[a].get(day, 0) for day in days),
        )
        for a in _by_name(counts, names)
    )
    return LabelsPerDay(days=tuple(day.isoformat() for day in days), annotators=rows)


def histogram_median(buckets: Mapping[int, int]) -> int | None:
    """The bucket holding the lower median of a histogram {bucket: count}; None when empty."""
    total = sum(n for n in buckets.values() if n > 0)
    if not total:
        return None
    rank = (total + 1) // 2
    seen = 0
    for bucket in sorted(buckets):
        seen += max(buckets[bucket], 0)
        if seen >= rank:
            return bucket
    return None  # unreachable: the counts add up to total


def _seconds(tallies, names) -> Seconds:
    histograms: dict[int, dict[int, int]] = defaultdict(lambda: defaultdict(int))
    for raw, n in tallies.get("seconds", {}).items():
        parts = _parts(raw, 2)
        if parts is None or not all(isinstance(p, int) for p in parts):
            continue
        histograms[parts[0]][parts[1]] += n
    rows = []
    for a in _by_name(histograms, names):
        bucket = histogram_median(histograms[a])
        rows.append(
            AnnotatorSeconds(
                annotator_id=a,
                username=_name(names, a),
                annotations=sum(n for n in histograms[a].values() if n > 0),
                median_seconds=None if bucket is None else bucket_seconds(bucket),
                median_low_seconds=None if bucket is None else _bucket_edge(bucket),
                median_high_seconds=None if bucket is None else _bucket_edge(bucket + 1),
            )
        )
    return Seconds(
        buckets_per_doubling=SECONDS_BUCKETS_PER_DOUBLING,
        relative_error=SECONDS_MEDIAN_RELATIVE_ERROR,
        annotators=tuple(rows),
    )


def _bucket_edge(bucket: int) -> float:
    return 2 ** (bucket / SECONDS_BUCKETS_PER_DOUBLING)


def _scope(scope) -> AgreementScope:
    return AgreementScope(
        scope=scope.scope,
        items=scope.items,
        percent_agreement=scope.percent_agreement,
        krippendorff_alpha=scope.krippendorff_alpha,
        fleiss_kappa=scope.fleiss_kappa,
        fleiss_m=scope.fleiss_m,
        fleiss_items=scope.fleiss_items,
    )


def _agreement(figures: ProjectAgreement) -> Agreement:
    whole = figures.scope("")
    pairs = tuple(
        AgreementPair(
            annotator_a=p.annotator_a,
            annotator_b=p.annotator_b,
            username_a=p.username_a,
            username_b=p.username_b,
            items=p.items,
            agreed=p.agreed,
            percent_agreement=p.percent_agreement,
            cohen_kappa=p.cohen_kappa,
            f1=p.f1,
        )
        for p in (whole.pair_figures if whole else ())
    )
    return Agreement(
        multi_label=figures.multi_label,
        overall=_scope(whole) if whole else AgreementScope("", 0, None, None, None, 0, 0),
        scopes=tuple(_scope(s) for s in figures.scopes),
        annotators=tuple(AnnotatorRef(annotator_id=a.id, username=a.username) for a in figures.annotators),
        kappa_matrix=whole.kappa_matrix if whole else (),
        pairs=pairs,
    )


def _gold(project: Project, members: Sequence[Membership]) -> Gold:
    rows = []
    for m in members:
        if m.role != Membership.Role.ANNOTATOR and not m.gold_answers:
            continue
        accuracy = gold_accuracy(answers=m.gold_answers, correct=m.gold_correct)
        rows.append(
            AnnotatorGold(
                annotator_id=m.user_id,
                username=m.user.get_username(),
                answers=accuracy.answers,
                correct=accuracy.correct,
                accuracy=accuracy.accuracy,
                low=accuracy.low,
                high=accuracy.high,
                paused=m.paused,
            )
        )
    rows.sort(key=lambda r: (r.username.lower(), r.annotator_id))
    return Gold(
        pause_below=project.gold_pause_below, min_answers_to_pause=GOLD_MIN_ANSWERS, annotators=tuple(rows)
    )


def _label_names(project: Project) -> list[str]:
    return list(
        Label.objects.filter(project_id=project.pk).order_by("order", "id").values_list("name", flat=True)
    )


_COUNTS = {Project.TaskType.IMAGE_BOXES: "boxes", Project.TaskType.TEXT_SPANS: "spans"}


def _labels(tallies, label_names: Sequence[str], counts: str = "items") -> Labels:
    sources = {raw: n for raw, n in tallies.get("final_source", {}).items() if n > 0}
    total = sum(sources.values())
    counted = {raw: n for raw, n in tallies.get("final_label", {}).items() if n > 0}
    order = list(label_names) + sorted(set(counted) - set(label_names))
    whole = total if counts == "items" else sum(counted.values())
    labels = tuple(
        LabelCount(label=name, items=counted.get(name, 0), share=_share(counted.get(name, 0), whole))
        for name in order
    )
    known = dict(FinalSource.choices)
    source_order = list(known) + sorted(set(sources) - set(known))
    rows = tuple(
        SourceCount(
            source=s, name=known.get(s, s), items=sources.get(s, 0), share=_share(sources.get(s, 0), total)
        )
        for s in source_order
    )
    return Labels(total_items=total, labels=labels, sources=rows, counts=counts)


def _proposals(tallies) -> Proposals:
    counts: dict[int, dict[str, int]] = defaultdict(lambda: {"shown": 0, "accepted": 0})
    for raw, n in tallies.get("proposal", {}).items():
        parts = _parts(raw, 2)
        if parts is None or not isinstance(parts[0], int) or parts[1] not in ("shown", "accepted"):
            continue
        counts[parts[0]][parts[1]] += n
    return Proposals(
        versions=tuple(
            VersionAcceptance(
                model_version_id=v,
                shown=counts[v]["shown"],
                accepted=counts[v]["accepted"],
                rate=_share(counts[v]["accepted"], counts[v]["shown"]),
            )
            for v in sorted(counts)
        )
    )


def _reviews(tallies, names) -> Reviews:
    counts: dict[int, dict[str, int]] = defaultdict(lambda: dict.fromkeys(REVIEW_OUTCOMES, 0))
    for raw, n in tallies.get("review", {}).items():
        parts = _parts(raw, 2)
        if parts is None or not isinstance(parts[0], int) or parts[1] not in REVIEW_OUTCOMES:
            continue
        counts[parts[0]][parts[1]] += n
    rows = []
    for a in _by_name(counts, names):
        c = counts[a]
        reviewed = sum(c.values())
        rows.append(
            AnnotatorReviews(
                annotator_id=a,
                username=_name(names, a),
                accepted=c["accepted"],
                corrected=c["corrected"],
                rejected=c["rejected"],
                reviewed=reviewed,
                accepted_share=_share(c["accepted"], reviewed),
            )
        )
    return Reviews(annotators=tuple(rows))


def format_figure(value: float | None, *, digits: int = 3, percent: bool = False) -> str:
    """A figure as the pages show it: "n/a" when it is undefined (never 0, never an error)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    if percent:
        return f"{value:.{max(digits - 2, 0)}%}"
    return f"{value:.{digits}f}"
