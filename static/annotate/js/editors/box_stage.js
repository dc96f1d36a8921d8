// The box editor's stage (editors/boxes.js holds the rest): the image inside a "world" element
// sized in CSS pixels (the fitted size × the zoom) and moved by a translate (the pan); boxes are
// absolutely positioned divs placed in percentages of the world, so zooming and panning never
// touch them and painting an item is one pass over a pool of elements. The 8 resize handles
// exist once and move into the selected box.
//
// Mouse: drag on the image draws a box with the current label, drag a box moves it, its handles
// resize it; the wheel zooms at the pointer; space+drag or the middle button pans. The stage
// reads and edits the editor's `state` ({ item, iw, ih, boxes, selected, currentLabel }); a
// finished gesture calls onEdited(before, kind, index) with the boxes as they were (null when
// nothing changed), onSelect(index) selects.

const HANDLES = ["nw", "n", "ne", "e", "se", "s", "sw", "w"];
const ZOOM_STEP = 1.25;
const ZOOM_MAX = 16;
const DRAW_START_PX = 4; // a drag shorter than this (screen pixels) is a click, not a box
const TAG_PX = 18; // a box nearer the top than this carries its tag inside
const SIDE_ROOM_PX = 210; // the page's head and the hint below the image

export const clamp = (v, low, high) => Math.min(high, Math.max(low, v));
export const copyBoxes = (boxes) => boxes.map((b) => ({ x: b.x, y: b.y, w: b.w, h: b.h, label: b.label }));

export function el(tag, className, attrs = {}) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  return node;
}

