"""The leads' dashboards page: every chart of annotate/dashboards/ as SVG, with its figures as a
table beside it. Managers of the project only (403 for its other members, 404 for everyone else).

The figures come from the project's tallies (a few queries whatever the number of annotations);
model versions are named here, in the web layer, because annotate's domain never imports training.
With htmx (the Refresh button) only the charts are sent back.
"""

from dataclasses import dataclass, field

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import reverse
from django.utils.safestring import SafeString, mark_safe

from annotate import charts
from annotate.dashboards import (
    Agreement,
    Gold,
    Labels,
    LabelsPerDay,
    Progress,
    Proposals,
    Reviews,
    Seconds,
    dashboard_read,
    format_figure,
)
from annotate.models import Project
from annotate.views.access import page_membership
from training.versions import model_version_list


@dataclass
class Card:
    """One chart on the page: its SVG drawings, a sentence on how to read it, and its figures."""

    name: str
    title: str
    svgs: list[SafeString]
    note: str
    api_url: str
    headers: list[str] = field(default_factory=list)
    rows: list[list[str]] = field(default_factory=list)


@login_required
def dashboards(request: HttpRequest, project_id: int) -> HttpResponse:
    membership = page_membership(request, project_id, needs="manage")
    project = membership.project
    figures = dashboard_read(project=project)
    context = {"project": project, "cards": dashboard_cards(project=project, figures=figures)}
    template = "annotate/partials/_dashboard_charts.html" if request.htmx else "annotate/dashboards.html"
    return render(request, template, context)


def version_labels(*, project: Project) -> dict[int, str]:
    """{model version id: "vN"} of the project's versions (one query)."""
    return {
        pk: f"v{number}" for pk, number in model_version_list(project=project).values_list("id", "number")
    }


def dashboard_cards(*, project: Project, figures: dict) -> list[Card]:
    """The page's cards, in the order of annotate.dashboards.CHARTS."""

    def api(name: str) -> str:
        return reverse(f"api:dashboard-{name.replace('_', '-')}", kwargs={"project_id": project.pk})

    builders = {
        "progress": _progress,
        "labels_per_day": _labels_per_day,
        "seconds": _seconds,
        "agreement": _agreement,
        "gold": _gold,
        "labels": _labels,
        "proposals": lambda data, url: _proposals(data, url, version_labels(project=project)),
        "reviews": _reviews,
    }
    return [builders[name](data, api(name)) for name, data in figures.items()]


def _svg(text: str) -> SafeString:
    # Drawn by annotate/charts/, which escapes every piece of text it writes.
    return mark_safe(text)


def _n(value: int) -> str:
    return f"{value:,}"


def _progress(data: Progress, url: str) -> Card:
    return Card(
        name="progress",
        title="Progress over time",
        svgs=[_svg(charts.progress_svg(data))],
        note=(
            "Items completed (all their annotations in) per day, added up; the dashed line is every item"
            " to label (gold items are not)."
        ),
        api_url=url,
        headers=["Day", "Completed", "In all"],
        rows=[[d.day, _n(d.completed), _n(d.cumulative)] for d in data.days[-14:]],
    )


def _labels_per_day(data: LabelsPerDay, url: str) -> Card:
    return Card(
        name="labels_per_day",
        title="Labels per annotator per day",
        svgs=[_svg(charts.labels_per_day_svg(data))],
        note="Every stored annotation, on the day it was submitted.",
        api_url=url,
        headers=["Annotator", "Annotations", "Days active"],
        rows=[[a.username, _n(a.total), _n(sum(1 for n in a.per_day if n))] for a in data.annotators],
    )


def _seconds(data: Seconds, url: str) -> Card:
    def s(value):
        return "n/a" if value is None else f"{value:.1f} s"

    return Card(
        name="seconds",
        title="Median seconds per item",
        svgs=[_svg(charts.seconds_svg(data))],
        note=(
            "Approximate: read from a histogram of active time with"
            f" {data.buckets_per_doubling} buckets per doubling of seconds, so each median is within"
            f" {data.relative_error:.0%} of the true one (the table gives the bucket it lies in)."
        ),
        api_url=url,
        headers=["Annotator", "Median (approx.)", "Between", "Annotations"],
        rows=[
            [
                a.username,
                s(a.median_seconds),
                f"{s(a.median_low_seconds)} – {s(a.median_high_seconds)}",
                _n(a.annotations),
            ]
            for a in data.annotators
        ],  # fmt: skip
    )


