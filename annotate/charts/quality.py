"""The quality charts: agreement between annotators (a kappa matrix), gold accuracy, the label
distribution, proposal acceptance per model version and review outcomes."""

import math
from collections.abc import Mapping
from html import escape

from annotate.charts.draw import (
    EMPTY,
    MAX_MATRIX,
    MAX_ROWS,
    NAME_W,
    NEGATIVE,
    OUTCOME_COLOURS,
    PAD,
    ROW_H,
    WIDTH,
    _axis_note,
    _bar,
    _baseline,
    _close,
    _empty,
    _heading,
    _more,
    _row_name,
    _row_value,
    _rows_chart,
    _share_axis,
    _short,
    _svg_open,
    _text,
)
from annotate.dashboards import Agreement, Gold, Labels, Proposals, Reviews, format_figure
from annotate.svg import ACCENT, GRID, INK, MUTED, blue, clamp


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
