// The bounding-box editor (image_boxes). See label.js for the editor interface; the image, the
// boxes on it, zoom, pan and the mouse are editors/box_stage.js's.
//
// The value is {"boxes": [{x, y, w, h, label}]} in fractions of the image's stored pixel size
// (item.width × item.height, already upright), whatever the zoom.
// Keys (named as in hotkeys.js; a label's own hotkey wins over any of these): Tab / Shift+Tab
// cycle boxes, arrows nudge the selected box by an image pixel (Shift: 10) or pan when none is
// selected, Ctrl+arrows resize it (its right and bottom edges), Delete / Backspace delete it,
// Escape deselects, + / - / 0 zoom, space+drag pans, Ctrl+Z undoes (the shell calls undo()). A label's key relabels the selected box, or with none
// selected chooses the label the next drawn box gets. The side panel lists the boxes as
// buttons (focusing one selects it): the accessible view. The stage carries data-box-count and
// data-selected (the index, -1 for none) for tests to wait on.

import { copyBoxes, createBoxStage, el } from "./box_stage.js";

// WCAG relative luminance, as annotate/colours.py computes it.
function luminance(hex) {
  const digits = /^#?([0-9a-f]{6})$/i.exec(hex || "");
  if (!digits) return 0;
  const linear = (i) => {
    const c = parseInt(digits[1].slice(i, i + 2), 16) / 255;
    return c <= 0.04045 ? c / 12.92 : ((c + 0.055) / 1.055) ** 2.4;
  };
  return 0.2126 * linear(0) + 0.7152 * linear(2) + 0.0722 * linear(4);
}

// Black or white, whichever contrasts more with `background` (black on a tie): text_colour_for.
export function textColourFor(background) {
  const l = luminance(background);
  return (l + 0.05) / 0.05 >= 1.05 / (l + 0.05) ? "#000000" : "#ffffff";
}

