"""The dashboards' charts as self-contained SVG strings, safe to inline in a page.

Drawn like training/pictures.py (annotate never imports training, so the few drawing helpers are
repeated here): no scripts, no CSS, no external fonts or links, no `id` attributes (several charts
share a page), a fixed width and a height fixed by the number of rows shown, and every piece of
text through `html.escape`, so a label or a username called `<script>` is only ever text. A
figure that is undefined is written "n/a". Each function takes the figures of one chart as
annotate/dashboards.py returns them; long lists are cut at a stated number of rows or days (the
API has them all).
"""

import math
from collections.abc import Mapping
from html import escape

from annotate.dashboards import (
    Agreement,
    Gold,
    Labels,
    LabelsPerDay,
    Progress,
    Proposals,
    Reviews,
    Seconds,
    format_figure,
)
from annotate.svg import ACCENT, FONT, GRID, INK, MUTED, blue, clamp

EMPTY = "#f3f4f6"
NEGATIVE = "#fde2e1"
# Review outcomes: blue, orange, red (Okabe–Ito-like, distinguishable with colour blindness).
OUTCOME_COLOURS = {"accepted": "#0072b2", "corrected": "#e69f00", "rejected": "#d55e00"}

WIDTH = 640
PAD = 16
ROW_H = 24
MAX_ROWS = 30  # annotators, labels or versions drawn; the rest are summed up in a line
MAX_DAYS = 60  # days of the labels-per-day heatmap (the latest)
MAX_MATRIX = 20  # annotators of the agreement matrix
NAME_CHARS = 22  # longer names keep their start and end around an ellipsis; the tooltip has them whole
NAME_W = 170


# --- the charts ---------------------------------------------------------------------------------


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


def agreement_svg(data: Agreement) -> str:
    """Cohen's kappa for each pair of annotators as a matrix; the project's figures under the title."""
    title = "Agreement between annotators (Cohen's kappa)"
    o = data.overall
    sub = (
        f"Krippendorff's alpha {format_figure(o.krippendorff_alpha)} · Fleiss' kappa "
        f"{format_figure(o.fleiss_kappa)} ({o.fleiss_items:,} items with {o.fleiss_m} voters) · "
        f"agreement {format_figure(o.percent_agreement, digits=3, percent=True)}"
    )
    people = data.annotators[:MAX_MATRIX]
    k = len(people)
    label_w = NAME_W - 20
    top = 64
    cell = clamp(math.floor((WIDTH - PAD * 2 - label_w) / max(k, 1)), 26, 64)
    col_h = 96
    height = top + cell * max(k, 1) + col_h + (18 if len(data.annotators) > k else 0) + 8
    out = [_svg_open(height, f"{title}: {sub}")]
    out += _heading(title, sub)
    if not k:
        out.append(_empty(top, ROW_H * 2, "no item has two voters yet"))
        return _close(out)
    x0 = PAD + label_w
    size = 11 if cell < 40 else 12
    out.append('<g shape-rendering="crispEdges">')
    for i in range(k):
        for j in range(k):
            value = data.kappa_matrix[i][j]
            if i == j:
                fill = "#ffffff"
            elif value is None:
                fill = EMPTY
            elif value < 0:
                fill = NEGATIVE
            else:
                fill = blue(value)
            tip = f"{people[i].username} and {people[j].username}: kappa {format_figure(value)}"
            out.append(
                f'<rect x="{x0 + j * cell}" y="{top + i * cell}" width="{cell}" height="{cell}" '
                f'fill="{fill}" stroke="{GRID}" stroke-width="1"><title>{escape(tip)}</title></rect>'
            )
    out.append("</g>")
    for i in range(k):
        for j in range(k):
            value = data.kappa_matrix[i][j]
            text = "\u2014" if i == j else ("n/a" if value is None else f"{value:.2f}")
            colour = "#ffffff" if value is not None and i != j and value >= 0.6 else INK
            out.append(
                _text(x0 + j * cell + cell / 2, top + i * cell + cell / 2 + 4, text, size=size, fill=colour)
            )
    for i, person in enumerate(people):
        y = top + i * cell + cell / 2 + 4
        out.append(_text(x0 - 8, y, _short(person.username), size=12, anchor="end", tip=person.username))
        cx = x0 + i * cell + cell / 2
        ty = top + k * cell + 10
        out.append(
            f'<text x="0" y="0" transform="translate({cx + 3:.1f},{ty}) rotate(-45)" text-anchor="end" '
            f'font-size="12" fill="{INK}">{escape(_short(person.username, 14))}</text>'
        )
    if len(data.annotators) > k:
        out.append(_more(top + k * cell + col_h + 6, len(data.annotators) - k, "annotators"))
    return _close(out)


