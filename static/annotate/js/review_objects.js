// The review page's boxes and spans (static/annotate/js/review.js): each answer drawn on its own
// copy of the image (boxes in fractions of it, so no pixel arithmetic) or of the text (marks per
// code-point segment, the label after each span), label colours with black or white text by
// contrast, and the objects the server found unmatched (`differences`) dashed and ≠; and the
// correction editor: the labeling page's own editor (editors/boxes.js, editors/spans.js, the
// interface in label.js) on the review page's elements, with the labeling page's key precedence.

function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

// Black or white text on a label's colour, whichever contrasts more (WCAG relative luminance).
export function textOn(hex) {
  const match = /^#?([0-9a-f]{6})$/i.exec(hex || "");
  if (!match) return "#000";
  const [r, g, b] = [0, 2, 4].map((i) => {
    const c = parseInt(match[1].slice(i, i + 2), 16) / 255;
    return c <= 0.03928 ? c / 12.92 : ((c + 0.055) / 1.055) ** 2.4;
  });
  const luminance = 0.2126 * r + 0.7152 * g + 0.0722 * b;
  return (luminance + 0.05) / 0.05 >= 1.05 / (luminance + 0.05) ? "#000" : "#fff";
}

function tagOf(label, differs, colours) {
  const node = el("span", "rv-tag", `${differs ? "≠ " : ""}${label}`);
  const colour = colours.get(label) || "#999";
  node.style.background = colour;
  node.style.color = textOn(colour);
  return node;
}

function drawBoxes(item, value, differs, colours) {
  const stage = el("div", "rv-stage");
  stage.style.aspectRatio = `${item.width || 4} / ${item.height || 3}`;
  const image = el("img", "rv-image");
  image.src = item.image_url;
  image.alt = "";
  stage.append(image);
  ((value && value.boxes) || []).forEach((b, i) => {
    const node = el("div", differs.has(i) ? "rv-box rv-differs" : "rv-box");
    Object.assign(node.style, {
      left: `${b.x * 100}%`,
      top: `${b.y * 100}%`,
      width: `${b.w * 100}%`,
      height: `${b.h * 100}%`,
    });
    node.style.setProperty("--c", colours.get(b.label) || "#999");
    node.dataset.box = String(i);
    node.dataset.label = b.label;
    node.append(tagOf(b.label, differs.has(i), colours));
    stage.append(node);
  });
  return stage;
}

// The innermost of the spans covering a segment: the one that starts last (then ends first).
function innermost(covering) {
  return covering.reduce((a, b) =>
    b[0].start > a[0].start || (b[0].start === a[0].start && b[0].end < a[0].end) ? b : a,
  )[0];
}

// Offsets are code points: Array.from splits the text by them, not by UTF-16 units.
function drawSpans(text, value, differs, colours) {
  const chars = Array.from(text || "");
  const spans = (value && value.spans) || [];
  const cuts = new Set([0, chars.length]);
  for (const sp of spans) cuts.add(Math.min(sp.start, chars.length)).add(Math.min(sp.end, chars.length));
  const points = [...cuts].sort((a, b) => a - b);
  const body = el("div", "rv-text");
  for (let k = 0; k + 1 < points.length; k += 1) {
    const [start, end] = [points[k], points[k + 1]];
    const piece = chars.slice(start, end).join("");
    const covering = spans.map((sp, i) => [sp, i]).filter(([sp]) => sp.start <= start && sp.end >= end);
    if (!covering.length) {
      body.append(piece);
      continue;
    }
    const marked = covering.some(([, i]) => differs.has(i));
    const mark = el("mark", marked ? "rv-mark rv-differs" : "rv-mark", piece);
    mark.style.setProperty("--c", colours.get(innermost(covering).label) || "#999");
    mark.dataset.span = covering.map(([, i]) => i).join(" ");
    body.append(mark);
    for (const [sp, i] of covering) {
      if (sp.end !== end) continue;
      const label = tagOf(sp.label, differs.has(i), colours);
      label.dataset.spanEnd = String(i);
      body.append(label);
    }
  }
  return body;
}

// One panel per answer into `container`: `shown` is the review API's item view, `kind` "boxes"
// or "spans", `colours` a Map of label name to colour.
export function drawAnswers(container, { shown, kind, colours }) {
  container.replaceChildren();
  const differences = shown.differences || {};
  shown.annotations.forEach((answer, i) => {
    const differs = new Set(differences[String(answer.id)] || []);
    const panel = el("figure", answer.rejected ? "rv-answer rejected" : "rv-answer");
    panel.dataset.overlay = String(i);
    panel.dataset.annotationId = String(answer.id);
    const found = (answer.value && answer.value[kind]) || [];
    const caption = el("figcaption", "rv-caption");
    caption.append(el("kbd", "", i < 9 ? String(i + 1) : "·"), " ", el("strong", "", answer.annotator), " ");
    const summary =
      `${found.length} ${found.length === 1 ? { boxes: "box", spans: "span" }[kind] : kind}` +
      `${differs.size ? `, ${differs.size} differ${differs.size === 1 ? "s" : ""}` : ""}` +
      `${answer.rejected ? " · rejected" : ""}`;
    caption.append(el("span", differs.size ? "rv-count rv-count-differs" : "rv-count muted", summary));
    panel.append(caption);
    panel.append(
      kind === "boxes"
        ? drawBoxes(shown.item, answer.value, differs, colours)
        : drawSpans(shown.item.text, answer.value, differs, colours),
    );
    container.append(panel);
  });
}