def _agreement(data: Agreement, url: str) -> Card:
    rows = [
        [
            f"{p.username_a} – {p.username_b}",
            _n(p.items),
            format_figure(p.percent_agreement, percent=True),
            format_figure(p.cohen_kappa) + ("" if p.f1 is None else f", F1 {format_figure(p.f1)}"),
        ]
        for p in data.pairs
    ]
    for scope in data.scopes:
        rows.append(
            [
                f"all annotators, {scope.scope or 'whole value'}",
                _n(scope.items),
                format_figure(scope.percent_agreement, percent=True),
                f"alpha {format_figure(scope.krippendorff_alpha)},"
                f" Fleiss {format_figure(scope.fleiss_kappa)}",
            ]
        )
    return Card(
        name="agreement",
        title="Agreement",
        svgs=[_svg(charts.agreement_svg(data))],
        note=(
            "Cohen's kappa of each pair of annotators on the items both voted on; Krippendorff's alpha"
            " (nominal) and Fleiss' kappa over everyone. n/a: too few shared items or a single label."
        ),
        api_url=url,
        headers=["Annotators", "Items", "Agreement", "Kappa"],
        rows=rows,
    )


def _gold(data: Gold, url: str) -> Card:
    rows = []
    for a in data.annotators:
        interval = "n/a" if a.low is None else f"{a.low:.0%} – {a.high:.0%}"
        rows.append(
            [
                a.username + (" (paused)" if a.paused else ""),
                f"{a.correct} of {a.answers}",
                format_figure(a.accuracy, digits=2, percent=True),
                interval,
            ]
        )
    return Card(
        name="gold",
        title="Gold accuracy per annotator",
        svgs=[_svg(charts.gold_svg(data))],
        note="Answers on gold items checked against their true value; the interval is Wilson's, at 95%.",
        api_url=url,
        headers=["Annotator", "Correct", "Accuracy", "95% interval"],
        rows=rows,
    )


def _labels(data: Labels, url: str) -> Card:
    rows = [[lb.label, _n(lb.items), format_figure(lb.share, digits=3, percent=True)] for lb in data.labels]
    rows += [
        [f"source: {s.name}", _n(s.items), format_figure(s.share, digits=3, percent=True)]
        for s in data.sources
    ]
    return Card(
        name="labels",
        title="Label distribution",
        svgs=[_svg(charts.labels_svg(data))],
        note=(
            "Items by final label (a multi-label item counts under each of its labels), and by its source."
            if data.counts == "items"
            else f"The {data.counts} of the final labels, by label (share of all of them); items by source."
        ),
        api_url=url,
        headers=[
            "Label or source",
            *(("Items", "Share of items") if data.counts == "items" else ("Count", "Share")),
        ],
        rows=rows,
    )


def _proposals(data: Proposals, url: str, labels: dict[int, str]) -> Card:
    return Card(
        name="proposals",
        title="Proposal acceptance per model version",
        svgs=[_svg(charts.proposals_svg(data, labels))],
        note="Of the annotations made with a model's proposal shown, the share that kept it as it was.",
        api_url=url,
        headers=["Model version", "Shown", "Accepted", "Rate"],
        rows=[
            [
                labels.get(v.model_version_id, f"version #{v.model_version_id}"),
                _n(v.shown),
                _n(v.accepted),
                format_figure(v.rate, digits=3, percent=True),
            ]
            for v in data.versions
        ],  # fmt: skip
    )


def _reviews(data: Reviews, url: str) -> Card:
    return Card(
        name="reviews",
        title="Review outcomes per annotator",
        svgs=[_svg(charts.reviews_svg(data))],
        note=(
            "For each reviewed item, the decision in force: an annotator's answer accepted (it is the"
            " final label), corrected (the final label differs) or rejected."
        ),
        api_url=url,
        headers=["Annotator", "Accepted", "Corrected", "Rejected", "Accepted share"],
        rows=[
            [
                a.username,
                _n(a.accepted),
                _n(a.corrected),
                _n(a.rejected),
                format_figure(a.accepted_share, digits=3, percent=True),
            ]
            for a in data.annotators
        ],  # fmt: skip
    )
