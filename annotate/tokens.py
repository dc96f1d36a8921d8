"""The stated tokenizer of text spans, and the text's grapheme boundaries.

One rule, written here and in static/annotate/js/tokens.js (a browser test runs both on the same
texts and compares): offsets are Unicode code points of the stored text (Python `str` indices).

- A **grapheme** is an extended grapheme cluster (Unicode UAX #29, regex's `\\X`): 👍🏽 (two code
  points), e + U+0301, a flag, CRLF. No span starts or ends inside one.
- A **token** is
  - one Han, Hiragana or Katakana character with its marks (CJK is written without spaces: each
    character is a token, as spaCy's character segmentation for Chinese does), or
  - a run of letters, digits and connector punctuation (`\\p{L}\\p{N}\\p{Pc}`), each with its marks
    (`\\p{M}`): "José", "café" written with a combining accent, "R2-D2" is three tokens, or
  - any other grapheme that is not white space: a punctuation mark, an emoji with its modifiers.
- White space separates tokens and belongs to none.

The span editor snaps a selection to these tokens (a project can turn that off for character
precision), the span model (training/backends/spans.py) tags them, and CoNLL writes one per line.
"""

from bisect import bisect_left, bisect_right

import regex

_CJK = r"\p{Script=Han}\p{Script=Hiragana}\p{Script=Katakana}"
TOKEN = regex.compile(
    rf"[{_CJK}]\p{{M}}*"
    rf"|(?:[\p{{L}}\p{{N}}\p{{Pc}}--[{_CJK}]]\p{{M}}*)+"
    r"|(?=\S)\X",
    regex.VERSION1,
)
_GRAPHEME = regex.compile(r"\X")


def tokens(text: str) -> list[tuple[int, int]]:
    """(start, end) code-point offsets of the tokens of `text`, in order."""
    return [match.span() for match in TOKEN.finditer(text)]


def grapheme_boundaries(text: str) -> set[int]:
    """Every offset of `text` where a span may start or end (0 and len(text) included)."""
    bounds = {0, len(text)}
    bounds.update(match.end() for match in _GRAPHEME.finditer(text))
    return bounds


def snap(spans: list[tuple[int, int]], start: int, end: int) -> tuple[int, int] | None:
    """Widen [start, end) to whole tokens of `spans` (the text's tokens); None if it holds none."""
    starts = [s for s, _ in spans]
    ends = [e for _, e in spans]
    first = bisect_right(ends, start)  # the first token ending after `start`
    last = bisect_left(starts, end) - 1  # the last token starting before `end`
    if first > last:
        return None
    return starts[first], ends[last]
