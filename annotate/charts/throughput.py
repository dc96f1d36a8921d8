"""The throughput charts: progress (items completed per day), labels per annotator per day (a
heatmap) and the median seconds per item."""

from html import escape

from annotate.charts.draw import (
    EMPTY,
    MAX_DAYS,
    MAX_ROWS,
    NAME_W,
    PAD,
    ROW_H,
    WIDTH,
    _axis_note,
    _bar,
    _baseline,
    _close,
    _compact,
    _day_ticks,
    _empty,
    _heading,
    _line,
    _more,
    _nice_ticks,
    _row_name,
    _row_value,
    _rows_chart,
    _seconds_text,
    _short,
    _svg_open,
    _text,
    _tick_anchor,
)
from annotate.dashboards import LabelsPerDay, Progress, Seconds, format_figure
from annotate.svg import ACCENT, GRID, INK, MUTED, blue


def progress_svg(progress: Progress) -> str:
    """Cumulative items completed per day, against the number of items (a dashed line)."""
    title = "Progress"
    height = 300
    left, right, top, bottom = 64, 24, 64, 48
    plot_w, plot_h = WIDTH - left - right, height - top - bottom
    total, done = progress.total_items, progress.completed
    percent = format_figure(done / total if total else None, digits=3, percent=True)
    out = [_svg_open(height, f"{title}: {done} of {total} items complete")]
    gold = f"; {progress.gold_items:,} gold items need no labels" if progress.gold_items else ""
    out += _heading(title, f"{done:,} of {total:,} items complete ({percent}){gold}")
    if not progress.days:
        out.append(_empty(top, plot_h, "no item complete yet"))
        return _close(out)
    top_value = max(total, max(d.cumulative for d in progress.days), 1)
    ticks = _nice_ticks(top_value)
    y_max = max(top_value, ticks[-1])
    n = len(progress.days)

    def sx(i: int) -> float:
        return left + (plot_w * i / (n - 1) if n > 1 else plot_w / 2)

    def sy(v: float) -> float:
        return top + plot_h * (1 - v / y_max)

    out.append('<g shape-rendering="crispEdges">')
    for t in ticks:
        out.append(_line(left, sy(t), left + plot_w, sy(t), GRID if t else MUTED))
    out.append("</g>")
    for t in ticks:
        out.append(_text(left - 8, sy(t) + 4, _compact(t), size=11, fill=MUTED, anchor="end"))
    for i in _day_ticks(n):
        anchor = _tick_anchor(i, n)
        out.append(_text(sx(i), top + plot_h + 18, progress.days[i].day, size=11, fill=MUTED, anchor=anchor))
    out.append(
        f'<line x1="{left}" y1="{sy(total):.1f}" x2="{left + plot_w}" y2="{sy(total):.1f}" '
        f'stroke="{MUTED}" stroke-dasharray="5 4"/>'
    )
    out.append(_text(left + plot_w, sy(total) - 6, f"all {total:,} items", size=11, fill=MUTED, anchor="end"))
    points = " ".join(f"{sx(i):.1f},{sy(d.cumulative):.1f}" for i, d in enumerate(progress.days))
    out.append(
        f'<polyline points="{points}" fill="none" stroke="{ACCENT}" stroke-width="2.25" '
        'stroke-linejoin="round"/>'
    )
    for i, d in enumerate(progress.days):
        tip = f"{d.day}: {d.completed:,} completed, {d.cumulative:,} in all"
        out.append(
            f'<circle cx="{sx(i):.1f}" cy="{sy(d.cumulative):.1f}" r="{3 if n <= 60 else 1.5}" '
            f'fill="{ACCENT}"><title>{escape(tip)}</title></circle>'
        )
    return _close(out)


