// The stated tokenizer of text spans and the text's grapheme boundaries: the browser's twin of
// annotate/tokens.py (its docstring states the rule; a browser test runs both on the same texts).
//
// Offsets here are UTF-16 positions of the JavaScript string; spans are stored in Unicode code
// points, and `codePoints(text)` converts between the two. A token is one Han, Hiragana or
// Katakana character with its marks, a run of letters, digits and connector punctuation each with
// its marks, or any other grapheme that is not white space. Graphemes are Intl.Segmenter's
// (extended grapheme clusters, as Python regex's \X).

const CJK = String.raw`\p{Script=Han}\p{Script=Hiragana}\p{Script=Katakana}`;
// The first two alternatives of tokens.py's TOKEN, tried at one position (sticky).
const WORD = new RegExp(String.raw`[${CJK}]\p{M}*|(?:[[\p{L}\p{N}\p{Pc}]--[${CJK}]]\p{M}*)+`, "vy");
// regex's \s is Unicode's White_Space property (U+0085 yes, U+FEFF and U+180E no).
const SPACE = /\p{White_Space}/v;
const ASCII_GRAPH = /[!-~]/;
const segmenter = new Intl.Segmenter(undefined, { granularity: "grapheme" });

const codePointLength = (text, at) => {
  const unit = text.charCodeAt(at);
  return unit >= 0xd800 && unit <= 0xdbff && at + 1 < text.length ? 2 : 1;
};

// The grapheme starting at `at`, as regex's \X matches from there (no look behind).
function graphemeEnd(text, at) {
  const next = text.charCodeAt(at + 1);
  // An ASCII character followed by ASCII (or the end) is a grapheme on its own, except CR LF.
  if (ASCII_GRAPH.test(text[at]) && (Number.isNaN(next) || (next < 0x7f && next !== 0x0a))) return at + 1;
  for (let window = 64; ; window *= 4) {
    const piece = text.slice(at, at + window);
    const first = segmenter.segment(piece)[Symbol.iterator]().next().value;
    // A cluster as long as the window may go on past it (a long run of combining marks).
    if (first.segment.length < piece.length || at + window >= text.length) return at + first.segment.length;
  }
}

// [start, end) UTF-16 offsets of the tokens of `text`, in order (tokens.py's tokens()).
export function tokens(text) {
  const found = [];
  let at = 0;
  while (at < text.length) {
    WORD.lastIndex = at;
    const match = WORD.exec(text);
    if (match) {
      found.push([at, at + match[0].length]);
      at += match[0].length;
    } else if (SPACE.test(text[at])) {
      at += 1;
    } else {
      const end = graphemeEnd(text, at);
      found.push([at, end]);
      at = end;
    }
  }
  return found;
}

// Every UTF-16 offset where a span may start or end, ascending (0 and text.length included).
export function graphemeBoundaries(text) {
  const bounds = [0];
  for (const { index, segment } of segmenter.segment(text)) bounds.push(index + segment.length);
  if (bounds[bounds.length - 1] !== text.length) bounds.push(text.length);
  return Int32Array.from(bounds);
}

// The first index of sorted `values` whose value is > x (bisect_right) or >= x (bisect_left).
export function bisectRight(values, x) {
  let lo = 0;
  let hi = values.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (values[mid] <= x) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

export function bisectLeft(values, x) {
  let lo = 0;
  let hi = values.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (values[mid] < x) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

// Token starts and ends as two sorted arrays, for snap() and the editor's caret.
export function tokenIndex(text) {
  const list = tokens(text);
  const starts = new Int32Array(list.length);
  const ends = new Int32Array(list.length);
  list.forEach(([s, e], i) => {
    starts[i] = s;
    ends[i] = e;
  });
  return { starts, ends, length: list.length };
}

// Widen [start, end) to whole tokens (tokens.py's snap()): [first, last] token indices and the
// widened range, or null if it holds none.
export function snap(index, start, end) {
  const first = bisectRight(index.ends, start); // the first token ending after `start`
  const last = bisectLeft(index.starts, end) - 1; // the last token starting before `end`
  if (first > last) return null;
  return { first, last, start: index.starts[first], end: index.ends[last] };
}

// Widen [start, end) to the nearest grapheme boundaries around it.
export function widenToGraphemes(bounds, start, end) {
  const s = bounds[bisectRight(bounds, start) - 1];
  const e = bounds[bisectLeft(bounds, end)];
  return [s, e];
}

// Code points <-> UTF-16 offsets of one text; the identity when it has no surrogate pairs.
export function codePoints(text) {
  if (!/[\uD800-\uDFFF]/.test(text)) {
    const same = (offset) => offset;
    return { toUnits: same, fromUnits: same, length: text.length };
  }
  const unitsAt = [0]; // unitsAt[codePoint] = UTF-16 offset
  for (let at = 0; at < text.length; ) {
    at += codePointLength(text, at);
    unitsAt.push(at);
  }
  const units = Int32Array.from(unitsAt);
  return {
    toUnits: (cp) => units[cp],
    // A UTF-16 offset inside a pair counts as the pair's start (callers pass grapheme boundaries).
    fromUnits: (u) => bisectRight(units, u) - 1,
    length: units.length - 1,
  };
}
