"""What every dashboard chart is drawn with: the sizes and colours, the SVG frame and its
heading, text (always escaped), bars, axis ticks, and the layout of the charts that have one row
per annotator, label or version."""

import math
from html import escape

from annotate.svg import FONT, GRID, INK, MUTED

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