// The labeling page's editor for `kind` on two parts of the review page: `stage` (in the item's
// card: [data-item-meta], [data-item-text], [data-item-image], [data-editor-stage]) and `side`
// (in the side panel: [data-editor-side] and the label buttons). An editor finds its elements
// through root.querySelector(All); this root is the two parts only, so it never finds the
// canvas's copy of the item or the answers' boxes (which carry data-label too).
async function createCorrectionEditor({ kind, stage, side, config, notify }) {
  const create =
    kind === "boxes"
      ? (await import("./editors/boxes.js")).createBoxesEditor
      : (await import("./editors/spans.js")).createSpansEditor;
  const root = {
    querySelector: (selector) => stage.querySelector(selector) || side.querySelector(selector),
    querySelectorAll: (selector) => [...stage.querySelectorAll(selector), ...side.querySelectorAll(selector)],
  };
  return create({ root, config, notify });
}

// A correction of a boxes or spans item in the editor, inside the review page's `root`
// (templates/annotate/review.html): start(item, value, who) opens it pre-filled with `value`,
// stop() closes it, `keymap` holds its keys while it is open. The editor's value, or the JSON
// fallback's ("Edit as JSON", Ctrl+Enter), goes to send(value); cancel() is Escape's.
export async function createCorrection({ root, kind, config, say, send, cancel }) {
  const $ = (selector) => root.querySelector(selector);
  const stage = $("[data-correct-stage]");
  const side = $("[data-correct-side]");
  const jsonBox = $("[data-json-box]");
  const jsonInput = $("[data-correct-json]");
  const editor = await createCorrectionEditor({ kind, stage, side, config, notify: say });
  drawEditorKeys($("[data-editor-keys]"), editor.help);
  let from = null; // the value the open correction started from; null when closed

  const reveal = (open) => {
    stage.hidden = side.hidden = !open;
    $("[data-correct-start]").hidden = open;
  };

  const confirm = () => {
    let value;
    try {
      value = editor.value();
    } catch (error) {
      say(error.message, "error");
      return;
    }
    send(value);
  };

  const confirmJson = () => {
    let value;
    try {
      value = JSON.parse(jsonInput.value);
    } catch (error) {
      say(`Not JSON: ${error.message}`, "error");
      return;
    }
    send(value);
  };

  const correction = {
    get open() {
      return from !== null;
    },
    start(item, value, who) {
      reveal(true); // before the editor paints: the box stage sizes itself from its width
      from = value;
      jsonBox.open = false;
      editor.show({ ...item, proposal: null, answer: value });
      $("[data-correct-from]").textContent = who ? `Correcting from ${who}'s answer` : "Correcting the final label";
      // Keys go to the editor, off any button a click left focused (the boxes' stage takes them).
      const viewport = stage.querySelector(".boxes-viewport");
      if (viewport) viewport.focus({ preventScroll: true });
      else if (document.activeElement && document.activeElement !== document.body) document.activeElement.blur();
      stage.scrollIntoView({ block: "nearest" });
      say(`${who ? `From ${who}'s answer` : "From the final label"}: edit, then Enter corrects; Esc cancels.`);
    },
    stop() {
      reveal(false);
      if (document.activeElement === jsonInput) jsonInput.blur();
      if (from === null) return;
      from = null;
      jsonBox.open = false;
      editor.clear("");
    },
    keymap: correctionKeymap({
      editor,
      labels: config.labels,
      send: confirm,
      cancel,
      undo: () => say(editor.undo() ? "Undone." : "Nothing to undo in this correction."),
    }),
  };

  $("[data-labels]").addEventListener("click", (event) => {
    const button = event.target.closest("[data-label]");
    if (button && correction.open) editor.chooseLabel(button.dataset.label);
  });
  $("[data-correct-confirm]").addEventListener("click", confirm);
  $("[data-correct-cancel]").addEventListener("click", cancel);
  $("[data-json-confirm]").addEventListener("click", confirmJson);
  // The JSON opens with the editor's value as it is now.
  jsonBox.addEventListener("toggle", () => {
    if (!jsonBox.open || from === null) return;
    let value = from;
    try {
      value = editor.value();
    } catch {
      // A box with a label the project lacks: the JSON shows the start, to be fixed there.
    }
    jsonInput.value = JSON.stringify(value, null, 1);
    jsonInput.focus();
  });
  jsonInput.addEventListener("keydown", (event) => {
    if (event.key === "Escape") {
      event.preventDefault();
      cancel();
    } else if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) {
      event.preventDefault();
      confirmJson();
    }
  });
  return correction;
}

// The keys while correcting, in label.js's precedence: the editor's key unless its action lets
// the key through (returns false), then a label's hotkey, then Enter (send), Escape (cancel) and
// Ctrl+Z (undo). So Escape first clears the editor's selection, and cancels only when none is left.
function correctionKeymap({ editor, labels, send, cancel, undo }) {
  const keymap = new Map([
    ["Enter", send],
    ["Escape", cancel],
    ["Ctrl+z", undo],
  ]);
  for (const label of labels) {
    if (label.hotkey) keymap.set(label.hotkey.toLowerCase(), () => editor.chooseLabel(label.name));
  }
  for (const [key, action] of editor.keymap) {
    const below = keymap.get(key);
    keymap.set(
      key,
      below
        ? (event) => {
            const handled = action(event);
            return handled === false ? below(event) : handled;
          }
        : action,
    );
  }
  return keymap;
}

// The editor's keys for the page's list ([data-editor-keys]): rows of key and what it does.
function drawEditorKeys(table, help) {
  table.replaceChildren(
    ...help.map(([keys, what]) => {
      const row = el("tr");
      row.append(el("th", "", keys), el("td", "", what));
      return row;
    }),
  );
}
