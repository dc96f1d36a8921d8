// The review page: every answer side by side; 1..9 accept that answer, C then a label's key
// corrects, R rejects the selected answer with a reason, N or → passes. Like the labeling page it
// keeps the next item (already leased) in memory and shows it at once; the decision is sent after.
// Boxes and spans projects: each answer is drawn on its own copy of the image or text, what the
// server found unmatched (`differences`) dashed and marked ≠. C (or an answer's Edit button)
// corrects in the labeling page's own editor, pre-filled with that answer (review_objects.js
// createCorrection): the mouse and the editor's keys edit, Enter sends the editor's value,
// Escape cancels (after clearing the editor's selection). "Edit as JSON" is the fallback, sent
// with Ctrl+Enter.

import { bindHotkeys } from "./hotkeys.js";
import { mountCanvas, preloadImage } from "./canvas.js";
import { ReviewQueue } from "./review_queue.js";
import { createCorrection, drawAnswers } from "./review_objects.js";

const ONE = { boxes: "box", spans: "span" };

const SOURCES = {
  none: "no label yet",
  single: "one annotator",
  consensus: "consensus",
  tie: "a tie",
  review: "a review",
  gold: "gold",
};

function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

function seconds(ms) {
  return `${(ms / 1000).toFixed(ms < 10000 ? 1 : 0)} s`;
}

function when(iso) {
  return new Date(iso).toLocaleString([], { dateStyle: "short", timeStyle: "short" });
}

