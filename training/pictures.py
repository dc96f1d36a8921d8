"""Pictures of a model's quality as self-contained SVG strings, safe to inline in a page.

No matplotlib, no external fonts, no CSS, no `id` attributes (so several pictures can share a page), and
every label goes through `html.escape`, so a class called `<script>` is only ever text.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from html import escape
from typing import Any

from annotate.svg import ACCENT, FONT, GRID, INK, MUTED, blue, clamp

MAX_LABEL_CHARS = 22


def confusion_matrix_svg(
    matrix: Sequence[Sequence[int]], classes: Sequence[str], title: str = "Confusion matrix"
) -> str:
    """A k x k heatmap: rows are the true class, columns the predicted class, counts in the cells.

    Each cell is shaded by its share of its row (the recall view: how the items of one true class were
    spread), so a small class reads as clearly as a big one. Readable up to about 20 classes.
    """
    k = len(classes)
    if k == 0:
        raise ValueError("classes must not be empty")
    counts = [[int(v) for v in row] for row in matrix]
    if len(counts) != k or any(len(row) != k for row in counts):
        raise ValueError(f"matrix must be {k} x {k} to match classes")
    if any(v < 0 for row in counts for v in row):
        raise ValueError("matrix counts must not be negative")

    cell = clamp(round(480 / k), 28, 72)
    count_size = clamp(round(cell * 0.36), 10, 15)
    label_size = 12 if k <= 12 else 11
    labels = [_shorten(str(c)) for c in classes]
    label_px = max(_text_width(lab, label_size) for lab in labels)
    horizontal_cols = label_px <= cell - 6

    pad = 16
    title_h = 52
    axis_title = 18  # room for a rotated or horizontal axis title
    grid_x = pad + axis_title + 8 + label_px + 8
    grid_y = pad + title_h
    grid = cell * k
    col_label_h = label_size + 6 if horizontal_cols else math.ceil(label_px * 0.71 + label_size)
    totals_x = grid_x + grid + 8
    totals_w = max(_text_width(f"{sum(row):,}", 11) for row in counts) + 8
    legend_x = totals_x + max(totals_w, _text_width("items", 11)) + 14
    legend_h = min(grid, 220)
    width = legend_x + max(14 + 7 + _text_width("100%", 11), _text_width("share of row", 11)) + pad
    height = grid_y + grid + 8 + col_label_h + 10 + 16 + pad
    width = max(width, pad * 2 + _text_width(title, 16, bold=True))

    out = [_svg_open(width, height, f"{title}: {k} classes, rows are true, columns predicted")]
    out.append(_text(pad, pad + 16, title, size=16, weight="600", anchor="start"))
    total = sum(map(sum, counts))
    correct = sum(counts[i][i] for i in range(k))
    subtitle = f"{total:,} items, {correct:,} on the diagonal" if total else "no items"
    out.append(_text(pad, pad + 34, subtitle, size=12, fill=MUTED, anchor="start"))

    # Axis titles: "True class" runs up the left edge, "Predicted class" sits under the column labels.
    mid_y = grid_y + grid / 2
    out.append(
        f'<text x="0" y="0" transform="translate({pad + 12},{mid_y:.1f}) rotate(-90)" '
        f'text-anchor="middle" font-size="13" font-weight="600" fill="{INK}">True class</text>'
    )
    out.append(
        _text(
            grid_x + grid / 2,
            grid_y + grid + 8 + col_label_h + 16,
            "Predicted class",
            size=13,
            weight="600",
        )
    )

    out.append('<g shape-rendering="crispEdges">')
    for i, row in enumerate(counts):
        row_total = sum(row)
        for j, value in enumerate(row):
            share = value / row_total if row_total else 0.0
            x, y = grid_x + j * cell, grid_y + i * cell
            tip = f"true {classes[i]} \u2192 predicted {classes[j]}: {value:,}" + (
                f" ({share:.0%} of {classes[i]})" if row_total else ""
            )
            out.append(
                f'<rect class="cell" data-row="{i}" data-col="{j}" x="{x}" y="{y}" width="{cell}" '
                f'height="{cell}" fill="{blue(share)}" stroke="#ffffff" stroke-width="1">'
                f"<title>{escape(tip)}</title></rect>"
            )
    out.append("</g>")
    # The diagonal gets a thin outline so "right answers" can be found at a glance.
    for i in range(k):
        x, y = grid_x + i * cell, grid_y + i * cell
        out.append(
            f'<rect x="{x + 1.5}" y="{y + 1.5}" width="{cell - 3}" height="{cell - 3}" fill="none" '
            f'stroke="{INK}" stroke-opacity="0.55" stroke-width="1.5"/>'
        )
    for i, row in enumerate(counts):
        row_total = sum(row)
        for j, value in enumerate(row):
            share = value / row_total if row_total else 0.0
            colour = "#ffffff" if share >= 0.55 else (INK if value else "#9ca3af")
            out.append(
                _text(
                    grid_x + j * cell + cell / 2,
                    grid_y + i * cell + cell / 2 + count_size * 0.36,
                    _compact(value),
                    size=count_size,
                    fill=colour,
                    weight="600" if i == j and value else None,
                    cls="count",
                )
            )

    for i, (label, full) in enumerate(zip(labels, classes, strict=True)):
        out.append(
            _text(
                grid_x - 8,
                grid_y + i * cell + cell / 2 + label_size * 0.36,
                label,
                size=label_size,
                anchor="end",
                cls="row-label",
                tip=str(full) if label != str(full) else None,
            )
        )
    for j, (label, full) in enumerate(zip(labels, classes, strict=True)):
        cx = grid_x + j * cell + cell / 2
        tip = str(full) if label != str(full) else None
        if horizontal_cols:
            out.append(
                _text(cx, grid_y + grid + 8 + label_size, label, size=label_size, cls="col-label", tip=tip)
            )
        else:
            ty = grid_y + grid + 10
            out.append(
                f'<text class="col-label" x="0" y="0" transform="translate({cx + 3:.1f},{ty}) rotate(-45)" '
                f'text-anchor="end" font-size="{label_size}" fill="{INK}">{escape(label)}'
                + (f"<title>{escape(tip)}</title>" if tip else "")
                + "</text>"
            )

    out.append(_text(totals_x, grid_y - 6, "items", size=11, fill=MUTED, anchor="start"))
    for i, row in enumerate(counts):
        out.append(
            _text(
                totals_x,
                grid_y + i * cell + cell / 2 + 11 * 0.36,
                f"{sum(row):,}",
                size=11,
                fill=MUTED,
                anchor="start",
                cls="row-total",
            )
        )

    # Legend: a stepped bar rather than a gradient, which would need an id that could clash on the page.
    steps = 40
    step_h = legend_h / steps
    out.append('<g shape-rendering="crispEdges">')
    for s in range(steps):
        share = 1 - (s + 0.5) / steps
        out.append(
            f'<rect x="{legend_x}" y="{grid_y + s * step_h:.2f}" width="14" height="{step_h + 0.3:.2f}" '
            f'fill="{blue(share)}"/>'
        )
    out.append("</g>")
    out.append(
        f'<rect x="{legend_x}" y="{grid_y}" width="14" height="{legend_h}" fill="none" stroke="{GRID}"/>'
    )
    for share, label in ((1.0, "100%"), (0.5, "50%"), (0.0, "0%")):
        y = grid_y + (1 - share) * legend_h
        out.append(
            f'<line x1="{legend_x + 14}" y1="{y:.1f}" x2="{legend_x + 18}" y2="{y:.1f}" stroke="{MUTED}"/>'
        )
        out.append(_text(legend_x + 21, y + 4, label, size=11, fill=MUTED, anchor="start"))
    out.append(_text(legend_x, grid_y + legend_h + 18, "share of row", size=11, fill=MUTED, anchor="start"))
    out.append("</svg>")
    return "\n".join(out)


def learning_curve_svg(
    points: Sequence[Mapping[str, Any]],
    title: str = "Learning curve",
    *,
    measure: str = "accuracy",
    axis: str | None = None,
) -> str:
    """Validation accuracy against the number of training labels, one point per model version.

    Each point is a dict with `n_labels` and `accuracy`, and optionally `ci_low`/`ci_high` (drawn as
    whiskers, and as a band when every point has them) and `version` (written above the point). Give the
    points in version order: the last one is the latest, which is filled and summed up under the title.
    `measure` names the figure the points' `accuracy` holds (a spans model's is "entity F1"); `axis`
    titles the vertical axis ("Validation <measure>" by default; the random slice's curve says so).
    """
    width, height = 640, 400
    left, right, top, bottom = 64, 28, 72, 58
    plot_w, plot_h = width - left - right, height - top - bottom

    out = [_svg_open(width, height, f"{title}: {measure} against number of labels")]
    out.append(_text(16, 32, title, size=16, weight="600", anchor="start"))

    if not points:
        out.append(
            f'<rect x="16" y="{top - 16}" width="{width - 32}" height="{plot_h + 16}" fill="#f9fafb" '
            f'stroke="{GRID}" stroke-dasharray="4 4" rx="6"/>'
        )
        mid_y = top - 16 + (plot_h + 16) / 2
        out.append(_text(width / 2, mid_y, "no versions yet", size=15, fill=MUTED))
        out.append(
            _text(
                width / 2,
                mid_y + 22,
                f"train a model to see {measure} grow with labels",
                size=12,
                fill="#9ca3af",
            )
        )
        out.append("</svg>")
        return "\n".join(out)

    given = [_learning_point(p) for p in points]
    latest = given[-1]
    rows = sorted(given, key=lambda r: r["n"])
    x_max_data = max(r["n"] for r in rows)
    # End the axis just past the last version rather than at a round tick, so the points use the width.
    x_max = x_max_data * 1.08 if x_max_data else 10
    x_ticks = _nice_ticks(x_max)

    def sx(n: float) -> float:
        return left + plot_w * n / x_max

    def sy(acc: float) -> float:
        return top + plot_h * (1 - acc)

    sub = f"latest: {latest['label'] + ' · ' if latest['label'] else ''}{measure} {latest['acc']:.2f}"
    if latest["lo"] is not None:
        sub += f" (95% CI {latest['lo']:.2f}\u2013{latest['hi']:.2f})"
    sub += f" with {latest['n']:,} labels"
    out.append(_text(16, 52, sub, size=12, fill=MUTED, anchor="start"))

    # Grid and axes.
    out.append('<g shape-rendering="crispEdges">')
    for t in range(11):
        y = sy(t / 10)
        out.append(
            f'<line x1="{left}" y1="{y:.1f}" x2="{left + plot_w}" y2="{y:.1f}" '
            f'stroke="{GRID if t else MUTED}" stroke-width="1"/>'
        )
    for t in x_ticks:
        x = sx(t)
        out.append(
            f'<line x1="{x:.1f}" y1="{top + plot_h}" x2="{x:.1f}" y2="{top + plot_h + 5}" stroke="{MUTED}"/>'
        )
    out.append(f'<line x1="{left}" y1="{top}" x2="{left}" y2="{top + plot_h}" stroke="{MUTED}"/>')
    out.append("</g>")
    for t in range(0, 11, 2):
        out.append(
            _text(left - 8, sy(t / 10) + 4, f"{t / 10:.1f}", size=11, fill=MUTED, anchor="end", cls="y-tick")
        )
    for t in x_ticks:
        out.append(_text(sx(t), top + plot_h + 19, f"{t:,}", size=11, fill=MUTED, cls="x-tick"))
    out.append(_text(left + plot_w / 2, height - 14, "Number of training labels", size=13, weight="600"))
    out.append(
        f'<text x="0" y="0" transform="translate(18,{top + plot_h / 2}) rotate(-90)" text-anchor="middle" '
        f'font-size="13" font-weight="600" fill="{INK}">{escape(axis or "Validation " + measure)}</text>'
    )

    with_ci = [r for r in rows if r["lo"] is not None]
    if len(rows) > 1 and len(with_ci) == len(rows):
        upper = [f"{sx(r['n']):.1f},{sy(r['hi']):.1f}" for r in rows]
        lower = [f"{sx(r['n']):.1f},{sy(r['lo']):.1f}" for r in reversed(rows)]
        out.append(
            f'<polygon class="ci-band" points="{" ".join(upper + lower)}" fill="{ACCENT}" '
            f'fill-opacity="0.12" stroke="none"/>'
        )
    for r in with_ci:
        x = sx(r["n"])
        y1, y2 = sy(r["hi"]), sy(r["lo"])
        out.append(
            f'<path class="ci-whisker" d="M{x:.1f},{y1:.1f}V{y2:.1f}M{x - 5:.1f},{y1:.1f}H{x + 5:.1f}'
            f'M{x - 5:.1f},{y2:.1f}H{x + 5:.1f}" stroke="{ACCENT}" stroke-opacity="0.6" '
            f'stroke-width="1.5" fill="none"/>'
        )
    if len(rows) > 1:
        line = " ".join(f"{sx(r['n']):.1f},{sy(r['acc']):.1f}" for r in rows)
        out.append(
            f'<polyline points="{line}" fill="none" stroke="{ACCENT}" stroke-width="2.25" '
            f'stroke-linejoin="round" stroke-linecap="round"/>'
        )

    show_labels = len(rows) <= 12
    for r in rows:
        x, y = sx(r["n"]), sy(r["acc"])
        tip = f"{r['label'] + ': ' if r['label'] else ''}{measure} {r['acc']:.3f}"
        if r["lo"] is not None:
            tip += f" (95% CI {r['lo']:.3f}\u2013{r['hi']:.3f})"
        tip += f", {r['n']:,} labels"
        is_latest = r is latest
        out.append(
            f'<circle class="point" cx="{x:.1f}" cy="{y:.1f}" r="{5.5 if is_latest else 4.5}" '
            f'fill="{ACCENT if is_latest else "#ffffff"}" stroke="{ACCENT}" stroke-width="2">'
            f"<title>{escape(tip)}</title></circle>"
        )
        if r["label"] and (show_labels or is_latest):
            # Put the label above the whisker cap, or below the point when that would leave the plot.
            above = (sy(r["hi"]) if r["hi"] is not None else y) - 9
            ly = above if above > top + 4 else (sy(r["lo"]) if r["lo"] is not None else y) + 18
            out.append(
                _text(
                    x, ly, r["label"], size=11, fill=INK, weight="600" if is_latest else None, cls="version"
                )
            )
    out.append("</svg>")
    return "\n".join(out)


def loss_curve_svg(
    train: Sequence[float], validation: Sequence[float], *, best_epoch: int | None, note: str
) -> str:
    """Training and validation loss per epoch (the image network's early stopping), the best
    epoch marked; `note` says which fit the curves are of."""
    width, height = 640, 340
    left, right, top, bottom = 64, 28, 64, 58
    plot_w, plot_h = width - left - right, height - top - bottom
    out = [_svg_open(width, height, "Loss per epoch: training and validation")]
    out.append(_text(16, 28, "Loss per epoch", size=16, weight="600", anchor="start"))
    out.append(_text(16, 48, note, size=12, fill=MUTED, anchor="start"))
    values = [v for v in [*train, *validation] if math.isfinite(v)]
    epochs = max(len(train), len(validation))
    if not values or epochs == 0:
        out.append(_text(width / 2, top + plot_h / 2, "no epochs recorded", size=14, fill=MUTED))
        out.append("</svg>")
        return "\n".join(out)
    high = max(values) * 1.05 or 1.0

    def x(epoch: int) -> float:
        return left + (plot_w * (epoch - 1) / (epochs - 1) if epochs > 1 else plot_w / 2)

    def y(value: float) -> float:
        return top + plot_h * (1 - clamp(value / high, 0.0, 1.0))

    for i in range(5):
        level = high * i / 4
        out.append(
            f'<line x1="{left}" y1="{y(level):.1f}" x2="{left + plot_w}" y2="{y(level):.1f}" '
            f'stroke="{GRID}"/>'
        )
        out.append(_text(left - 8, y(level) + 4, f"{level:.2f}", size=11, fill=MUTED, anchor="end"))
    for epoch in sorted({1, epochs, *range(1, epochs + 1, max(1, epochs // 6))}):
        out.append(_text(x(epoch), top + plot_h + 18, str(epoch), size=11, fill=MUTED))
    out.append(_text(left + plot_w / 2, height - 14, "epoch", size=12, fill=MUTED))
    if best_epoch:
        out.append(
            f'<line x1="{x(best_epoch):.1f}" y1="{top}" x2="{x(best_epoch):.1f}" y2="{top + plot_h}" '
            f'stroke="{MUTED}" stroke-dasharray="4 4"/>'
        )
        right_half = x(best_epoch) > left + plot_w / 2
        out.append(
            _text(x(best_epoch) + (-4 if right_half else 4), top + plot_h - 8, f"best epoch {best_epoch}",
                  size=11, fill=MUTED, anchor="end" if right_half else "start")
        )  # fmt: skip
    for series, colour in ((train, ACCENT), (validation, "#d97706")):
        points = " ".join(f"{x(e):.1f},{y(v):.1f}" for e, v in enumerate(series, 1) if math.isfinite(v))
        if points:
            out.append(f'<polyline points="{points}" fill="none" stroke="{colour}" stroke-width="2"/>')
    legend_x = left + plot_w - 180
    for row, (colour, name) in enumerate(((ACCENT, "training loss"), ("#d97706", "validation loss"))):
        out.append(f'<rect x="{legend_x}" y="{top + 6 + 18 * row}" width="14" height="4" fill="{colour}"/>')
        out.append(_text(legend_x + 20, top + 11 + 18 * row, name, size=11, anchor="start"))
    out.append("</svg>")
    return "\n".join(out)


def _learning_point(point: Mapping[str, Any]) -> dict[str, Any]:
    try:
        n = int(point["n_labels"])
        acc = float(point["accuracy"])
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError("each point needs numeric n_labels and accuracy") from exc
    if n < 0 or not 0.0 <= acc <= 1.0:
        raise ValueError(f"point out of range: n_labels={n}, accuracy={acc}")
    lo, hi = point.get("ci_low"), point.get("ci_high")
    if lo is None or hi is None:
        lo = hi = None
    else:
        lo, hi = clamp(float(lo), 0.0, 1.0), clamp(float(hi), 0.0, 1.0)
    version = point.get("version")
    if version is None or version == "":
        label = ""
    elif isinstance(version, int):
        label = f"v{version}"
    else:
        label = _shorten(str(version), 16)
    return {"n": n, "acc": acc, "lo": lo, "hi": hi, "label": label}


def _svg_open(width: float, height: float, label: str) -> str:
    width, height = math.ceil(width), math.ceil(height)
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" width="{width}" '
        f'height="{height}" role="img" aria-label="{escape(label)}" font-family="{FONT}" fill="{INK}">\n'
        f'<rect x="0" y="0" width="{width}" height="{height}" fill="#ffffff"/>'
    )


def _text(
    x: float,
    y: float,
    text: str,
    *,
    size: float,
    anchor: str = "middle",
    fill: str = INK,
    weight: str | None = None,
    cls: str | None = None,
    tip: str | None = None,
) -> str:
    attrs = f'x="{x:.1f}" y="{y:.1f}" text-anchor="{anchor}" font-size="{size}" fill="{fill}"'
    if weight:
        attrs += f' font-weight="{weight}"'
    if cls:
        attrs = f'class="{cls}" ' + attrs
    title = f"<title>{escape(tip)}</title>" if tip else ""
    return f"<text {attrs}>{escape(text)}{title}</text>"


def _nice_ticks(upper: float) -> list[int]:
    """Whole-number ticks from 0 up to `upper`, with a 1-2-2.5-5 step giving three to six intervals."""
    raw = upper / 5
    magnitude = 10 ** math.floor(math.log10(raw)) if raw > 0 else 1
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw)
    step = max(1, round(step))
    return [i * step for i in range(math.floor(upper / step) + 1)]


def _compact(value: int) -> str:
    if value < 10_000:
        return str(value)
    if value < 1_000_000:
        return f"{value / 1000:.0f}k" if value >= 100_000 else f"{value / 1000:.1f}k"
    return f"{value / 1_000_000:.1f}M"


def _shorten(text: str, limit: int = MAX_LABEL_CHARS) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "\u2026"


def _text_width(text: str, size: float, *, bold: bool = False) -> int:
    """Rough width of `text` in a sans-serif face; enough to lay out margins without a font file."""
    em = sum(
        0.62 if ch.isupper() or ch in "mwMW@%" else 0.3 if ch in "iljtf.,:;'|!I " else 0.55 for ch in text
    )
    return math.ceil(em * size * (1.06 if bold else 1.0))
