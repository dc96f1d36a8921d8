// The classification editor (text and image): the item shown as it is, label buttons that toggle
// (multi-label) or choose and submit (single-label). See label.js for the editor interface.

import { mountCanvas, preloadImage } from "../canvas.js";

export function createChoicesEditor({ root, config }) {
  const canvas = mountCanvas(root.querySelector("[data-canvas]"));
  const buttons = new Map();
  for (const button of root.querySelectorAll("[data-label]")) buttons.set(button.dataset.label, button);
  let selected = new Set();
  let history = [];

  const render = () => {
    for (const [name, button] of buttons) button.setAttribute("aria-pressed", selected.has(name) ? "true" : "false");
  };

  return {
    show(item) {
      canvas.show(item);
      const start = item.answer || (item.proposal && item.proposal.value);
      selected = new Set(start ? start.choices : []);
      history = [];
      render();
    },
    clear(message) {
      canvas.clear(message);
    },
    value() {
      if (!config.multi_label && selected.size !== 1) throw new Error("Choose a label first.");
      return { choices: config.labels.map((l) => l.name).filter((name) => selected.has(name)) };
    },
    // Single-label: a label's key chooses it and the item is done ("submit").
    chooseLabel(name) {
      history.push(new Set(selected));
      if (config.multi_label) {
        selected.has(name) ? selected.delete(name) : selected.add(name);
        render();
        return null;
      }
      selected = new Set([name]);
      render();
      return "submit";
    },
    undo() {
      if (!history.length) return false;
      selected = history.pop();
      render();
      return true;
    },
    acceptProposal() {
      return "submit";
    },
    preload(item) {
      preloadImage(item);
    },
    proposalText(proposal) {
      return `Proposed: ${proposal.value.choices.join(", ") || "none"}`;
    },
    keymap: new Map(),
    help: [],
  };
}
