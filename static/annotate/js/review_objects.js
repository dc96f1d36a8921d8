// The review page's drawing of boxes and spans answers (static/annotate/js/review.js): each
// answer on its own copy of the image (boxes in fractions of it, so no pixel arithmetic) or of the
// text (marks per code-point segment, the label after each span), label colours with black or
// white text by contrast, and the objects the server found unmatched (`differences`) dashed and ≠.

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
