"""What a simulation shows: labels needed to reach shares of the full-data score, the learning
curves as one SVG picture, and the worst gap to random sampling. Reads the curves only (no ORM).

Intervals are 95% Student-t intervals of the mean over the repeats (none from one repeat).
"Labels needed" is the first evaluated budget at which a repeat's score reaches the share of
*that repeat's* full-data score; a repeat that never does within the budget is counted as not
reached, and then the table says so instead of a mean.
"""

import math
from dataclasses import dataclass
from html import escape

import numpy as np

from annotate.svg import ACCENT, FONT, GRID, INK, MUTED
from training.simulation.replay import Curve

FRACTIONS = (0.90, 0.95, 0.99)
# Colour-blind-safe (Okabe–Ito), the studio's accent first.
SERIES = (ACCENT, "#d55e00", "#009e73", "#cc79a7", "#e69f00", "#56b4e9", "#000000")


def mean_interval(values) -> tuple[float, float | None, float | None]:
    """Mean and 95% t interval of `values` (no interval for fewer than two)."""
    from scipy.stats import t

    a = np.asarray(values, dtype=float)
    mean = float(a.mean())
    if len(a) < 2:
        return mean, None, None
    half = float(t.ppf(0.975, len(a) - 1) * a.std(ddof=1) / math.sqrt(len(a)))
    return mean, mean - half, mean + half


def labels_to_reach(curve: Curve, fraction: float) -> int | None:
    """The first budget at which the curve's score reaches `fraction` of its full-data score."""
    target = fraction * curve.full_score
    return next((p.n_labels for p in curve.points if p.score is not None and p.score >= target), None)


@dataclass(frozen=True)
class Reach:
    strategy: str
    fraction: float
    needed: list[int | None]  # per repeat

    @property
    def missed(self) -> int:
        return sum(n is None for n in self.needed)

    def summary(self) -> tuple[float, float | None, float | None] | None:
        return None if self.missed else mean_interval(self.needed)


def reach_table(curves: list[Curve], strategies: list[str]) -> list[Reach]:
    return [
        Reach(strategy=s, fraction=f, needed=[labels_to_reach(c, f) for c in curves if c.strategy == s])
        for s in strategies
        for f in FRACTIONS
    ]


def mean_curve(curves: list[Curve]) -> list[tuple[int, float, float | None, float | None]]:
    """(labels, mean, low, high) at each budget where every repeat has a model."""
    by_n: dict[int, list[float]] = {}
    for curve in curves:
        for p in curve.points:
            by_n.setdefault(p.n_labels, []).append(p.score)
    return [
        (n, *mean_interval(scores))
        for n, scores in sorted(by_n.items())
        if len(scores) == len(curves) and all(s is not None for s in scores)
    ]


def worst_gap(curves: list[Curve], strategy: str, baseline: str = "random") -> tuple[float, int] | None:
    """The lowest (strategy's mean − baseline's mean) over the budgets both have, and where."""
    mine = {n: m for n, m, _, _ in mean_curve([c for c in curves if c.strategy == strategy])}
    theirs = {n: m for n, m, _, _ in mean_curve([c for c in curves if c.strategy == baseline])}
    common = sorted(set(mine) & set(theirs))
    if not common:
        return None
    n = min(common, key=lambda k: mine[k] - theirs[k])
    return mine[n] - theirs[n], n


def _reach_cell(reach: Reach, budget: int) -> str:
    summary = reach.summary()
    if summary is None:
        return f"not reached in {reach.missed}/{len(reach.needed)} (budget {budget:,})"
    mean, low, high = summary
    return f"{mean:,.0f}" + (f" ({low:,.0f}–{high:,.0f})" if low is not None else "")


def table_text(*, title: str, curves: list[Curve], strategies: list[str], budget: int, measure: str) -> str:
    """The table: full-data score, then labels to reach 90/95/99% of it per strategy."""
    full, full_low, full_high = mean_interval([c.full_score for c in curves if c.strategy == strategies[0]])
    repeats = len({c.repeat for c in curves})
    lines = [title, f"full-data {measure}: {full:.3f}"
             + (f" (95% interval {full_low:.3f}–{full_high:.3f})" if full_low is not None else "")
             + f", mean of {repeats} repeat{'s' if repeats != 1 else ''}"]  # fmt: skip
    rows = reach_table(curves, strategies)
    header = ["strategy", *[f"{f:.0%} of full ({f * full:.3f})" for f in FRACTIONS]]
    cells = [[s, *[_reach_cell(r, budget) for r in rows if r.strategy == s]] for s in strategies]
    if "random" in strategies:
        header.append("95%: share of random's labels")
        base = next(r for r in rows if r.strategy == "random" and r.fraction == 0.95).summary()
        for line in cells:
            mine = next(r for r in rows if r.strategy == line[0] and r.fraction == 0.95).summary()
            line.append(f"{mine[0] / base[0]:.0%}" if mine and base else "—")
        header.append(f"worst gap to random ({measure})")
        for line in cells:
            gap = worst_gap(curves, line[0]) if line[0] != "random" else None
            line.append(f"{gap[0] * 100:+.1f} points at {gap[1]:,}" if gap else "—")
    widths = [max(len(str(row[i])) for row in [header, *cells]) for i in range(len(header))]
    for row in [header, *cells]:
        lines.append("  ".join(str(v).ljust(w) for v, w in zip(row, widths, strict=True)).rstrip())
    lines.append(
        "Labels: mean over the repeats (95% t interval); the first evaluated budget reaching the share."
    )
    return "\n".join(lines) + "\n"