export async function mountReview(root) {
  const config = JSON.parse(document.getElementById("review-config").textContent);
  const kind = { image_boxes: "boxes", text_spans: "spans" }[config.task_type] || "choices";
  const objects = kind !== "choices";
  const canvas = mountCanvas(root.querySelector("[data-canvas]"));
  const colours = new Map(config.labels.map((l) => [l.name, l.colour]));
  const byHotkey = new Map(config.labels.filter((l) => l.hotkey).map((l) => [l.hotkey.toLowerCase(), l.name]));
  const $ = (selector) => root.querySelector(selector);
  const answersEl = $("[data-answers]");
  const status = $("[data-status]");
  const conflictEl = $("[data-conflict]");
  const rejectForm = $("[data-reject]");
  const reasonInput = $("[data-reason]");
  const correctPanel = $("[data-correct-panel]");
  const confirmButton = $("[data-correct-confirm]");
  const overlaysEl = $("[data-overlays]");
  // Boxes and spans: the editor sets its label buttons' state itself.
  const labelButtons = new Map(
    objects ? [] : [...root.querySelectorAll("[data-label]")].map((b) => [b.dataset.label, b]),
  );
  let shown = null;
  let selected = 0;
  let mode = "answers"; // or "correct", "reject"
  let correction = new Set();
  let decidedHere = 0;

  const say = (text, kind = "muted") => {
    status.textContent = text;
    status.className = kind;
  };
  // Boxes and spans: the correction is edited in the labeling page's editor.
  const objectCorrection = objects
    ? await createCorrection({
        root,
        kind,
        config,
        say,
        send: (value) => {
          setMode("answers");
          decide({ decision: "correct", value });
        },
        cancel: () => setMode("answers"),
      })
    : null;

  const chips = (value) => {
    const box = el("span", "chips");
    if (objects) {
      const found = (value && value[kind]) || [];
      const counts = new Map();
      for (const o of found) counts.set(o.label, (counts.get(o.label) || 0) + 1);
      box.append(el("span", "muted", `${found.length} ${found.length === 1 ? ONE[kind] : kind}`));
      for (const [name, n] of counts) {
        const chip = el("span", "chip", n > 1 ? `${name} ×${n}` : name);
        chip.style.setProperty("--label-colour", colours.get(name) || "#999");
        box.append(chip);
      }
      return box;
    }
    const choices = (value && value.choices) || [];
    if (!choices.length) box.append(el("span", "muted", "(none)"));
    for (const name of choices) {
      const chip = el("span", "chip", name);
      chip.style.setProperty("--label-colour", colours.get(name) || "#999");
      box.append(chip);
    }
    return box;
  };

  const renderAnswers = () => {
    answersEl.replaceChildren();
    shown.annotations.forEach((answer, i) => {
      const row = el("li", "answer");
      row.dataset.answer = String(i);
      row.dataset.annotationId = String(answer.id);
      row.setAttribute("aria-selected", i === selected ? "true" : "false");
      if (answer.rejected) row.classList.add("rejected");
      const head = el("div", "answer-head");
      head.append(el("kbd", "", i < 9 ? String(i + 1) : "·"), el("strong", "answer-who", answer.annotator));
      head.append(el("span", "muted", `${seconds(answer.active_ms)} · ${when(answer.created_at)}`));
      const flags = [];
      if (answer.rejected) flags.push("rejected");
      else if (!answer.counted) flags.push("not counted");
      if (answer.late) flags.push("late");
      for (const flag of flags) head.append(el("span", `flag flag-${flag.replace(" ", "-")}`, flag));
      const body = el("div", "answer-body");
      body.append(chips(answer.value));
      const buttons = el("span", "answer-buttons");
      const accept = el("button", "", answer.rejected ? "Accept (undo reject)" : "Accept");
      accept.type = "button";
      accept.dataset.accept = String(i);
      buttons.append(accept);
      if (objects) {
        const edit = el("button", "", "Edit");
        edit.type = "button";
        edit.title = "Start a correction from this answer";
        edit.dataset.editAnswer = String(i);
        buttons.append(edit);
      }
      if (!answer.rejected) {
        const reject = el("button", "", "Reject…");
        reject.type = "button";
        reject.dataset.rejectAnswer = String(i);
        buttons.append(reject);
      }
      body.append(buttons);
      row.append(head, body);
      answersEl.append(row);
    });
    if (!shown.annotations.length) answersEl.append(el("li", "muted", "No answers."));
  };

  const renderOverlays = () => {
    if (!overlaysEl) return;
    drawAnswers(overlaysEl, { shown, kind, colours });
    $("[data-legend]").hidden = shown.annotations.length < 2;
    // The answers are drawn there: the single copy of the item would only repeat them.
    $("[data-item-text]").hidden = true;
    $("[data-item-image]").hidden = true;
    markSelected();
  };

  const markSelected = () => {
    for (const panel of overlaysEl ? overlaysEl.querySelectorAll("[data-overlay]") : []) {
      panel.setAttribute("aria-current", panel.dataset.overlay === String(selected) ? "true" : "false");
    }
  };

  const renderHistory = () => {
    const list = $("[data-history]");
    list.replaceChildren();
    $("[data-history-count]").textContent = String(shown.history.length);
    $("[data-history-box]").open = shown.history.length > 0;
    for (const review of shown.history) {
      const row = el("li", review.id === shown.in_force?.id ? "in-force" : "");
      row.append(el("strong", "", review.decision), ` by ${review.reviewer}, ${when(review.created_at)}: `);
      if (review.decision === "correct") row.append("corrected to ", chips(review.value));
      else if (review.annotator) row.append(`${review.annotator}'s answer `);
      if (review.decision === "accept") row.append(chips(review.value));
      if (review.reason) row.append(el("em", "", ` “${review.reason}”`));
      list.append(row);
    }
  };

  const renderFinal = () => {
    const item = shown.item;
    const final = $("[data-final]");
    final.replaceChildren();
    if (item.final_value) final.append("Final label: ", chips(item.final_value), ` from ${SOURCES[item.final_source]}`);
    else final.append(`No final label: ${SOURCES[item.final_source]}`);
    if (item.disagreement) final.append(" ", el("span", "flag flag-disagree", "annotators disagree"));
    const suspicion = $("[data-suspicion]");
    suspicion.replaceChildren();
    suspicion.hidden = item.suspicion == null;
    if (item.suspicion != null) {
      suspicion.append(`The model doubts this label (suspicion ${item.suspicion.toFixed(2)}). Its alternative: `);
      suspicion.append(item.suspect_value ? chips(item.suspect_value) : "none given");
    }
    $("[data-yours]").hidden = !shown.yours;
  };

  const renderCorrection = () => {
    correctPanel.classList.toggle("active", mode === "correct");
    for (const [name, button] of labelButtons) {
      button.setAttribute("aria-pressed", mode === "correct" && correction.has(name) ? "true" : "false");
    }
    if (confirmButton && !objects) confirmButton.hidden = mode !== "correct";
  };

  const setMode = (next) => {
    mode = next;
    rejectForm.hidden = mode !== "reject";
    if (mode !== "reject" && document.activeElement === reasonInput) reasonInput.blur();
    if (objectCorrection && mode !== "correct") objectCorrection.stop();
    renderCorrection();
  };

  // No item on screen: the queue is empty, or the next one is still on its way.
  const blank = (message, state) => {
    shown = null;
    canvas.clear(message);
    answersEl.replaceChildren();
    if (overlaysEl) overlaysEl.replaceChildren();
    $("[data-final]").replaceChildren();
    $("[data-suspicion]").hidden = true;
    $("[data-yours]").hidden = true;
    $("[data-history]").replaceChildren();
    $("[data-history-count]").textContent = "0";
    setMode("answers");
    root.dataset.state = state;
  };

  const show = (lease) => {
    shown = lease;
    selected = 0;
    canvas.show(lease.item);
    renderFinal();
    renderAnswers();
    if (objects) renderOverlays();
    renderHistory();
    setMode("answers");
    $("[data-waiting]").textContent = String(lease.waiting);
    root.dataset.state = "ready";
    preloadImage(queue.prefetched && queue.prefetched.item);
  };

  const queue = new ReviewQueue({
    projectId: config.project_id,
    csrfToken: config.csrf_token,
    onShow: show,
    onEmpty() {
      const passed = queue.passed.length;
      blank(
        passed
          ? `Nothing else waits for you to review. You passed ${passed}; reload the page to see them again.`
          : "Nothing waits for review in this project.",
        "empty",
      );
    },
    onError(error) {
      say(`Not saved: ${error.message}`, "error");
    },
    onDecided(review, done) {
      decidedHere += 1;
      $("[data-count]").textContent = String(decidedHere);
      root.dataset.decided = String(decidedHere);
      say(`Saved: ${review.decision} on ${done.item.external_id}.`);
    },
    onRefused(error, item) {
      const winner = item.in_force;
      conflictEl.hidden = false;
      conflictEl.textContent =
        error.status === 409 && winner
          ? `${winner.reviewer} decided this item first (${winner.decision}). It is shown again as it is now:` +
            " decide again if you still disagree."
          : `Not saved: ${error.message}`;
      root.dataset.refused = String(Number(root.dataset.refused || 0) + 1);
    },
    onWaiting(n) {
      $("[data-waiting]").textContent = String(n);
    },
  });

  const decide = (body) => {
    if (!shown) return;
    if (shown.yours) {
      say("You annotated this item: another reviewer must decide it.", "error");
      return;
    }
    conflictEl.hidden = true;
    queue.decide({ supersedes: shown.in_force ? shown.in_force.id : null, ...body });
    if (!queue.current && !queue.empty) blank("Loading the next item…", "loading");
  };

  const accept = (i) => {
    if (!shown) return;
    const answer = shown.annotations[i];
    if (!answer) {
      say(`There is no answer ${i + 1}.`, "error");
      return;
    }
    decide({ decision: "accept", annotation: answer.id });
  };

  const select = (i) => {
    if (!shown || !shown.annotations.length) return;
    selected = Math.max(0, Math.min(i, shown.annotations.length - 1));
    for (const row of answersEl.querySelectorAll("[data-answer]")) {
      row.setAttribute("aria-selected", row.dataset.answer === String(selected) ? "true" : "false");
    }
    markSelected();
  };

  const startReject = (i = selected) => {
    if (!shown) return;
    const answer = shown.annotations[i];
    if (!answer) return;
    if (answer.rejected) {
      say(`${answer.annotator}'s answer is rejected already; accept it to take the reject back.`, "error");
      return;
    }
    select(i);
    $("[data-reject-who]").textContent = answer.annotator;
    reasonInput.value = "";
    setMode("reject");
    reasonInput.focus();
  };

  const confirmReject = () => {
    const reason = reasonInput.value.trim();
    if (!reason) {
      say("Type the reason first: the annotator is shown it.", "error");
      return;
    }
    const answer = shown.annotations[selected];
    setMode("answers");
    decide({ decision: "reject", annotation: answer.id, reason });
  };

  // Boxes and spans: the correction starts in the editor from an answer's value (or the final one).
  const startEdit = (i = selected) => {
    if (!shown) return;
    const answer = shown.annotations[i];
    if (answer) select(i);
    setMode("correct");
    const start = answer ? answer.value : shown.item.final_value || { [kind]: [] };
    objectCorrection.start(shown.item, start, answer?.annotator);
  };

  const startCorrect = () => {
    if (!shown) return;
    if (objects) return startEdit();
    correction = new Set(config.multi_label && shown.item.final_value ? shown.item.final_value.choices : []);
    setMode("correct");
    say(config.multi_label ? "Correct: toggle labels by key, Enter confirms." : "Correct to: press a label's key.");
  };

  const confirmCorrect = () => {
    const value = { choices: config.labels.map((l) => l.name).filter((name) => correction.has(name)) };
    setMode("answers");
    decide({ decision: "correct", value });
  };

  const chooseLabel = (name) => {
    if (!shown) return;
    if (mode !== "correct") {
      correction = new Set();
      setMode("correct");
    }
    if (config.multi_label) {
      correction.has(name) ? correction.delete(name) : correction.add(name);
      renderCorrection();
    } else {
      correction = new Set([name]);
      confirmCorrect();
    }
  };

  const next = () => {
    if (!shown) return;
    setMode("answers");
    conflictEl.hidden = true;
    queue.pass();
    if (!queue.current && !queue.empty) blank("Loading the next item…", "loading");
  };

  // One dispatcher. Correct mode is modal: a label's key is that label (digits included), so
  // projects whose labels use the keys 1–9 (the default) still work; elsewhere digits pick answers.
  const press = (key) => {
    if (mode === "correct") {
      if (byHotkey.has(key)) return chooseLabel(byHotkey.get(key));
      if (key === "Escape") return setMode("answers");
      if (key === "Enter" && config.multi_label) return confirmCorrect();
      return say("Correcting: press a label's key, or Esc to stop.");
    }
    if (/^[1-9]$/.test(key)) return accept(Number(key) - 1);
    const actions = {
      c: startCorrect,
      r: () => startReject(),
      n: next,
      ArrowRight: next,
      ArrowDown: () => select(selected + 1),
      ArrowUp: () => select(selected - 1),
      j: () => select(selected + 1),
      k: () => select(selected - 1),
      Escape: () => setMode("answers"),
    };
    if (actions[key]) actions[key]();
  };
  const keys = new Set([..."123456789crnjk", "ArrowRight", "ArrowDown", "ArrowUp", "Escape", "Enter"]);
  if (!objects) for (const key of byHotkey.keys()) keys.add(key);
  const pageKeys = new Map([...keys].map((key) => [key, () => press(key)]));
  // Boxes and spans, correcting: the editor's keys; the page's others wait.
  const keymap = new Map();
  for (const key of new Set([...pageKeys.keys(), ...(objectCorrection ? objectCorrection.keymap.keys() : [])])) {
    keymap.set(key, (event) => {
      if (objectCorrection && mode === "correct") {
        const action = objectCorrection.keymap.get(key);
        if (action) return action(event);
        say("Correcting: Enter sends the correction, Esc cancels.");
        return undefined;
      }
      const action = pageKeys.get(key);
      return action ? action(event) : false;
    });
  }
  bindHotkeys(document, keymap);

  rejectForm.addEventListener("submit", (event) => {
    event.preventDefault();
    confirmReject();
  });
  reasonInput.addEventListener("keydown", (event) => {
    if (event.key === "Escape") {
      event.preventDefault();
      setMode("answers");
    }
  });
  answersEl.addEventListener("click", (event) => {
    const acceptButton = event.target.closest("[data-accept]");
    if (acceptButton) return accept(Number(acceptButton.dataset.accept));
    const editButton = event.target.closest("[data-edit-answer]");
    if (editButton) return startEdit(Number(editButton.dataset.editAnswer));
    const rejectButton = event.target.closest("[data-reject-answer]");
    if (rejectButton) return startReject(Number(rejectButton.dataset.rejectAnswer));
    const row = event.target.closest("[data-answer]");
    if (row) select(Number(row.dataset.answer));
  });
  $("[data-labels]")?.addEventListener("click", (event) => {
    const button = event.target.closest("[data-label]");
    if (button && !objects) chooseLabel(button.dataset.label);
  });
  overlaysEl?.addEventListener("click", (event) => {
    const panel = event.target.closest("[data-overlay]");
    if (panel) select(Number(panel.dataset.overlay));
  });
  if (confirmButton && !objects) confirmButton.addEventListener("click", confirmCorrect);
  $("[data-next]").addEventListener("click", next);
  window.addEventListener("pagehide", () => queue.release());

  queue.start();
}
