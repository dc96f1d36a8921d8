"""The dashboards' charts as self-contained SVG strings, safe to inline in a page.

Drawn like training/pictures.py (annotate never imports training, so the few drawing helpers are
repeated here): no scripts, no CSS, no external fonts or links, no `id` attributes (several charts
share a page), a fixed width and a height fixed by the number of rows shown, and every piece of
text through `html.escape`, so a label or a username called `<script>` is only ever text. A
figure that is undefined is written "n/a". Each function takes the figures of one chart as
annotate/dashboards/ returns them; long lists are cut at a stated number of rows or days (the
API has them all).

The package: draw.py holds the sizes, the colours and the drawing helpers every chart shares
(the SVG frame, text, bars, the layout of charts with one row per annotator); throughput.py the
progress, labels-per-day and seconds charts; quality.py the agreement, gold, labels, proposals
and reviews charts.
"""

from annotate.charts.quality import agreement_svg, gold_svg, labels_svg, proposals_svg, reviews_svg
from annotate.charts.throughput import labels_per_day_svg, progress_svg, seconds_svg

__all__ = [
    "agreement_svg",
    "gold_svg",
    "labels_per_day_svg",
    "labels_svg",
    "progress_svg",
    "proposals_svg",
    "reviews_svg",
    "seconds_svg",
]