export function createBoxesEditor({ root, config, notify }) {
  const stageEl = root.querySelector("[data-editor-stage]");
  const side = root.querySelector("[data-editor-side]");
  const textEl = root.querySelector("[data-item-text]");
  const metaEl = root.querySelector("[data-item-meta]");
  const labelButtons = [...root.querySelectorAll("[data-label]")];
  const colours = new Map(config.labels.map((l) => [l.name, { fill: l.colour, text: textColourFor(l.colour) }]));
  const unknownColour = { fill: "#6b7280", text: textColourFor("#6b7280") };
  const colourOf = (label) => colours.get(label) || unknownColour;

  const state = {
    item: null,
    iw: 0,
    ih: 0,
    boxes: [],
    selected: -1,
    currentLabel: config.labels.length ? config.labels[0].name : null,
  };
  let history = [];
  let lastEdit = null; // {kind, index} of the newest history entry, so nudges coalesce
  const preloaded = [];

  const stage = createBoxStage({
    stage: stageEl,
    state,
    colourOf,
    onSelect: (i) => select(i),
    onEdited(before, kind, index) {
      if (before) {
        history.push(before);
        lastEdit = { kind, index };
        if (kind === "draw") state.selected = index;
      }
      render();
    },
  });

  const currentEl = el("p", "boxes-current");
  const list = el("ol", "boxes-list", { "aria-label": "Boxes" });
  const emptyEl = el("p", "muted small boxes-empty");
  emptyEl.textContent = "No boxes yet: drag on the image to draw one.";
  const note = el("p", "muted small");
  note.textContent = "Boxes have no model yet: proposals come only from imported predictions.";
  side.replaceChildren(currentEl, list, emptyEl, note);
  const listEls = [];

  function listEntry(i) {
    while (listEls.length <= i) {
      const li = el("li");
      const button = el("button", null, { type: "button" });
      const text = el("span");
      button.append(el("span", "box-swatch", { "aria-hidden": "true" }), text);
      const index = listEls.length;
      button.addEventListener("focus", () => select(index));
      button.addEventListener("click", () => select(index));
      li.append(button);
      list.append(li);
      listEls.push({ li, button, text });
    }
    const b = state.boxes[i];
    const entry = listEls[i];
    entry.button.style.setProperty("--c", colourOf(b.label).fill);
    const size = `${Math.round(b.w * state.iw)} × ${Math.round(b.h * state.ih)} px`;
    entry.text.textContent = `${i + 1}. ${b.label} · ${size}`;
    entry.li.hidden = false;
  }

  function renderSelection() {
    const { boxes, selected } = state;
    stage.renderSelection();
    for (let i = 0; i < boxes.length && i < listEls.length; i++) {
      listEls[i].button.setAttribute("aria-current", i === selected ? "true" : "false");
    }
    currentEl.textContent =
      selected >= 0
        ? `Box ${selected + 1} selected (${boxes[selected].label}): a label's key relabels it, Escape deselects.`
        : `New boxes get: ${state.currentLabel ?? "no label"} (a label's key changes it).`;
    const pressed = selected >= 0 ? boxes[selected].label : state.currentLabel;
    for (const button of labelButtons) {
      button.setAttribute("aria-pressed", button.dataset.label === pressed ? "true" : "false");
    }
    stageEl.dataset.selected = String(selected);
  }

  function render() {
    const n = state.boxes.length;
    stage.render();
    for (let i = 0; i < n; i++) listEntry(i);
    for (let i = n; i < listEls.length; i++) listEls[i].li.hidden = true;
    emptyEl.hidden = n > 0;
    const name = state.item ? state.item.external_id : "";
    stage.viewport.setAttribute("aria-label", `Image ${name} with ${n} ${n === 1 ? "box" : "boxes"}`);
    stageEl.dataset.boxCount = String(n);
    renderSelection();
  }

  function renderOne(i) {
    stage.renderBox(i);
    listEntry(i);
  }

  function select(i, { focus = false } = {}) {
    if (i !== state.selected) {
      state.selected = i;
      renderSelection();
      if (i >= 0) stage.ensureVisible(i);
    }
    if (focus && i >= 0) listEls[i].button.focus({ preventScroll: true });
  }

  // A run of nudges (or of key resizes) of one box is one edit to undo.
  function remember(kind, index) {
    const coalesces = kind === "nudge" || kind === "grow";
    if (coalesces && lastEdit && lastEdit.kind === kind && lastEdit.index === index) return;
    history.push({ boxes: copyBoxes(state.boxes), selected: state.selected });
    lastEdit = { kind, index };
  }

  const inEditor = (node) => !node || node === document.body || stageEl.contains(node) || side.contains(node);
  const ready = () => state.item !== null && !stage.dragging;

  // Keys ---------------------------------------------------------------------------------------

  function cycle(step) {
    const n = state.boxes.length;
    if (!ready() || !n || !inEditor(document.activeElement)) return false;
    const { selected } = state;
    select(selected < 0 ? (step > 0 ? 0 : n - 1) : (selected + step + n) % n, { focus: true });
    return true;
  }

  function arrow(dx, dy) {
    if (!ready()) return false;
    if (state.selected < 0) return stage.pan(dx, dy); // false at no zoom: the key goes on
    const i = state.selected;
    const b = state.boxes[i];
    remember("nudge", i);
    b.x = Math.min(Math.max(b.x + dx / state.iw, 0), 1 - b.w);
    b.y = Math.min(Math.max(b.y + dy / state.ih, 0), 1 - b.h);
    renderOne(i);
    return true;
  }

  // Resize by keyboard: the right and bottom edges move, the top-left corner stays.
  function grow(dw, dh) {
    if (!ready() || state.selected < 0) return false;
    const i = state.selected;
    const b = state.boxes[i];
    remember("grow", i);
    b.w = Math.min(Math.max(b.w + dw / state.iw, 1 / state.iw), 1 - b.x);
    b.h = Math.min(Math.max(b.h + dh / state.ih, 1 / state.ih), 1 - b.y);
    renderOne(i);
    return true;
  }

  function remove() {
    if (!ready() || state.selected < 0) return false;
    remember("delete", state.selected);
    const [gone] = state.boxes.splice(state.selected, 1);
    state.selected = -1;
    render();
    stage.viewport.focus({ preventScroll: true });
    notify(`Deleted a ${gone.label} box (Ctrl+Z brings it back).`);
    return true;
  }

  function escape() {
    if (stage.cancelDrag()) return true;
    if (state.selected < 0) return false;
    select(-1);
    stage.viewport.focus({ preventScroll: true });
    return true;
  }

  const zoomKey = (zoom) => () => {
    if (!state.item) return false;
    zoom();
    if (state.selected >= 0) stage.ensureVisible(state.selected);
    return true;
  };

  const space = () => {
    if (!state.item || !inEditor(document.activeElement)) return false;
    stage.holdSpace();
    return true;
  };

  const keys = [
    ["Tab", () => cycle(1)],
    ["Shift+Tab", () => cycle(-1)],
    ["Delete", remove],
    ["Backspace", remove],
    ["Escape", escape],
    ["+", zoomKey(stage.zoomIn)],
    ["=", zoomKey(stage.zoomIn)],
    ["-", zoomKey(stage.zoomOut)],
    ["0", zoomKey(stage.zoomFit)],
    [" ", space],
  ];
  for (const [name, dx, dy] of [
    ["ArrowLeft", -1, 0],
    ["ArrowRight", 1, 0],
    ["ArrowUp", 0, -1],
    ["ArrowDown", 0, 1],
  ]) {
    keys.push([name, () => arrow(dx, dy)], [`Shift+${name}`, () => arrow(dx * 10, dy * 10)]);
    keys.push([`Ctrl+${name}`, () => grow(dx, dy)], [`Ctrl+Shift+${name}`, () => grow(dx * 10, dy * 10)]);
  }
  // A label's hotkey wins: the editor keeps only the keys no label claims.
  const claimed = new Set(config.labels.filter((l) => l.hotkey).map((l) => l.hotkey.toLowerCase()));
  const keymap = new Map(keys.filter(([name]) => !claimed.has(name)));

  function takeNaturalSize(item) {
    if (state.item !== item) return;
    state.iw = stage.img.naturalWidth;
    state.ih = stage.img.naturalHeight;
    stage.layout();
    render();
  }

  return {
    show(item) {
      state.item = item;
      stage.reset();
      textEl.hidden = true;
      root.querySelector("[data-item-image]").hidden = true;
      stageEl.hidden = false;
      side.hidden = false;
      state.iw = item.width || 0;
      state.ih = item.height || 0;
      metaEl.textContent = state.iw ? `${item.external_id} · ${state.iw} × ${state.ih} px` : item.external_id;
      // The preloaded picture is already decoded: put it in place of the old one, so the swap
      // paints at once instead of decoding on the main thread (measured: 76 against 42 ms median
      // on two busy cores, bench/bench_editors_browser.py).
      const ready = preloaded.findIndex((image) => image.getAttribute("src") === item.image_url);
      if (ready >= 0 && stage.img.getAttribute("src") !== item.image_url) {
        const image = preloaded.splice(ready, 1)[0];
        image.className = stage.img.className;
        image.draggable = false;
        stage.img.replaceWith(image);
        stage.img = image;
      }
      const img = stage.img;
      img.alt = `item ${item.external_id}`;
      if (img.getAttribute("src") !== item.image_url) img.src = item.image_url;
      if (!state.iw) {
        // An image stored without its size: take it from the file once it has loaded.
        if (img.complete && img.naturalWidth) queueMicrotask(() => takeNaturalSize(item));
        else img.addEventListener("load", () => takeNaturalSize(item), { once: true });
      }
      const start = item.answer || (item.proposal && item.proposal.value);
      state.boxes = start && Array.isArray(start.boxes) ? copyBoxes(start.boxes) : [];
      state.selected = -1;
      history = [];
      lastEdit = null;
      stage.layout();
      render();
    },
    clear(message) {
      state.item = null;
      state.boxes = [];
      state.selected = -1;
      history = [];
      stageEl.hidden = true;
      side.hidden = true;
      root.querySelector("[data-item-image]").hidden = true;
      textEl.hidden = false;
      textEl.textContent = message;
      metaEl.textContent = "";
      render();
    },
    value() {
      const bad = state.boxes.findIndex((b) => !colours.has(b.label));
      if (bad >= 0) {
        const label = state.boxes[bad].label;
        throw new Error(`Box ${bad + 1} has the label "${label}", which this project does not have: select it and press a label's key.`);
      }
      return { boxes: copyBoxes(state.boxes) };
    },
    chooseLabel(name) {
      const i = state.selected;
      if (i < 0) {
        state.currentLabel = name;
      } else if (state.boxes[i].label !== name) {
        remember("relabel", i);
        state.boxes[i].label = name;
        renderOne(i);
      }
      renderSelection();
      return null;
    },
    undo() {
      stage.cancelDrag();
      if (!history.length) return false;
      const before = history.pop();
      state.boxes = before.boxes;
      state.selected = before.selected < state.boxes.length ? before.selected : -1;
      lastEdit = null;
      render();
      return true;
    },
    acceptProposal() {
      return "submit";
    },
    preload(item) {
      if (!item || !item.image_url) return;
      const image = new Image();
      image.src = item.image_url;
      if (image.decode) image.decode().catch(() => {});
      preloaded.push(image); // held a while, so the decoded picture is not collected before use
      if (preloaded.length > 3) preloaded.shift();
    },
    proposalText(proposal) {
      const n = proposal.value && Array.isArray(proposal.value.boxes) ? proposal.value.boxes.length : 0;
      const source = proposal.model_version_id == null ? "imported predictions; there is no box model yet" : "a model";
      return `Proposed: ${n} ${n === 1 ? "box" : "boxes"} (${source})`;
    },
    keymap,
    help: [
      ["drag", "draw a box (with the current label); drag a box to move it, a handle to resize"],
      ["Tab / Shift+Tab", "select the next / previous box"],
      ["← → ↑ ↓", "nudge the selected box one pixel (Shift: 10); pan when none is selected"],
      ["Ctrl + ← → ↑ ↓", "resize the selected box from its right and bottom edges (Shift: 10 pixels)"],
      ["Delete / Backspace", "delete the selected box"],
      ["a label's key", "relabel the selected box, or choose the next box's label"],
      ["Escape", "deselect"],
      ["+ / − / 0", "zoom in / out / fit (or the mouse wheel)"],
      ["space + drag", "pan (or drag with the middle button)"],
      ["Ctrl+Z", "undo the last edit in this item"],
    ],
  };
}
