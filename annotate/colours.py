"""Label colours: WCAG 2 contrast and the default palette labels get. Pure Python (no Django).

A label's colour outlines its boxes and fills the tag that names it; the tag's text is black or
white, whichever contrasts more with the colour (static/annotate/js/editors/boxes.js mirrors
`text_colour_for`). Luminance and contrast follow WCAG 2.2's definitions (sRGB linearised with
the 0.04045 threshold of IEC 61966-2-1; the ratio (L1 + 0.05) / (L2 + 0.05)).

Every colour reaches at least 4.58:1 with the better of black and white (the worst case is a
luminance of √(1.05 · 0.05) − 0.05 ≈ 0.179, where both give 4.58), so the 4.5:1 of WCAG's AA
level holds for any label colour a lead picks, not only for the palette's.
"""

import re

_HEX = re.compile(r"^#?([0-9a-fA-F]{6}|[0-9a-fA-F]{3})$")

BLACK = "#000000"
WHITE = "#ffffff"
# Vega's "tableau10", light and dark hues alternating so neighbours differ in lightness too.
PALETTE = (
    "#4c78a8",
    "#f58518",
    "#e45756",
    "#72b7b2",
    "#54a24b",
    "#eeca3b",
    "#b279a2",
    "#ff9da6",
    "#9d755d",
    "#bab0ac",
)


def rgb(colour: str) -> tuple[int, int, int]:
    """The (r, g, b) of "#rrggbb" or "#rgb"; ValueError names anything else."""
    match = _HEX.match(colour.strip()) if isinstance(colour, str) else None
    if not match:
        raise ValueError(f"not a colour (#rrggbb): {colour!r}")
    digits = match.group(1)
    if len(digits) == 3:
        digits = "".join(d * 2 for d in digits)
    return int(digits[0:2], 16), int(digits[2:4], 16), int(digits[4:6], 16)


def relative_luminance(colour: str) -> float:
    """WCAG relative luminance: 0 for black, 1 for white."""

    def linear(channel: int) -> float:
        c = channel / 255
        return c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4

    r, g, b = (linear(c) for c in rgb(colour))
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def contrast_ratio(a: str, b: str) -> float:
    """WCAG contrast ratio of two colours, 1 to 21, in either order."""
    la, lb = relative_luminance(a), relative_luminance(b)
    lighter, darker = max(la, lb), min(la, lb)
    return (lighter + 0.05) / (darker + 0.05)


def text_colour_for(background: str) -> str:
    """Black or white, whichever has the higher contrast on `background` (black on a tie)."""
    return BLACK if contrast_ratio(BLACK, background) >= contrast_ratio(WHITE, background) else WHITE


def label_colour(index: int) -> str:
    """The default colour of a project's label at position `index` (0-based), cycling the palette."""
    return PALETTE[index % len(PALETTE)]
