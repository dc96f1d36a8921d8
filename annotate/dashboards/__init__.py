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

The package: figures.py holds the dataclasses each chart returns and format_figure; keys.py
reads the tallies' keys and names; throughput.py (progress, labels per day, seconds) and
quality.py (agreement, gold, labels, proposals, reviews) compute each chart's figures; this
module reads the rows once and hands them to them.
"""

from collections.abc import Iterable, Mapping, Sequence

from django.contrib.auth import get_user_model

from annotate.dashboards.figures import (
    CHARTS,
    REVIEW_OUTCOMES,
    SECONDS_MEDIAN_RELATIVE_ERROR,
    Agreement,
    AgreementPair,
    AgreementScope,
    AnnotatorDays,
    AnnotatorGold,
    AnnotatorRef,
    AnnotatorReviews,
    AnnotatorSeconds,
    Gold,
    LabelCount,
    Labels,
    LabelsPerDay,
    Progress,
    ProgressDay,
    Proposals,
    Reviews,
    Seconds,
    SourceCount,
    VersionAcceptance,
    format_figure,
)
from annotate.dashboards.keys import _parts
from annotate.dashboards.quality import (
    _COUNTS,
    _agreement,
    _gold,
    _label_names,
    _labels,
    _proposals,
    _reviews,
)
from annotate.dashboards.throughput import _labels_per_day, _progress, _seconds, histogram_median
from annotate.models import Membership, Project
from annotate.quality.agreement import project_agreement
from annotate.quality.tallies import tallies_read

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

__all__ = [
    "CHARTS",
    "REVIEW_OUTCOMES",
    "SECONDS_MEDIAN_RELATIVE_ERROR",
    "Agreement",
    "AgreementPair",
    "AgreementScope",
    "AnnotatorDays",
    "AnnotatorGold",
    "AnnotatorRef",
    "AnnotatorReviews",
    "AnnotatorSeconds",
    "Gold",
    "LabelCount",
    "Labels",
    "LabelsPerDay",
    "Progress",
    "ProgressDay",
    "Proposals",
    "Reviews",
    "Seconds",
    "SourceCount",
    "VersionAcceptance",
    "dashboard_read",
    "format_figure",
    "histogram_median",
    "proposal_acceptance_list",
    # The pure functions of each chart, for the tests that draw charts without a database.
    "_labels",
    "_labels_per_day",
    "_progress",
    "_proposals",
    "_reviews",
    "_seconds",
]


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
