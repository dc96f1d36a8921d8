// The text-span editor (text_spans): the item's text with its spans drawn as coloured marks, each
// with its label; select with the mouse (drag, double-click) or the keyboard (← → move by token,
// Shift+← → extend), then a label's key marks the selection. Click a span (or Tab / Shift+Tab) to
// select it: its label's key changes its label, Delete removes it. See label.js for the interface.
//
// Offsets: the value holds Unicode code points of the stored text; inside, everything is UTF-16
// (the browser's), converted once in show() and value(). Selections snap to tokens (tokens.js)
// unless the project asks for character precision, and never end inside a grapheme.
//
// Speed: tokens are computed once per item; the text is one block per line, an edit redraws only
// the lines it touches, and the selection is a CSS highlight (moving it redraws nothing).

import { bisectRight, codePoints, graphemeBoundaries, snap, tokenIndex, widenToGraphemes } from "../tokens.js";

const EXCERPT = 48;
const highlights = globalThis.CSS && CSS.highlights;

function prepare(item) {
  const text = item.text || "";
  const blockStarts = [0];
  for (let at = text.indexOf("\n"); at !== -1 && at + 1 < text.length; at = text.indexOf("\n", at + 1)) {
    blockStarts.push(at + 1);
  }
  return { id: item.id, text, index: tokenIndex(text), bounds: graphemeBoundaries(text), cp: codePoints(text),
    blockStarts: Int32Array.from(blockStarts), blocks: [] };
}

// Black or white, whichever contrasts more with `background` (annotate/colours.py's text_colour_for).
function textColourFor(background) {
  const digits = /^#?([0-9a-f]{6})$/i.exec(background || "");
  const linear = (i) => {
    const c = parseInt(digits[1].slice(i, i + 2), 16) / 255;
    return c <= 0.04045 ? c / 12.92 : ((c + 0.055) / 1.055) ** 2.4;
  };
  const l = digits ? 0.2126 * linear(0) + 0.7152 * linear(2) + 0.0722 * linear(4) : 0;
  return (l + 0.05) / 0.05 >= 1.05 / (l + 0.05) ? "#000000" : "#ffffff";
}

function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

const spanKey = (span) => `${span.start}:${span.end}:${span.label}`;
const excerpt = (text) => (text.length > EXCERPT ? `${text.slice(0, EXCERPT - 1)}…` : text).replace(/\s+/g, " ");