def gold_svg(data: Gold) -> str:
    """Each annotator's gold accuracy: a point, its 95% Wilson interval, and the pause bar if set."""
    title = "Gold accuracy per annotator"
    rows = data.annotators[:MAX_ROWS]
    sub = "points: correct share of gold answers; whiskers: 95% Wilson interval"
    if data.pause_below is not None:
        sub += f"; pausing below {data.pause_below:.0%} after {data.min_answers_to_pause} answers"
    out, layout = _rows_chart(title, sub, len(rows), len(data.annotators), "annotators")
    if not rows:
        out.append(_empty(layout.top, ROW_H * 2, "no annotators yet"))
        return _close(out)
    out.append(_share_axis(layout, len(rows)))
    if data.pause_below is not None:
        x = layout.bar_x + layout.bar_w * data.pause_below
        out.append(
            f'<line x1="{x:.1f}" y1="{layout.top - 4}" x2="{x:.1f}" y2="{layout.row_y(len(rows)):.1f}" '
            f'stroke="{OUTCOME_COLOURS["rejected"]}" stroke-dasharray="4 3"/>'
        )
    for r, a in enumerate(rows):
        y = layout.row_y(r)
        out.append(_row_name(layout, y, a.username + (" (paused)" if a.paused else "")))
        if a.accuracy is None:
            out.append(_row_value(layout, y, "n/a (no gold answers)"))
            continue
        mid = y + (ROW_H - 6) / 2
        lo, hi = (layout.bar_x + layout.bar_w * v for v in (a.low, a.high))
        x = layout.bar_x + layout.bar_w * a.accuracy
        tip = (
            f"{a.username}: {a.correct} of {a.answers} gold answers correct ({a.accuracy:.0%};"
            f" 95% interval {a.low:.0%}\u2013{a.high:.0%})"
        )
        out.append(
            f'<path d="M{lo:.1f},{mid:.1f}H{hi:.1f}M{lo:.1f},{mid - 5:.1f}V{mid + 5:.1f}'
            f'M{hi:.1f},{mid - 5:.1f}V{mid + 5:.1f}" stroke="{ACCENT}" stroke-width="1.5" fill="none"/>'
        )
        out.append(
            f'<circle cx="{x:.1f}" cy="{mid:.1f}" r="4.5" fill="{ACCENT}">'
            f"<title>{escape(tip)}</title></circle>"
        )
        out.append(
            _row_value(
                layout, y, f"{a.correct}/{a.answers} ({a.accuracy:.0%}, {a.low:.0%}\u2013{a.high:.0%})"
            )
        )
    return _close(out)


