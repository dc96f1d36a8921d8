"""The figures of each dashboard chart, as frozen dataclasses (the pages draw them, the API
serializes them), the chart names, and how a figure is written on a page."""

import math
from dataclasses import dataclass

from annotate.quality.tallies import SECONDS_BUCKETS_PER_DOUBLING

CHARTS = ("progress", "labels_per_day", "seconds", "agreement", "gold", "labels", "proposals", "reviews")

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


def format_figure(value: float | None, *, digits: int = 3, percent: bool = False) -> str:
    """A figure as the pages show it: "n/a" when it is undefined (never 0, never an error)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    if percent:
        return f"{value:.{max(digits - 2, 0)}%}"
    return f"{value:.{digits}f}"