export function createSpansEditor({ root, config, notify }) {
  const textEl = root.querySelector("[data-item-text]");
  const metaEl = root.querySelector("[data-item-meta]");
  const imageEl = root.querySelector("[data-item-image]");
  const sideEl = root.querySelector("[data-editor-side]");
  const labelButtons = [...root.querySelectorAll("[data-label]")];
  const colours = new Map(config.labels.map((l) => [l.name, l.colour]));
  const paint = (el, label) => {
    const colour = colours.get(label) || "#6b7280";
    el.style.setProperty("--c", colour);
    el.style.setProperty("--on", textColourFor(colour));
  };
  const order = new Map(config.labels.map((l, i) => [l.name, i]));
  const snapOn = config.spans_snap_to_tokens !== false;
  const mayOverlap = Boolean(config.spans_may_overlap);
  textEl.classList.add("span-text");
  imageEl.hidden = true;

  let doc = null; // the shown item, prepared
  let warm = null; // the next item, prepared by preload()
  let spans = []; // [{start, end, label, level}] in UTF-16, sorted by start, longer first
  let selection = null; // {start, end, anchor, focus}: the range and its token indices
  let selected = null; // the selected span (one of `spans`)
  let gap = 0; // the keyboard caret: between token gap-1 and token gap
  let [history, redone] = [[], []]; // the edits to undo, and the undone ones to redo
  const dirty = new Set();

  // Drawing ---------------------------------------------------------------------------------

  const blockOf = (offset) => Math.max(0, bisectRight(doc.blockStarts, offset) - 1);
  const blockEnd = (b) => (b + 1 < doc.blockStarts.length ? doc.blockStarts[b + 1] : doc.text.length);

  function touch(start, end) {
    if (!doc || !doc.text.length) return;
    const last = blockOf(Math.max(start, end - 1));
    for (let b = blockOf(start); b <= last; b += 1) dirty.add(b);
  }

  // Nesting levels: a span sits one level below every earlier span it overlaps (0 without overlaps).
  function relevel() {
    const reach = []; // reach[level] = end of the last span placed on that level
    for (const span of spans) {
      let level = reach.findIndex((end) => end <= span.start);
      if (level === -1) level = reach.length;
      reach[level] = span.end;
      if (span.level !== level) {
        if (span.level !== undefined) touch(span.start, span.end);
        span.level = level;
      }
    }
  }

  // One bar beneath the text per covering span, deeper levels lower (box-shadows, first on top).
  const bars = (over) => over.map((s) => `0 ${(s.level + 1) * 3}px 0 0 ${colours.get(s.label) || "#6b7280"}`).join(", ");

  function drawBlock(b) {
    const start = doc.blockStarts[b];
    const end = blockEnd(b);
    const inside = spans.filter((s) => s.start < end && s.end > start);
    const cuts = new Set([start, end]);
    for (const s of inside) cuts.add(Math.max(s.start, start)).add(Math.min(s.end, end));
    const points = [...cuts].sort((x, y) => x - y);
    const fragment = document.createDocumentFragment();
    for (let i = 0; i + 1 < points.length; i += 1) {
      const [p, q] = [points[i], points[i + 1]];
      const over = inside.filter((s) => s.start <= p && s.end >= q).sort((x, y) => x.level - y.level);
      const piece = el(over.length ? "mark" : "span", "", doc.text.slice(p, q));
      piece.dataset.u = p;
      if (over.length) {
        const inner = over[over.length - 1];
        piece.dataset.key = spanKey(inner);
        piece.dataset.labels = over.map((s) => s.label).join(" ");
        piece.style.setProperty("--c", colours.get(inner.label) || "#6b7280");
        piece.style.boxShadow = bars(over);
        if (selected && over.includes(selected)) piece.classList.add("is-selected");
      }
      fragment.append(piece);
      for (const s of over) {
        if (s.end !== q) continue;
        const tag = el("span", "span-tag");
        tag.dataset.name = s.label; // drawn by CSS from the attribute: no text in the text
        tag.setAttribute("aria-hidden", "true");
        paint(tag, s.label);
        // Inside a longer span, the tag keeps that span's tint and bars, so it reads as one.
        const going = over.filter((t) => t.end > q);
        if (going.length) {
          tag.classList.add("in-span");
          tag.style.setProperty("--under", colours.get(going[going.length - 1].label) || "#6b7280");
          tag.style.boxShadow = bars(going);
        }
        fragment.append(tag);
      }
    }
    doc.blocks[b].replaceChildren(fragment);
  }

  function flush() {
    for (const b of dirty) drawBlock(b);
    dirty.clear();
    textEl.dataset.spanCount = String(spans.length);
    for (const button of labelButtons) {
      button.setAttribute("aria-pressed", selected && selected.label === button.dataset.label ? "true" : "false");
    }
    const range = paintSelection();
    if (range) {
      textEl.dataset.selection = `${doc.cp.fromUnits(selection.start)}:${doc.cp.fromUnits(selection.end)}`;
      reveal(range.getBoundingClientRect());
    } else {
      delete textEl.dataset.selection;
    }
    const focus = selected && textEl.querySelector("mark.is-selected");
    if (focus) {
      focus.tabIndex = -1;
      focus.focus({ preventScroll: true });
      reveal(focus.getBoundingClientRect());
    }
  }

  // The DOM boundary point of UTF-16 `offset`, for the selection's highlight (an end: in the block before).
  function pointAt(offset, isEnd) {
    let last = null;
    for (const piece of doc.blocks[blockOf(isEnd ? offset - 1 : offset)].children) {
      if (piece.dataset.u === undefined) continue;
      const u = Number(piece.dataset.u);
      const node = piece.firstChild;
      if (isEnd ? offset <= u + node.length : offset < u + node.length) return [node, Math.max(0, offset - u)];
      last = [node, node.length];
    }
    return last;
  }

  function paintSelection() {
    if (!selection && highlights) highlights.delete("span-selection");
    if (!selection || !highlights) return null;
    const range = document.createRange();
    range.setStart(...pointAt(selection.start, false));
    range.setEnd(...pointAt(selection.end, true));
    highlights.set("span-selection", new Highlight(range));
    return range;
  }

  function reveal(rect) {
    const box = textEl.getBoundingClientRect();
    if (rect.top < box.top) textEl.scrollTop -= box.top - rect.top + 16;
    else if (rect.bottom > box.bottom) textEl.scrollTop += rect.bottom - box.bottom + 16;
  }

  const redraw = () => flush() || drawList();

  function drawAll() {
    const fragment = document.createDocumentFragment();
    doc.blocks = [];
    for (let b = 0; b < doc.blockStarts.length && doc.text.length; b += 1) {
      doc.blocks.push(fragment.appendChild(el("div", "span-line")));
      dirty.add(b);
    }
    textEl.replaceChildren(fragment);
    flush();
  }

  function drawList() {
    const list = el("ol", "span-list");
    for (const span of spans) {
      const button = list.appendChild(el("li")).appendChild(el("button"));
      button.type = "button";
      button.dataset.spanKey = spanKey(span);
      if (span === selected) button.setAttribute("aria-current", "true");
      const chip = el("span", "span-chip", span.label);
      paint(chip, span.label);
      button.append(chip, " ", excerpt(doc.text.slice(span.start, span.end)));
    }
    const empty = "No spans yet: select text, then press a label's key.";
    sideEl.replaceChildren(el("p", "span-list-head", spans.length ? `Spans (${spans.length})` : empty), list);
  }

  // State changes ---------------------------------------------------------------------------

  function setSelection(next) {
    if (selected) touch(selected.start, selected.end);
    selection = next;
    selected = null;
  }

  function selectSpan(span) {
    setSelection(null);
    selected = span;
    if (span) touch(span.start, span.end);
    redraw();
  }

  // Replace the spans with `next`, redrawing only what changed; `undoable` records the edit.
  function replaceSpans(next, { undoable = true } = {}) {
    const before = new Set(spans);
    const after = new Set(next);
    for (const s of spans) if (!after.has(s)) touch(s.start, s.end);
    for (const s of next) if (!before.has(s)) touch(s.start, s.end);
    if (undoable) {
      history.push(spans);
      redone = [];
    }
    spans = next;
    relevel();
  }

  const sortSpans = (list) =>
    list.sort((a, b) => a.start - b.start || b.end - a.end || order.get(a.label) - order.get(b.label));

  function tokensOf(start, end) {
    const hit = snap(doc.index, start, end);
    return hit ? [hit.first, hit.last] : null;
  }

  // A [start, end) range from the mouse or from tokens, as the project wants it; null if empty.
  function rangeFrom(start, end) {
    if (snapOn) {
      const hit = snap(doc.index, start, end);
      if (!hit) return null;
      [start, end] = widenToGraphemes(doc.bounds, hit.start, hit.end);
      return { start, end, anchor: hit.first, focus: hit.last };
    }
    const chosen = doc.text.slice(start, end);
    const lead = chosen.length - chosen.trimStart().length;
    const trail = chosen.length - chosen.trimEnd().length;
    [start, end] = widenToGraphemes(doc.bounds, start + lead, end - trail);
    if (start >= end) return null;
    const toks = tokensOf(start, end) || [0, 0];
    return { start, end, anchor: toks[0], focus: toks[1] };
  }

  function selectTokens(anchor, focus) {
    const n = doc.index.length;
    anchor = Math.min(Math.max(anchor, 0), n - 1);
    focus = Math.min(Math.max(focus, 0), n - 1);
    const [lo, hi] = anchor <= focus ? [anchor, focus] : [focus, anchor];
    const [start, end] = widenToGraphemes(doc.bounds, doc.index.starts[lo], doc.index.ends[hi]);
    setSelection({ start, end, anchor, focus });
    flush();
  }

  function move(delta, extend) {
    if (!doc || !doc.index.length) return;
    if (selected) {
      const toks = tokensOf(selected.start, selected.end) || [gap, gap];
      gap = delta > 0 ? toks[1] + 1 : toks[0];
      if (extend) return selectTokens(delta > 0 ? toks[0] : toks[1], delta > 0 ? toks[1] + 1 : toks[0] - 1);
    }
    if (!selection) return selectTokens(delta > 0 ? gap : gap - 1, delta > 0 ? gap : gap - 1);
    if (extend) return selectTokens(selection.anchor, selection.focus + delta);
    const [lo, hi] = [Math.min(selection.anchor, selection.focus), Math.max(selection.anchor, selection.focus)];
    const to = delta > 0 ? hi + 1 : lo - 1;
    return selectTokens(to, to);
  }

  const overlapping = (span) => spans.find((s) => s.start < span.end && s.end > span.start) || null;

  // Whether `label` already marks [start, end) (then says so).
  function markedAlready(start, end, label) {
    const twice = spans.some((s) => s.start === start && s.end === end && s.label === label);
    if (twice) notify(`That text is already marked ${label}.`, "error");
    return twice;
  }

  function mark(name) {
    const span = { start: selection.start, end: selection.end, label: name };
    if (markedAlready(span.start, span.end, name)) return;
    const clash = overlapping(span);
    if (clash && !mayOverlap) {
      const words = excerpt(doc.text.slice(clash.start, clash.end));
      notify(`Not marked: it overlaps the ${clash.label} span “${words}”, and this project does not allow overlapping spans.`, "error");
      return;
    }
    gap = Math.max(selection.anchor, selection.focus) + 1;
    setSelection(null);
    replaceSpans(sortSpans([...spans, span]));
    redraw();
    notify(`Marked ${name}: “${excerpt(doc.text.slice(span.start, span.end))}”.`);
  }

  function relabel(name) {
    if (selected.label === name) return;
    if (markedAlready(selected.start, selected.end, name)) return;
    const changed = { start: selected.start, end: selected.end, label: name };
    replaceSpans(sortSpans(spans.map((s) => (s === selected ? changed : s))));
    selected = changed;
    redraw();
    notify(`Changed to ${name}.`);
  }

  function remove() {
    if (!selected) return false;
    const gone = selected;
    selected = null;
    gap = (tokensOf(gone.start, gone.end) || [gap])[0];
    replaceSpans(spans.filter((s) => s !== gone));
    redraw();
    notify(`Deleted the ${gone.label} span.`);
    return true;
  }

  // A new item (or none): nothing selected, no history.
  function reset() {
    relevel();
    [selection, selected, gap, history, redone] = [null, null, 0, [], []];
    dirty.clear();
    if (highlights) highlights.delete("span-selection");
  }

  function clearAll() {
    if (!selection && !selected) return false;
    if (selection) gap = Math.max(selection.anchor, selection.focus) + 1;
    selectSpan(null);
    return true;
  }

  function cycle(step) {
    if (!doc || !spans.length) return false;
    let at = selected ? spans.indexOf(selected) + step : step > 0 ? 0 : spans.length - 1;
    if (!selected && selection) {
      // From a selection or the caret: the next span after it, the previous before it.
      const from = selection.start;
      at = step > 0 ? spans.findIndex((s) => s.start >= from) : spans.findLastIndex((s) => s.start < from);
      if (at === -1) at = step > 0 ? 0 : spans.length - 1;
    }
    selectSpan(spans[(at + spans.length) % spans.length]);
    return true;
  }

  function restore(from, to) {
    if (!from.length) return false;
    to.push(spans);
    setSelection(null);
    replaceSpans(from.pop(), { undoable: false });
    redraw();
    return true;
  }

  // The mouse -------------------------------------------------------------------------------

  // The UTF-16 offset of a DOM boundary point inside the text: the length of the text before it
  // (the label tags hold no text, only CSS content).
  function offsetAt(node, offset) {
    const before = document.createRange();
    before.setStart(textEl, 0);
    before.setEnd(node, offset);
    return before.toString().length;
  }

  let pressed = false;
  textEl.addEventListener("mousedown", () => (pressed = true));
  document.addEventListener("mouseup", (event) => {
    if (!pressed || !doc) return;
    pressed = false;
    const chosen = window.getSelection();
    if (!chosen.rangeCount || chosen.isCollapsed) {
      const piece = event.target.closest && event.target.closest("[data-item-text] mark[data-key]");
      const span = piece && spans.find((s) => spanKey(s) === piece.dataset.key);
      if (span) return selectSpan(span);
      if (textEl.contains(event.target) && chosen.rangeCount) {
        gap = bisectRight(doc.index.ends, offsetAt(chosen.anchorNode, chosen.anchorOffset));
      }
      if (selection || selected) {
        setSelection(null);
        redraw();
      }
      return;
    }
    const range = chosen.getRangeAt(0);
    if (!range.intersectsNode(textEl)) return;
    const start = textEl.contains(range.startContainer) ? offsetAt(range.startContainer, range.startOffset) : 0;
    const end = textEl.contains(range.endContainer) ? offsetAt(range.endContainer, range.endOffset) : doc.text.length;
    chosen.removeAllRanges(); // the editor draws its own selection
    const hadSpan = selected !== null;
    setSelection(rangeFrom(start, end));
    flush();
    if (hadSpan) drawList();
  });
  sideEl.addEventListener("click", (event) => {
    const button = event.target.closest("[data-span-key]");
    const span = button && spans.find((s) => spanKey(s) === button.dataset.spanKey);
    if (span) selectSpan(span);
  });

  const keymap = new Map([
    ["ArrowRight", () => move(1, false)], ["ArrowLeft", () => move(-1, false)],
    ["Shift+ArrowRight", () => move(1, true)], ["Shift+ArrowLeft", () => move(-1, true)],
    ["Tab", () => cycle(1)], ["Shift+Tab", () => cycle(-1)],
    ["Delete", () => remove()], ["Backspace", () => remove()],
    ["Ctrl+y", () => (doc && restore(redone, history)) || notify("Nothing to redo in this item.")],
    ["Escape", () => clearAll()],
  ]);

  return {
    show(item) {
      doc = warm && warm.id === item.id ? warm : prepare(item);
      warm = null;
      metaEl.textContent = item.external_id;
      imageEl.hidden = true;
      textEl.hidden = false;
      const start = item.answer || (item.proposal && item.proposal.value);
      const given = (start && start.spans) || [];
      spans = sortSpans(given.map((s) => ({ start: doc.cp.toUnits(s.start), end: doc.cp.toUnits(s.end), label: s.label })));
      reset();
      drawAll();
      drawList();
    },
    clear(message) {
      doc = null;
      spans = [];
      reset();
      textEl.hidden = false;
      textEl.textContent = message;
      delete textEl.dataset.spanCount;
      delete textEl.dataset.selection;
      metaEl.textContent = "";
      sideEl.replaceChildren();
    },
    value() {
      if (!doc) throw new Error("No item is shown.");
      const { fromUnits } = doc.cp;
      return { spans: spans.map((s) => ({ start: fromUnits(s.start), end: fromUnits(s.end), label: s.label })) };
    },
    // A label's key marks the selection, or relabels the selected span; never submits.
    chooseLabel(name) {
      if (!doc) return null;
      if (selected) relabel(name);
      else if (selection) mark(name);
      else notify("Select some text first (drag, double-click, or Shift+→), then press a label's key.", "error");
      return null;
    },
    undo() {
      return Boolean(doc) && restore(history, redone);
    },
    acceptProposal() {
      return "submit";
    },
    preload(item) {
      if (item && item.text && (!warm || warm.id !== item.id)) warm = prepare(item);
    },
    proposalText(proposal) {
      const n = ((proposal.value && proposal.value.spans) || []).length;
      return `Proposed: ${n} span${n === 1 ? "" : "s"}`;
    },
    keymap,
    help: [
      ["← →", "move by token"], ["Shift+← →", "extend the selection by token"],
      ["a label's key", "mark the selection, or change the selected span's label"],
      ["Tab, Shift+Tab", "select the next, the previous span"], ["Delete", "delete the selected span"],
      ["Esc", "clear the selection"], ["Ctrl+Z, Ctrl+Y", "undo, redo"],
    ],
  };
}