def learning_curves_svg(*, title: str, curves: list[Curve], strategies: list[str], measure: str) -> str:
    """Held-out score against labels, one line per strategy (mean over repeats, 95% band), and
    the full-data score as a dashed line. Self-contained, as training/pictures.py draws."""
    width, height = 720, 440
    left, right, top, bottom = 64, 170, 64, 58
    plot_w, plot_h = width - left - right, height - top - bottom
    series = {s: mean_curve([c for c in curves if c.strategy == s]) for s in strategies}
    x_max = max([n for points in series.values() for n, *_ in points] or [1]) * 1.05
    full = float(np.mean([c.full_score for c in curves]))

    def sx(n: float) -> float:
        return left + plot_w * n / x_max

    def sy(v: float) -> float:
        return top + plot_h * (1 - min(max(v, 0.0), 1.0))

    def text(x, y, s, *, size=11, anchor="middle", fill=MUTED, weight=None) -> str:
        bold = f' font-weight="{weight}"' if weight else ""
        place = f'x="{x:.1f}" y="{y:.1f}" text-anchor="{anchor}"'
        return f'<text {place} font-size="{size}" fill="{fill}"{bold}>{escape(s)}</text>'

    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}"'
        f' width="{width}" height="{height}"'
        f' role="img" aria-label="{escape(title)}: held-out {escape(measure)} against labels"'
        f' font-family="{FONT}" fill="{INK}">',
        f'<rect x="0" y="0" width="{width}" height="{height}" fill="#ffffff"/>',
        text(16, 30, title, size=15, anchor="start", fill=INK, weight="600"),
    ]
    for t in range(11):
        out.append(f'<line x1="{left}" y1="{sy(t / 10):.1f}" x2="{left + plot_w}" y2="{sy(t / 10):.1f}"'
                   f' stroke="{GRID if t else MUTED}"/>')  # fmt: skip
    for t in range(0, 11, 2):
        out.append(text(left - 8, sy(t / 10) + 4, f"{t / 10:.1f}", anchor="end"))
    step = max(1, 10 ** math.floor(math.log10(max(x_max / 5, 1))))
    step = next(m * step for m in (1, 2, 2.5, 5, 10) if m * step >= x_max / 6)
    for i in range(int(x_max // step) + 1):
        out.append(text(sx(i * step), top + plot_h + 18, f"{int(i * step):,}"))
    out.append(text(left + plot_w / 2, height - 14, "Labels used", size=13, fill=INK, weight="600"))
    out.append(
        f'<text x="0" y="0" transform="translate(18,{top + plot_h / 2}) rotate(-90)" text-anchor="middle"'
        f' font-size="13" font-weight="600" fill="{INK}">Held-out {escape(measure)}</text>'
    )
    out.append(
        f'<line class="full-data" x1="{left}" y1="{sy(full):.1f}" x2="{left + plot_w}" y2="{sy(full):.1f}"'
        f' stroke="{INK}" stroke-dasharray="5 4"/>'
    )
    out.append(text(left + plot_w + 6, sy(full) + 4, f"all labels {full:.3f}", anchor="start", fill=INK))
    for k, strategy in enumerate(strategies):
        colour, points = SERIES[k % len(SERIES)], series[strategy]
        banded = [p for p in points if p[2] is not None]
        if len(banded) > 1:
            edge = [f"{sx(n):.1f},{sy(hi):.1f}" for n, _, _, hi in banded]
            edge += [f"{sx(n):.1f},{sy(lo):.1f}" for n, _, lo, _ in reversed(banded)]
            out.append(
                f'<polygon class="band" points="{" ".join(edge)}" fill="{colour}" fill-opacity="0.12"/>'
            )
        if points:
            line = " ".join(f"{sx(n):.1f},{sy(m):.1f}" for n, m, _, _ in points)
            out.append(
                f'<polyline class="curve" data-strategy="{escape(strategy)}" points="{line}" fill="none"'
                f' stroke="{colour}" stroke-width="2.25" stroke-linejoin="round"/>'
            )
        y = top + 24 + 20 * k
        out.append(f'<line x1="{left + plot_w + 8}" y1="{y - 4}" x2="{left + plot_w + 28}" y2="{y - 4}"'
                   f' stroke="{colour}" stroke-width="3"/>')  # fmt: skip
        out.append(text(left + plot_w + 34, y, strategy, anchor="start", fill=INK))
    out.append("</svg>")
    return "\n".join(out)
