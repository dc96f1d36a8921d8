"""The throughput charts' figures, pure functions over the tallies: progress, labels per
annotator per day, and the median seconds per item read from a histogram."""

from collections import defaultdict
from collections.abc import Mapping
from datetime import date

from annotate.dashboards.figures import (
    SECONDS_MEDIAN_RELATIVE_ERROR,
    AnnotatorDays,
    AnnotatorSeconds,
    LabelsPerDay,
    Progress,
    ProgressDay,
    Seconds,
)
from annotate.dashboards.keys import _by_name, _day, _days, _name, _parts
from annotate.models import FinalSource
from annotate.quality.tallies import SECONDS_BUCKETS_PER_DOUBLING, bucket_seconds


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
