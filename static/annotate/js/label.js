// The labeling page's shell: the queue, submit and skip, label hotkeys, active time per item.
// What the item looks like and how its value is edited is the editor's, one per task type:
//
//   editors/choices.js  text and image classification
//   editors/boxes.js    bounding boxes on images (image_boxes)
//   editors/spans.js    text spans (text_spans)
//
// An editor is made by create…Editor({ root, config, notify }) and has:
//   show(item)            paint the item; pre-fill the value with item.answer (the annotator's own
//                         earlier answer, when they go back to an item) or else item.proposal.value
//   clear(message)        no item: show the message
//   value()               the value to submit; throws an Error whose message says what is missing
//   chooseLabel(name)     a label's button or hotkey; returns "submit" when that completes the item
//   undo()                Ctrl+Z: take back the last edit inside this item; false if there was none
//   acceptProposal()      returns "submit" if the proposal, as shown, may be submitted
//   preload(item)         warm up the next item (its image)
//   proposalText(p)       how the proposal is announced ("Proposed: …")
//   keymap                Map of the editor's own keys (hotkeys.js names) to actions
//   help                  [[keys, what they do], …] for the "?" list
// `notify(message, kind)` writes to the page's status line (kind "error" or "muted").

import { bindHotkeys } from "./hotkeys.js";
import { createChoicesEditor } from "./editors/choices.js";
import { LabelQueue } from "./queue.js";

const MAX_ACTIVE_MS = 10 * 60 * 1000;

const EDITORS = {
  text_classification: createChoicesEditor,
  image_classification: createChoicesEditor,
};

// Editors for the other task types load only on their pages.
async function editorFactory(taskType) {
  if (EDITORS[taskType]) return EDITORS[taskType];
  if (taskType === "image_boxes") return (await import("./editors/boxes.js")).createBoxesEditor;
  if (taskType === "text_spans") return (await import("./editors/spans.js")).createSpansEditor;
  throw new Error(`no editor for task type ${taskType}`);
}

// Time on an item while the tab is visible, capped: a tab left open overnight is not work.
class ActiveTimer {
  constructor() {
    this.total = 0;
    this.since = null;
    document.addEventListener("visibilitychange", () =>
      document.visibilityState === "visible" ? this.resume() : this.pause(),
    );
  }
  restart() {
    this.total = 0;
    this.since = document.visibilityState === "visible" ? performance.now() : null;
  }
  pause() {
    if (this.since !== null) this.total += performance.now() - this.since;
    this.since = null;
  }
  resume() {
    if (this.since === null) this.since = performance.now();
  }
  read() {
    const running = this.since === null ? 0 : performance.now() - this.since;
    return Math.min(Math.round(this.total + running), MAX_ACTIVE_MS);
  }
}

export async function mountLabeling(root) {
  const config = JSON.parse(document.getElementById("labeling-config").textContent);
  const status = root.querySelector("[data-status]");
  const proposalEl = root.querySelector("[data-proposal]");
  const counter = root.querySelector("[data-count]");
  const timer = new ActiveTimer();
  const notify = (message, kind = "muted") => {
    status.textContent = message;
    status.className = kind;
  };
  const editor = (await editorFactory(config.task_type))({ root, config, notify });
  let shown = null;
  let labeledHere = 0;

  const queue = new LabelQueue({
    projectId: config.project_id,
    csrfToken: config.csrf_token,
    onShow(lease) {
      shown = lease;
      root.querySelector("[data-canvas]").dataset.itemId = lease.item.id;
      editor.show(lease.item);
      const proposal = lease.item.proposal;
      if (proposal) {
        const score = proposal.score == null ? "" : ` (${Math.round(proposal.score * 100)}% confident)`;
        proposalEl.textContent = `${editor.proposalText(proposal)}${score}. Enter accepts.`;
        proposalEl.hidden = false;
      } else {
        proposalEl.hidden = true;
      }
      timer.restart();
      root.dataset.state = "ready";
      editor.preload(queue.prefetched && queue.prefetched.item);
    },
    onEmpty() {
      shown = null;
      delete root.querySelector("[data-canvas]").dataset.itemId;
      editor.clear("Nothing left to label in this project. Thank you!");
      root.dataset.state = "empty";
    },
    onError(error) {
      notify(`Not saved: ${error.message}`, "error");
    },
    onSaved() {
      notify("Saved.");
      root.dataset.saved = String(Number(root.dataset.saved || 0) + 1);
    },
  });

  const submit = () => {
    if (!shown) return;
    let value;
    try {
      value = editor.value();
    } catch (error) {
      notify(error.message, "error");
      return;
    }
    const proposal = shown.item.proposal
      ? { value: shown.item.proposal.value, model_version_id: shown.item.proposal.model_version_id ?? null }
      : null;
    labeledHere += 1;
    counter.textContent = String(labeledHere);
    queue.submit({ value, activeMs: timer.read(), proposal });
  };

  const choose = (name) => {
    if (shown && editor.chooseLabel(name) === "submit") submit();
  };

  const skip = () => {
    if (shown) queue.skip();
  };

  const undo = () => {
    if (shown && !editor.undo()) notify("Nothing to undo in this item.");
  };

  root.querySelector("[data-labels]").addEventListener("click", (event) => {
    const button = event.target.closest("[data-label]");
    if (button) choose(button.dataset.label);
  });
  root.querySelector("[data-submit]").addEventListener("click", submit);
  root.querySelector("[data-skip]").addEventListener("click", skip);

  const keymap = new Map([
    ["Enter", submit],
    ["s", skip],
    ["Ctrl+z", undo],
  ]);
  for (const label of config.labels) if (label.hotkey) keymap.set(label.hotkey.toLowerCase(), () => choose(label.name));
  for (const [key, action] of editor.keymap) keymap.set(key, action);
  bindHotkeys(document, keymap);
  window.addEventListener("pagehide", () => queue.release());

  queue.start();
}
