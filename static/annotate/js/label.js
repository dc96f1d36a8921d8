// The labeling page: label buttons with hotkeys, Enter submits, S skips, active time per item.

import { bindHotkeys } from "./hotkeys.js";
import { mountCanvas, preloadImage } from "./canvas.js";
import { LabelQueue } from "./queue.js";

const MAX_ACTIVE_MS = 10 * 60 * 1000;

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

export function mountLabeling(root) {
  const config = JSON.parse(document.getElementById("labeling-config").textContent);
  const canvas = mountCanvas(root.querySelector("[data-canvas]"));
  const buttons = new Map();
  const status = root.querySelector("[data-status]");
  const proposalEl = root.querySelector("[data-proposal]");
  const counter = root.querySelector("[data-count]");
  const timer = new ActiveTimer();
  let selected = new Set();
  let shown = null;
  let labeledHere = 0;

  for (const button of root.querySelectorAll("[data-label]")) buttons.set(button.dataset.label, button);

  const render = () => {
    for (const [name, button] of buttons) button.setAttribute("aria-pressed", selected.has(name) ? "true" : "false");
  };

  const queue = new LabelQueue({
    projectId: config.project_id,
    csrfToken: config.csrf_token,
    onShow(lease) {
      shown = lease;
      canvas.show(lease.item);
      const proposal = lease.item.proposal;
      selected = new Set(proposal ? proposal.value.choices : []);
      if (proposal) {
        const score = proposal.score == null ? "" : ` (${Math.round(proposal.score * 100)}% confident)`;
        proposalEl.textContent = `Proposed: ${proposal.value.choices.join(", ") || "none"}${score}. Enter accepts.`;
        proposalEl.hidden = false;
      } else {
        proposalEl.hidden = true;
      }
      render();
      timer.restart();
      root.dataset.state = "ready";
      preloadImage(queue.prefetched && queue.prefetched.item);
    },
    onEmpty() {
      shown = null;
      canvas.clear("Nothing left to label in this project. Thank you!");
      root.dataset.state = "empty";
    },
    onError(error) {
      status.textContent = `Not saved: ${error.message}`;
      status.className = "error";
    },
    onSaved() {
      status.textContent = "Saved.";
      status.className = "muted";
      root.dataset.saved = String(Number(root.dataset.saved || 0) + 1);
    },
  });

  const submit = () => {
    if (!shown) return;
    if (!config.multi_label && selected.size !== 1) {
      status.textContent = "Choose a label first.";
      return;
    }
    const value = { choices: config.labels.map((l) => l.name).filter((name) => selected.has(name)) };
    const proposal = shown.item.proposal
      ? { value: shown.item.proposal.value, model_version_id: shown.item.proposal.model_version_id ?? null }
      : null;
    labeledHere += 1;
    counter.textContent = String(labeledHere);
    queue.submit({ value, activeMs: timer.read(), proposal });
  };

  const choose = (name) => {
    if (!shown) return;
    if (config.multi_label) {
      selected.has(name) ? selected.delete(name) : selected.add(name);
      render();
    } else {
      selected = new Set([name]);
      render();
      submit();
    }
  };

  const skip = () => {
    if (shown) queue.skip();
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
  ]);
  for (const label of config.labels) if (label.hotkey) keymap.set(label.hotkey.toLowerCase(), () => choose(label.name));
  bindHotkeys(document, keymap);
  window.addEventListener("pagehide", () => queue.release());

  queue.start();
}
