// The annotator's history on the labeling page: their answered items, newest first, from
// GET /api/projects/<id>/history/ (keyset pages, each item once with their latest answer).
// "[" (or Alt+←) steps back through it, "]" (Alt+→) forward again toward the queue, and "h"
// opens the list to pick one. `settle()` waits for the submits still on their way, so the item
// just labeled is in the list.

import { openModal } from "./help.js";

function summary(value) {
  if (!value) return "";
  if (value.choices) return value.choices.join(", ") || "no label";
  if (value.boxes) return `${value.boxes.length} ${value.boxes.length === 1 ? "box" : "boxes"}`;
  if (value.spans) return `${value.spans.length} ${value.spans.length === 1 ? "span" : "spans"}`;
  return JSON.stringify(value);
}

function excerpt(item) {
  const text = (item.text || "").replace(/\s+/g, " ").trim();
  return text.length > 80 ? `${text.slice(0, 79)}…` : text;
}

export class History {
  constructor({ projectId, dialog, settle, onPick }) {
    this.url = `/api/projects/${projectId}/history/`;
    this.dialog = dialog;
    this.settle = settle;
    this.onPick = onPick;
    this.entries = [];
    this.nextBefore = null;
    this.loaded = false;
    this.list = dialog.querySelector("[data-history-list]");
    this.more = dialog.querySelector("[data-history-more]");
    this.list.addEventListener("click", (event) => {
      const button = event.target.closest("[data-history-index]");
      if (!button) return;
      dialog.close();
      this.onPick(Number(button.dataset.historyIndex));
    });
    this.more.addEventListener("click", async () => {
      const from = this.entries.length;
      await this.fetchPage();
      this.render();
      const first = this.list.querySelector(`[data-history-index="${from}"]`);
      if (first) first.focus();
    });
    dialog.querySelector("[data-close]").addEventListener("click", () => dialog.close());
  }

  // Forget what was fetched: an answer changed or a new one came, so the order moved.
  invalidate() {
    this.entries = [];
    this.nextBefore = null;
    this.loaded = false;
  }

  async fetchPage() {
    const query = this.nextBefore ? `?before=${this.nextBefore}` : "";
    const response = await fetch(this.url + query, { credentials: "same-origin", headers: { Accept: "application/json" } });
    if (!response.ok) throw new Error(`history: HTTP ${response.status}`);
    const page = await response.json();
    this.entries.push(...page.results);
    this.nextBefore = page.next_before;
    this.loaded = true;
  }

  // The entry at `index` (0: the newest), fetching pages as needed; null past the last one.
  async entry(index) {
    if (!this.loaded) {
      await this.settle();
      this.invalidate();
      await this.fetchPage();
    }
    while (index >= this.entries.length && this.nextBefore) await this.fetchPage();
    return this.entries[index] || null;
  }

  render() {
    const items = this.entries.map((entry, index) => {
      const li = document.createElement("li");
      const button = document.createElement("button");
      button.type = "button";
      button.dataset.historyIndex = String(index);
      button.dataset.itemId = String(entry.item.id);
      const id = document.createElement("strong");
      id.textContent = entry.item.external_id;
      const answer = document.createElement("span");
      answer.textContent = ` — ${summary(entry.item.answer)}`;
      const text = document.createElement("span");
      text.className = "muted small";
      text.textContent = excerpt(entry.item);
      button.append(id, answer, document.createElement("br"), text);
      li.append(button);
      return li;
    });
    if (!items.length) {
      const li = document.createElement("li");
      li.className = "muted";
      li.textContent = "Nothing labeled yet in this project.";
      items.push(li);
    }
    this.list.replaceChildren(...items);
    this.more.hidden = !this.nextBefore;
  }

  async openList() {
    this.loaded = false;
    await this.entry(0);
    this.render();
    openModal(this.dialog, this.list.querySelector("button") || this.dialog.querySelector("[data-close]"));
  }
}