def labels_svg(data: Labels) -> str:
    """Items per final label (a multi-label item counts under each of its labels), and below them
    the items by where their final label came from (none, single, consensus, tie, review, gold)."""
    title = "Label distribution"
    rows = data.labels[:MAX_ROWS]
    labeled = sum(s.items for s in data.sources if s.source not in ("none", "tie"))
    sub = f"{labeled:,} of {data.total_items:,} items have a final label"
    heading = max(len(rows), 1) + 0.5  # the row of the sources' heading
    shown = math.ceil(heading) + 1 + len(data.sources)
    out, layout = _rows_chart(title, sub, shown, shown + len(data.labels) - len(rows), "labels")
    if not rows:
        out.append(_row_value(layout, layout.row_y(0), "no labels"))
    peak = max((r.items for r in rows), default=0) or 1
    for r, row in enumerate(rows):
        y = layout.row_y(r)
        out.append(_row_name(layout, y, row.label))
        tip = f"{row.label}: {row.items:,} items ({format_figure(row.share, percent=True)} of all)"
        out.append(_bar(layout.bar_x, y, layout.bar_w * row.items / peak, ACCENT, tip))
        share = format_figure(row.share, digits=2, percent=True)
        out.append(_row_value(layout, y, f"{row.items:,} ({share})"))
    out.append(
        _text(PAD, _baseline(layout.row_y(heading), 13), "Where the final labels come from", size=13,
              weight="600", anchor="start")
    )  # fmt: skip
    peak = max((r.items for r in data.sources), default=0) or 1
    for r, row in enumerate(data.sources):
        y = layout.row_y(math.ceil(heading) + 1 + r)
        out.append(_row_name(layout, y, row.name))
        out.append(
            _bar(layout.bar_x, y, layout.bar_w * row.items / peak, MUTED, f"{row.name}: {row.items:,} items")
        )
        share = format_figure(row.share, digits=2, percent=True)
        out.append(_row_value(layout, y, f"{row.items:,} ({share})"))
    return _close(out)


def proposals_svg(data: Proposals, version_labels: Mapping[int, str] | None = None) -> str:
    """Per model version, the share of its proposals annotators kept as they were."""
    title = "Proposal acceptance per model version"
    labels = version_labels or {}
    rows = data.versions[-MAX_ROWS:]
    shown = sum(v.shown for v in data.versions)
    out, layout = _rows_chart(
        title, f"{shown:,} proposals shown with an annotation", len(rows), len(data.versions), "versions"
    )
    if not rows:
        out.append(_empty(layout.top, ROW_H * 2, "no proposals shown yet"))
        return _close(out)
    out.append(_share_axis(layout, len(rows)))
    for r, v in enumerate(rows):
        y = layout.row_y(r)
        name = labels.get(v.model_version_id, f"version #{v.model_version_id}")
        out.append(_row_name(layout, y, name))
        if v.rate is None:
            out.append(_row_value(layout, y, "n/a"))
            continue
        tip = f"{name}: {v.accepted:,} of {v.shown:,} proposals accepted ({v.rate:.0%})"
        out.append(_bar(layout.bar_x, y, layout.bar_w * v.rate, ACCENT, tip))
        out.append(_row_value(layout, y, f"{v.rate:.0%} of {v.shown:,}"))
    return _close(out)


def reviews_svg(data: Reviews) -> str:
    """Review outcomes per annotator: the shares accepted, corrected and rejected, and how many."""
    title = "Review outcomes per annotator"
    rows = data.annotators[:MAX_ROWS]
    sub = "share of each annotator's reviewed answers, by the decision in force"
    out, layout = _rows_chart(title, sub, len(rows), len(data.annotators), "annotators", legend=True)
    if not rows:
        out.append(_empty(layout.top, ROW_H * 2, "no reviews yet"))
        return _close(out)
    for r, a in enumerate(rows):
        y = layout.row_y(r)
        out.append(_row_name(layout, y, a.username))
        if not a.reviewed:
            out.append(_row_value(layout, y, "n/a"))
            continue
        x = layout.bar_x
        for outcome, colour in OUTCOME_COLOURS.items():
            n = getattr(a, outcome)
            width = layout.bar_w * n / a.reviewed
            if n:
                tip = f"{a.username}: {n:,} of {a.reviewed:,} {outcome} ({n / a.reviewed:.0%})"
                out.append(_bar(x, y, width, colour, tip))
            x += width
        out.append(_row_value(layout, y, f"{a.accepted}/{a.corrected}/{a.rejected} of {a.reviewed:,}"))
    out.append(_axis_note(layout, "accepted / corrected / rejected of all reviewed"))
    return _close(out)


