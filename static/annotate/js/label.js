// The labeling page's shell: the queue, submit and skip, label hotkeys, active time per item,
// going back to an earlier item to change the answer (history.js), comments and flags for the
// lead (notes.js) and the "?" list of every key (help.js).
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

import { createChoicesEditor } from "./editors/choices.js";
import { createHelp } from "./help.js";
import { History } from "./history.js";
import { bindHotkeys } from "./hotkeys.js";
import { createNoteDialog } from "./notes.js";
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
  restart(total = 0) {
    this.total = total;
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

// The page's own keys: [keys as shown, what they do, the key a label's hotkey would shadow].
const SHELL_HELP = [
  ["Enter", "submit (or save the changed answer)"],
  ["S", "skip this item (when changing an answer: leave it as it was)", "s"],
  ["Ctrl+Z", "undo the last edit in this item"],
  ["[ / Alt+←", "back to your previous item, to change your answer", "["],
  ["] / Alt+→", "forward again, toward the item you were labeling", "]"],
  ["H", "your recent items: pick one to change your answer", "h"],
  ["Escape", "back to the item you were labeling (when changing an answer)"],
  ["C", "comment on this item", "c"],
  ["F", "flag this item for the lead (with a comment)", "f"],
  ["?", "this list", "?"],
  ["Tab", "move between buttons (each has a visible focus ring)"],
];

export async function mountLabeling(root) {
  const config = JSON.parse(document.getElementById("labeling-config").textContent);
  const status = root.querySelector("[data-status]");
  const proposalEl = root.querySelector("[data-proposal]");
  const backEl = root.querySelector("[data-back]");
  const counter = root.querySelector("[data-count]");
  const canvas = root.querySelector("[data-canvas]");
  const timer = new ActiveTimer();
  const notify = (message, kind = "muted") => {
    status.textContent = message;
    status.className = kind;
  };
  const editor = (await editorFactory(config.task_type))({ root, config, notify });
  let shown = null; // the queue's item on screen (a lease), or null
  let back = null; // changing an earlier answer: { index, entry, queueMs }
  let labeledHere = 0;

  const paint = (lease) => {
    shown = lease;
    canvas.dataset.itemId = lease.item.id;
    editor.show(lease.item);
    const proposal = lease.item.proposal;
    if (proposal) {
      const score = proposal.score == null ? "" : ` (${Math.round(proposal.score * 100)}% confident)`;
      proposalEl.textContent = `${editor.proposalText(proposal)}${score}. Enter accepts.`;
      proposalEl.hidden = false;
    } else {
      proposalEl.hidden = true;
    }
    root.dataset.state = "ready";
  };

  const paintEmpty = () => {
    shown = null;
    delete canvas.dataset.itemId;
    editor.clear("Nothing left to label in this project. Thank you!");
    proposalEl.hidden = true;
    root.dataset.state = "empty";
  };

  const queue = new LabelQueue({
    projectId: config.project_id,
    csrfToken: config.csrf_token,
    onPrefetched(lease) {
      editor.preload(lease.item);
    },
    onShow(lease) {
      shown = lease;
      // While an earlier answer is being changed, the queue's item waits behind it.
      if (!back) {
        paint(lease);
        timer.restart();
      }
      if (queue.prefetched) editor.preload(queue.prefetched.item);
    },
    onEmpty() {
      shown = null;
      if (!back) paintEmpty();
    },
    onError(error) {
      notify(`Not saved: ${error.message}`, "error");
    },
    onSaved() {
      notify("Saved.");
      root.dataset.saved = String(Number(root.dataset.saved || 0) + 1);
    },
  });

  // Going back --------------------------------------------------------------------------
  const history = new History({
    projectId: config.project_id,
    dialog: document.querySelector("[data-history-dialog]"),
    settle: () => queue.settled(),
    onPick: (index) => goBackTo(index),
  });

  const showBack = (index, entry) => {
    if (!back) back = { queueMs: timer.read() };
    back.index = index;
    back.entry = entry;
    root.dataset.mode = "history";
    canvas.dataset.itemId = entry.item.id;
    editor.show(entry.item);
    proposalEl.hidden = true;
    backEl.textContent = `Changing your answer to ${entry.item.external_id}. Enter saves it; Escape or ] goes back to the item you were labeling.`;
    backEl.hidden = false;
    root.dataset.state = "ready";
    timer.restart();
  };

  const goBackTo = async (index) => {
    let entry;
    try {
      entry = await history.entry(index);
    } catch (error) {
      notify(`Your history did not load: ${error.message}`, "error");
      return;
    }
    if (!entry) {
      notify(index === 0 ? "Nothing labeled yet to go back to." : "That was your oldest item.");
      return;
    }
    showBack(index, entry);
  };

  const returnToQueue = () => {
    if (!back) return;
    const { queueMs } = back;
    back = null;
    root.dataset.mode = "queue";
    backEl.hidden = true;
    if (shown) {
      paint(shown);
      timer.restart(queueMs);
    } else if (queue.empty) {
      paintEmpty();
    } else {
      root.dataset.state = "loading";
    }
  };

  const stepBack = () => goBackTo(back ? back.index + 1 : 0);
  const stepForward = () => {
    if (!back) return;
    if (back.index === 0) returnToQueue();
    else goBackTo(back.index - 1);
  };

  const saveChange = async () => {
    let value;
    try {
      value = editor.value();
    } catch (error) {
      notify(error.message, "error");
      return;
    }
    const { entry } = back;
    const activeMs = timer.read();
    history.invalidate();
    returnToQueue();
    notify("Saving your changed answer…");
    const outcome = await queue.resubmit({ itemId: entry.item.id, value, activeMs });
    if (outcome === "failed") return;
    root.dataset.changed = String(Number(root.dataset.changed || 0) + 1);
    notify(outcome === "saved" ? `Changed answer to ${entry.item.external_id} saved.` : "Changed answer kept: it is sent when the server answers again.");
  };

  // The shell's actions -------------------------------------------------------------------
  const submit = () => {
    if (back) return saveChange();
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
    history.invalidate();
    queue.submit({ value, activeMs: timer.read(), proposal });
  };

  const choose = (name) => {
    const result = (back || shown) && editor.chooseLabel(name);
    if (result === "submit") submit();
  };

  const skip = () => {
    if (back) returnToQueue();
    else if (shown) queue.skip();
  };

  const undo = () => {
    if (!back && !shown) return;
    notify(editor.undo() ? "Undone." : "Nothing to undo in this item.");
  };

  const notes = createNoteDialog({
    dialog: document.querySelector("[data-note-dialog]"),
    projectId: config.project_id,
    csrfToken: config.csrf_token,
    notify,
  });
  const note = (flagged) => {
    const item = back ? back.entry.item : shown && shown.item;
    if (item) notes.open(item.id, { flagged });
    else notify("No item to comment on.");
  };

  const help = createHelp({
    dialog: document.querySelector("[data-help-dialog]"),
    shell: SHELL_HELP,
    labels: config.labels,
    editor: editor.help,
  });

  root.querySelector("[data-labels]").addEventListener("click", (event) => {
    const button = event.target.closest("[data-label]");
    if (button) choose(button.dataset.label);
  });
  const actions = {
    submit,
    skip,
    back: stepBack,
    forward: stepForward,
    history: () => history.openList(),
    comment: () => note(false),
    flag: () => note(true),
    help: () => help.open(),
  };
  root.addEventListener("click", (event) => {
    const button = event.target.closest("[data-action]");
    if (button && actions[button.dataset.action]) actions[button.dataset.action]();
  });

  // Precedence: an editor's key, unless its action lets the key through (returns false); then
  // a label's hotkey; then the page's own key.
  const keymap = new Map([
    ["Enter", submit],
    ["s", skip],
    ["Ctrl+z", undo],
    ["[", stepBack],
    ["Alt+ArrowLeft", stepBack],
    ["ArrowLeft", stepBack],
    ["]", stepForward],
    ["Alt+ArrowRight", stepForward],
    ["ArrowRight", () => (back ? stepForward() : false)],
    ["Escape", () => (back ? returnToQueue() : false)],
    ["h", actions.history],
    ["c", actions.comment],
    ["f", actions.flag],
    ["?", actions.help],
  ]);
  for (const label of config.labels) if (label.hotkey) keymap.set(label.hotkey.toLowerCase(), () => choose(label.name));
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
  bindHotkeys(document, keymap);
  window.addEventListener("pagehide", () => queue.release());

  root.dataset.mode = "queue";
  queue.start();
}
