// The comment / flag dialog of the labeling page: a note on the item shown, sent to
// POST /api/projects/<id>/items/<item_id>/notes/ (annotate/notes.py). Enter saves, Shift+Enter
// starts a new line, Escape closes; focus stays in the dialog while it is open.

import { openModal } from "./help.js";

export function createNoteDialog({ dialog, projectId, csrfToken, notify }) {
  const form = dialog.querySelector("form");
  const text = form.querySelector("textarea");
  const title = dialog.querySelector("[data-note-title]");
  const error = dialog.querySelector("[data-note-error]");
  let target = null;

  const save = async () => {
    const body = { text: text.value, flagged: target.flagged };
    error.textContent = "";
    let response;
    try {
      response = await fetch(`/api/projects/${projectId}/items/${target.itemId}/notes/`, {
        method: "POST",
        credentials: "same-origin",
        headers: { "Content-Type": "application/json", Accept: "application/json", "X-CSRFToken": csrfToken },
        body: JSON.stringify(body),
      });
    } catch {
      error.textContent = "Not saved: the server cannot be reached. Try again.";
      return;
    }
    const data = await response.json().catch(() => ({}));
    if (!response.ok) {
      error.textContent = data.text ? `Text ${data.text.join(" ")}` : data.detail || `Not saved (HTTP ${response.status}).`;
      text.focus();
      return;
    }
    dialog.close();
    notify(target.flagged ? "Flagged for the lead." : "Comment saved.");
  };

  form.addEventListener("submit", (event) => {
    event.preventDefault();
    save();
  });
  text.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      save();
    }
  });
  dialog.querySelector("[data-close]").addEventListener("click", () => dialog.close());

  return {
    open(itemId, { flagged }) {
      target = { itemId, flagged };
      title.textContent = flagged ? "Flag this item for the lead" : "Comment on this item";
      text.placeholder = flagged ? "What should the lead look at?" : "Your comment";
      text.value = "";
      error.textContent = "";
      openModal(dialog, text);
    },
  };
}