export function createBoxStage({ stage, state, colourOf, onSelect, onEdited }) {
  const viewport = el("div", "boxes-viewport", { tabindex: "0", role: "application" });
  const world = el("div", "boxes-world");
  const img = el("img", "boxes-image", { alt: "", draggable: "false" });
  world.append(img);
  viewport.append(world);
  const hint = el("p", "boxes-hint muted small");
  stage.replaceChildren(viewport, hint);
  const handles = HANDLES.map((dir) => el("span", `box-handle box-handle-${dir}`, { "data-dir": dir }));
  const boxEls = [];

  let zoom = 1;
  let panX = 0;
  let panY = 0;
  let baseW = 0;
  let baseH = 0;
  let availW = 0;
  let spaceHeld = false;
  let drag = null;

  window.addEventListener("resize", () => {
    availW = 0;
    if (state.item) layout();
  });

  function layout() {
    if (!availW) availW = Math.max(stage.clientWidth, 64);
    const availH = Math.max(window.innerHeight - SIDE_ROOM_PX, 240);
    if (!state.iw || !state.ih) return;
    const scale = Math.min(availW / state.iw, availH / state.ih);
    baseW = Math.max(1, Math.floor(state.iw * scale));
    baseH = Math.max(1, Math.floor(state.ih * scale));
    viewport.style.width = `${baseW}px`;
    viewport.style.height = `${baseH}px`;
    applyView();
  }

  function applyView() {
    const w = baseW * zoom;
    const h = baseH * zoom;
    panX = clamp(panX, baseW - w, 0);
    panY = clamp(panY, baseH - h, 0);
    world.style.width = `${w}px`;
    world.style.height = `${h}px`;
    world.style.transform = `translate(${panX}px, ${panY}px)`;
    hint.textContent =
      `Zoom ${Math.round(zoom * 100)}% · drag to draw, drag a box to move it, handles resize ·` +
      " wheel or + − 0 zoom · space+drag pans";
    const n = Math.min(state.boxes.length, boxEls.length);
    for (let i = 0; i < n; i++) boxEls[i].classList.toggle("tag-inside", state.boxes[i].y * h < TAG_PX);
  }

  function zoomTo(next, cx = baseW / 2, cy = baseH / 2) {
    next = clamp(next, 1, ZOOM_MAX);
    const fx = (cx - panX) / (baseW * zoom);
    const fy = (cy - panY) / (baseH * zoom);
    zoom = next;
    panX = cx - fx * baseW * zoom;
    panY = cy - fy * baseH * zoom;
    applyView();
  }

  function renderBox(i) {
    while (boxEls.length <= i) {
      const node = el("div", "box");
      node.dataset.index = String(boxEls.length);
      node.append(el("span", "box-tag"));
      world.append(node);
      boxEls.push(node);
    }
    const b = state.boxes[i];
    const node = boxEls[i];
    const colour = colourOf(b.label);
    node.style.left = `${b.x * 100}%`;
    node.style.top = `${b.y * 100}%`;
    node.style.width = `${b.w * 100}%`;
    node.style.height = `${b.h * 100}%`;
    node.style.setProperty("--c", colour.fill);
    node.style.setProperty("--t", colour.text);
    node.classList.toggle("tag-inside", b.y * baseH * zoom < TAG_PX);
    const tag = node.firstChild;
    if (tag.textContent !== b.label) tag.textContent = b.label;
    node.hidden = false;
  }

  function renderSelection() {
    for (let i = 0; i < state.boxes.length && i < boxEls.length; i++) {
      boxEls[i].classList.toggle("selected", i === state.selected);
    }
    if (state.selected >= 0 && boxEls[state.selected]) boxEls[state.selected].append(...handles);
    else for (const h of handles) h.remove();
  }

  function render() {
    for (let i = 0; i < state.boxes.length; i++) renderBox(i);
    for (let i = state.boxes.length; i < boxEls.length; i++) boxEls[i].hidden = true;
    renderSelection();
  }

  // Pan so that a box outside the zoomed view comes into it.
  function ensureVisible(i) {
    if (zoom === 1 || !state.boxes[i]) return;
    const b = state.boxes[i];
    const cx = (b.x + b.w / 2) * baseW * zoom;
    const cy = (b.y + b.h / 2) * baseH * zoom;
    if (cx + panX < 0 || cx + panX > baseW || cy + panY < 0 || cy + panY > baseH) {
      panX = baseW / 2 - cx;
      panY = baseH / 2 - cy;
      applyView();
    }
  }

  function fraction(event, rect) {
    return {
      x: clamp((event.clientX - rect.left) / rect.width, 0, 1),
      y: clamp((event.clientY - rect.top) / rect.height, 0, 1),
    };
  }

  viewport.addEventListener("pointerdown", (event) => {
    if (!state.item || drag) return;
    if (event.button === 1 || (event.button === 0 && spaceHeld)) {
      drag = { kind: "pan", sx: event.clientX, sy: event.clientY, px: panX, py: panY };
      viewport.classList.add("panning");
    } else if (event.button === 0) {
      const rect = world.getBoundingClientRect();
      const p = fraction(event, rect);
      const handle = event.target.closest(".box-handle");
      const node = event.target.closest(".box");
      const before = { boxes: copyBoxes(state.boxes), selected: state.selected };
      if (handle && state.selected >= 0) {
        const i = state.selected;
        drag = { kind: "resize", dir: handle.dataset.dir, i, orig: { ...state.boxes[i] }, rect, before };
      } else if (node) {
        const i = Number(node.dataset.index);
        onSelect(i);
        drag = { kind: "move", i, p, orig: { ...state.boxes[i] }, rect, before };
      } else {
        onSelect(-1);
        drag = { kind: "draw", p, sx: event.clientX, sy: event.clientY, i: null, rect, before };
      }
    } else {
      return;
    }
    event.preventDefault();
    viewport.focus({ preventScroll: true });
    viewport.setPointerCapture(event.pointerId);
  });

  viewport.addEventListener("pointermove", (event) => {
    if (!drag) return;
    if (drag.kind === "pan") {
      panX = drag.px + event.clientX - drag.sx;
      panY = drag.py + event.clientY - drag.sy;
      applyView();
      return;
    }
    const p = fraction(event, drag.rect);
    let left, top, right, bottom;
    if (drag.kind === "draw") {
      if (drag.i === null) {
        const far = Math.hypot(event.clientX - drag.sx, event.clientY - drag.sy) >= DRAW_START_PX;
        if (!far || !state.currentLabel) return;
        state.boxes.push({ x: 0, y: 0, w: 0, h: 0, label: state.currentLabel });
        drag.i = state.boxes.length - 1;
      }
      [left, top, right, bottom] = [drag.p.x, drag.p.y, p.x, p.y];
    } else if (drag.kind === "move") {
      const o = drag.orig;
      left = clamp(o.x + p.x - drag.p.x, 0, 1 - o.w);
      top = clamp(o.y + p.y - drag.p.y, 0, 1 - o.h);
      [right, bottom] = [left + o.w, top + o.h];
    } else {
      const o = drag.orig;
      [left, top, right, bottom] = [o.x, o.y, o.x + o.w, o.y + o.h];
      if (drag.dir.includes("w")) left = p.x;
      if (drag.dir.includes("e")) right = p.x;
      if (drag.dir.includes("n")) top = p.y;
      if (drag.dir.includes("s")) bottom = p.y;
    }
    const b = state.boxes[drag.i];
    b.x = Math.min(left, right);
    b.y = Math.min(top, bottom);
    b.w = Math.abs(right - left);
    b.h = Math.abs(bottom - top);
    renderBox(drag.i);
  });

  function dragEnd(cancelled) {
    const d = drag;
    drag = null;
    viewport.classList.remove("panning");
    if (!d || d.kind === "pan" || d.i === null) return;
    const b = state.boxes[d.i];
    // A box under one image pixel across is a slip (drawn) or a collapse (resized): taken back.
    if (b.w * state.iw < 1 || b.h * state.ih < 1) cancelled = true;
    if (cancelled) {
      state.boxes = d.before.boxes;
      state.selected = d.before.selected;
      onEdited(null);
    } else {
      const changed = JSON.stringify(d.before.boxes) !== JSON.stringify(state.boxes);
      onEdited(changed ? d.before : null, d.kind, d.i);
    }
  }

  viewport.addEventListener("pointerup", () => dragEnd(false));
  viewport.addEventListener("pointercancel", () => dragEnd(true));
  viewport.addEventListener("auxclick", (event) => event.preventDefault());
  viewport.addEventListener(
    "wheel",
    (event) => {
      if (!state.item) return;
      event.preventDefault();
      const rect = viewport.getBoundingClientRect();
      const factor = event.deltaY < 0 ? ZOOM_STEP : 1 / ZOOM_STEP;
      zoomTo(zoom * factor, event.clientX - rect.left, event.clientY - rect.top);
    },
    { passive: false },
  );
  const releaseSpace = () => {
    spaceHeld = false;
    viewport.classList.remove("pan-ready");
  };
  document.addEventListener("keyup", (event) => event.key === " " && releaseSpace());
  window.addEventListener("blur", releaseSpace);

  return {
    viewport,
    img,
    layout,
    render,
    renderBox,
    renderSelection,
    ensureVisible,
    get dragging() {
      return drag !== null;
    },
    cancelDrag() {
      if (!drag) return false;
      dragEnd(true);
      return true;
    },
    reset() {
      drag = null;
      zoom = 1;
      panX = 0;
      panY = 0;
    },
    zoomIn: () => zoomTo(zoom * ZOOM_STEP),
    zoomOut: () => zoomTo(zoom / ZOOM_STEP),
    zoomFit: () => zoomTo(1),
    // Pan by a share of the view; false when there is nothing to pan (not zoomed in).
    pan(dx, dy) {
      if (zoom === 1) return false;
      panX -= dx * baseW * 0.1;
      panY -= dy * baseH * 0.1;
      applyView();
      return true;
    },
    holdSpace() {
      spaceHeld = true;
      viewport.classList.add("pan-ready");
    },
  };
}
