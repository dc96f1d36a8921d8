"""What the studio's SVG pictures share: the palette and two small helpers. Pure Python (no
Django), for the dashboards' charts (annotate/charts/) and the model pictures
(training/pictures.py) alike."""

FONT = "system-ui, -apple-system, 'Segoe UI', Roboto, 'Helvetica Neue', Arial, sans-serif"
INK = "#1f2937"
MUTED = "#6b7280"
GRID = "#e5e7eb"
ACCENT = "#2563eb"

# ColorBrewer "Blues", light to dark: a sequential scale that also reads in greyscale.
BLUES = ["#f7fbff", "#deebf7", "#c6dbef", "#9ecae1", "#6baed6", "#4292c6", "#2171b5", "#08519c", "#08306b"]


def clamp(value, low, high):
    return max(low, min(high, value))


def blue(share: float) -> str:
    """The colour of `share` (0 to 1) on the Blues scale, interpolated between its steps."""
    share = clamp(share, 0.0, 1.0)
    pos = share * (len(BLUES) - 1)
    i = min(int(pos), len(BLUES) - 2)
    t = pos - i
    a, b = BLUES[i], BLUES[i + 1]
    rgb = [round(int(a[c : c + 2], 16) * (1 - t) + int(b[c : c + 2], 16) * t) for c in (1, 3, 5)]
    return "#{:02x}{:02x}{:02x}".format(*rgb)