# --- layout of the charts with one row per annotator, label or version --------------------------


class _Rows:
    def __init__(self, rows: int, more: bool, legend: bool):
        self.top = 64 + (20 if legend else 0)
        self.name_w = NAME_W
        # The widest value written: "19/10/2 of 31", "17/18 (94%, 74%–99%)".
        self.value_w = 140
        self.bar_x = PAD + self.name_w
        self.bar_w = WIDTH - PAD * 2 - self.name_w - self.value_w
        self.rows = rows
        self.height = self.top + ROW_H * max(rows, 2) + 30 + (18 if more else 0)

    def row_y(self, r: int) -> float:
        return self.top + r * ROW_H


def _rows_chart(title: str, sub: str, shown: int, total: int, what: str, legend: bool = False):
    layout = _Rows(shown, total > shown, legend)
    out = [_svg_open(layout.height, f"{title}: {sub}")]
    out += _heading(title, sub)
    if legend:
        x = PAD
        for outcome, colour in OUTCOME_COLOURS.items():
            out.append(f'<rect x="{x}" y="60" width="12" height="12" fill="{colour}"/>')
            out.append(_text(x + 16, 70, outcome, size=11, anchor="start"))
            x += 24 + _text_width(outcome, 11)
    if total > shown:
        out.append(_more(layout.height - 8, total - shown, what))
    return out, layout


def _baseline(y: float, size: float) -> float:
    """The baseline that centres text of `size` on a row's bar (drawn from y, ROW_H - 6 high)."""
    return y + (ROW_H - 6) / 2 + size * 0.36


def _row_name(layout: _Rows, y: float, name: str) -> str:
    return _text(layout.bar_x - 8, _baseline(y, 12), _short(name), size=12, anchor="end", tip=name)


def _row_value(layout: _Rows, y: float, text: str) -> str:
    return _text(layout.bar_x + layout.bar_w + 8, _baseline(y, 11), text, size=11, fill=MUTED, anchor="start")


def _bar(x: float, y: float, width: float, fill: str, tip: str) -> str:
    return (
        f'<rect x="{x:.1f}" y="{y:.1f}" width="{max(width, 0):.1f}" height="{ROW_H - 6}" fill="{fill}">'
        f"<title>{escape(tip)}</title></rect>"
    )


def _share_axis(layout: _Rows, rows: int) -> str:
    """Grid lines at 0, 25, 50, 75 and 100% behind rows of shares."""
    bottom = layout.row_y(max(rows, 1)) - 4
    parts = ['<g shape-rendering="crispEdges">']
    for t in range(5):
        x = layout.bar_x + layout.bar_w * t / 4
        parts.append(_line(x, layout.top - 4, x, bottom, GRID))
    parts.append("</g>")
    for t in range(5):
        x = layout.bar_x + layout.bar_w * t / 4
        parts.append(_text(x, bottom + 14, f"{t * 25}%", size=10, fill=MUTED))
    return "".join(parts)


def _axis_note(layout: _Rows, text: str) -> str:
    return _text(
        layout.bar_x, layout.row_y(max(layout.rows, 1)) + 12, text, size=11, fill=MUTED, anchor="start"
    )


# --- drawing helpers ------------------------------------------------------------------------------


def _svg_open(height: float, label: str) -> str:
    height = math.ceil(height)
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {height}" width="{WIDTH}" '
        f'height="{height}" role="img" aria-label="{escape(label)}" font-family="{FONT}" fill="{INK}">\n'
        f'<rect x="0" y="0" width="{WIDTH}" height="{height}" fill="#ffffff"/>'
    )