def labels_per_day_svg(data: LabelsPerDay) -> str:
    """A heatmap: one row per annotator, one column per day (the latest MAX_DAYS), shaded by labels."""
    title = "Labels per annotator per day"
    days = data.days[-MAX_DAYS:]
    offset = len(data.days) - len(days)
    rows = data.annotators[:MAX_ROWS]
    label_w = NAME_W
    top = 64
    grid_w = WIDTH - PAD - label_w - 64
    cell_w = grid_w / len(days) if days else grid_w
    height = top + ROW_H * max(len(rows), 1) + 44 + (18 if len(data.annotators) > len(rows) else 0)
    total = sum(a.total for a in data.annotators)
    sub = f"{total:,} annotations by {len(data.annotators)} annotators"
    if len(days) < len(data.days):
        sub += f"; the last {len(days)} of {len(data.days)} days"
    out = [_svg_open(height, f"{title}: {sub}")]
    out += _heading(title, sub)
    if not rows or not days:
        out.append(_empty(top, ROW_H * 2, "no annotations yet"))
        return _close(out)
    peak = max((max(a.per_day[offset:], default=0) for a in rows), default=0) or 1
    x0 = PAD + label_w
    out.append('<g shape-rendering="crispEdges">')
    for r, a in enumerate(rows):
        y = top + r * ROW_H
        for c, day in enumerate(days):
            n = a.per_day[offset + c]
            tip = f"{a.username}, {day}: {n:,} labels"
            fill = blue(n / peak) if n else EMPTY
            out.append(
                f'<rect x="{x0 + c * cell_w:.2f}" y="{y}" width="{cell_w:.2f}" height="{ROW_H - 2}" '
                f'fill="{fill}" stroke="#ffffff" stroke-width="0.5"><title>{escape(tip)}</title></rect>'
            )
    out.append("</g>")
    for r, a in enumerate(rows):
        y = _baseline(top + r * ROW_H + 2, 12)
        out.append(_text(x0 - 8, y, _short(a.username), size=12, anchor="end", tip=a.username))
        out.append(_text(x0 + grid_w + 8, y, f"{a.total:,}", size=11, fill=MUTED, anchor="start"))
    y_axis = top + len(rows) * ROW_H + 14
    for c in _day_ticks(len(days), most=5):
        anchor = _tick_anchor(c, len(days))
        x = x0 + (c if anchor == "start" else c + 1 if anchor == "end" else c + 0.5) * cell_w
        out.append(_text(x, y_axis, days[c], size=11, fill=MUTED, anchor=anchor))
    out.append(
        _text(x0, y_axis + 20, f"darker: more labels (at most {peak:,} in a day)", size=11, fill=MUTED,
              anchor="start")
    )  # fmt: skip
    if len(data.annotators) > len(rows):
        out.append(_more(y_axis + 38, len(data.annotators) - len(rows), "annotators"))
    return _close(out)


def seconds_svg(data: Seconds) -> str:
    """Median seconds per item per annotator, with the bounds of the histogram bucket it lies in."""
    title = "Median seconds per item (approximate)"
    rows = data.annotators[:MAX_ROWS]
    sub = (
        f"read from a histogram of {data.buckets_per_doubling} buckets per doubling: within "
        f"{data.relative_error:.0%} of the true median"
    )
    out, layout = _rows_chart(title, sub, len(rows), len(data.annotators), "annotators")
    if not rows:
        out.append(_empty(layout.top, ROW_H * 2, "no annotations yet"))
        return _close(out)
    highest = max((a.median_high_seconds or 0 for a in rows), default=0) or 1
    for r, a in enumerate(rows):
        y = layout.row_y(r)
        out.append(_row_name(layout, y, a.username))
        if a.median_seconds is None:
            out.append(_row_value(layout, y, "n/a"))
            continue
        width = layout.bar_w * a.median_seconds / highest
        tip = (
            f"{a.username}: about {a.median_seconds:.1f} s per item (between {a.median_low_seconds:.1f}"
            f" and {a.median_high_seconds:.1f} s), {a.annotations:,} annotations"
        )
        out.append(_bar(layout.bar_x, y, width, ACCENT, tip))
        lo = layout.bar_x + layout.bar_w * a.median_low_seconds / highest
        hi = layout.bar_x + layout.bar_w * a.median_high_seconds / highest
        mid = y + (ROW_H - 6) / 2
        out.append(
            f'<path d="M{lo:.1f},{mid:.1f}H{hi:.1f}M{lo:.1f},{mid - 5:.1f}V{mid + 5:.1f}'
            f'M{hi:.1f},{mid - 5:.1f}V{mid + 5:.1f}" stroke="{INK}" stroke-width="1.2" fill="none"/>'
        )
        out.append(_row_value(layout, y, f"\u2248 {_seconds_text(a.median_seconds)} ({a.annotations:,})"))
    out.append(_axis_note(layout, "seconds per item (whiskers: the bucket); in brackets: annotations"))
    return _close(out)