def _close(out: list[str]) -> str:
    out.append("</svg>")
    return "\n".join(out)


def _heading(title: str, sub: str) -> list[str]:
    return [
        _text(PAD, PAD + 16, title, size=16, weight="600", anchor="start"),
        _text(PAD, PAD + 34, sub, size=12, fill=MUTED, anchor="start"),
    ]


def _empty(top: float, height: float, message: str) -> str:
    return (
        f'<rect x="{PAD}" y="{top}" width="{WIDTH - 2 * PAD}" height="{height}" fill="#f9fafb" '
        f'stroke="{GRID}" stroke-dasharray="4 4" rx="6"/>'
        + _text(WIDTH / 2, top + height / 2 + 5, message, size=14, fill=MUTED)
    )


def _more(y: float, n: int, what: str) -> str:
    return _text(PAD, y, f"and {n:,} more {what} (all are in the API)", size=11, fill=MUTED, anchor="start")


def _line(x1: float, y1: float, x2: float, y2: float, stroke: str) -> str:
    return f'<line x1="{x1:.1f}" y1="{y1:.1f}" x2="{x2:.1f}" y2="{y2:.1f}" stroke="{stroke}"/>'


def _text(
    x: float,
    y: float,
    text: str,
    *,
    size: float,
    anchor: str = "middle",
    fill: str = INK,
    weight: str | None = None,
    tip: str | None = None,
) -> str:
    attrs = f'x="{x:.1f}" y="{y:.1f}" text-anchor="{anchor}" font-size="{size}" fill="{fill}"'
    if weight:
        attrs += f' font-weight="{weight}"'
    title = f"<title>{escape(tip)}</title>" if tip and tip != text else ""
    return f"<text {attrs}>{escape(text)}{title}</text>"


def _nice_ticks(upper: float) -> list[int]:
    """Whole-number ticks from 0 to at least `upper`, with a 1-2-2.5-5 step (three to six intervals)."""
    raw = upper / 5
    magnitude = 10 ** math.floor(math.log10(raw)) if raw > 0 else 1
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw)
    step = max(1, round(step))
    return [i * step for i in range(math.ceil(upper / step) + 1)]


def _day_ticks(n: int, most: int = 6) -> list[int]:
    """Up to `most` evenly spread positions of n days, the first and the last among them."""
    if n <= 0:
        return []
    if n <= most:
        return list(range(n))
    step = (n - 1) / (most - 1)
    return sorted({round(i * step) for i in range(most)})


def _tick_anchor(i: int, n: int) -> str:
    """The first of several axis labels starts at its tick and the last ends there, inside the chart."""
    if n > 1 and i == 0:
        return "start"
    if n > 1 and i == n - 1:
        return "end"
    return "middle"


def _compact(value: int) -> str:
    if value < 10_000:
        return f"{value:,}"
    if value < 1_000_000:
        return f"{value / 1000:.0f}k"
    return f"{value / 1_000_000:.1f}M"


def _seconds_text(seconds: float) -> str:
    if seconds < 10:
        return f"{seconds:.1f} s"
    if seconds < 600:
        return f"{seconds:.0f} s"
    return f"{seconds / 60:.0f} min"


def _short(text: str, limit: int = NAME_CHARS) -> str:
    """`text` cut to `limit` characters around an ellipsis, keeping its start and its end (names
    often differ only at the end: annotator7, annotator8)."""
    if len(text) <= limit:
        return text
    tail = (limit - 1) // 2
    return text[: limit - 1 - tail] + "\u2026" + text[-tail:]


def _text_width(text: str, size: float) -> int:
    """Rough width of `text` in a sans-serif face; enough to lay out a legend without a font file."""
    em = sum(
        0.62 if ch.isupper() or ch in "mwMW@%" else 0.3 if ch in "iljtf.,:;'|!I " else 0.55 for ch in text
    )
    return math.ceil(em * size)
