// The "?" overlay: every key of the labeling page (the shell's, each label's, the editor's `help`)
// in one modal <dialog>. A modal dialog keeps focus inside it (the page behind is inert), Escape
// closes it and focus goes back to where it was. hotkeys.js ignores keys typed in an open dialog.

export function openModal(dialog, focusEl) {
  const before = document.activeElement;
  dialog.addEventListener(
    "close",
    () => {
      if (before && before.isConnected && typeof before.focus === "function") before.focus();
    },
    { once: true },
  );
  dialog.showModal();
  if (focusEl) focusEl.focus();
}

function row(keys, what, note) {
  const tr = document.createElement("tr");
  const keyCell = document.createElement("th");
  keyCell.scope = "row";
  for (const [i, part] of String(keys).split(" / ").entries()) {
    if (i) keyCell.append(" / ");
    const kbd = document.createElement("kbd");
    kbd.textContent = part;
    keyCell.append(kbd);
  }
  const whatCell = document.createElement("td");
  whatCell.textContent = what;
  if (note) {
    const small = document.createElement("span");
    small.className = "muted small";
    small.textContent = ` (${note})`;
    whatCell.append(small);
  }
  tr.append(keyCell, whatCell);
  return tr;
}

function section(title, rows) {
  const body = document.createElement("tbody");
  const head = document.createElement("tr");
  const cell = document.createElement("th");
  cell.colSpan = 2;
  cell.className = "help-section";
  cell.textContent = title;
  head.append(cell);
  body.append(head);
  for (const [keys, what, note] of rows) body.append(row(keys, what, note));
  return body;
}

// `shell`: [[keys, what], …]; `labels`: the project's labels; `editor`: the editor's help list.
export function createHelp({ dialog, shell, labels, editor }) {
  const table = dialog.querySelector("[data-help-rows]");
  const labelKeys = new Set(labels.filter((l) => l.hotkey).map((l) => l.hotkey.toLowerCase()));
  const shellRows = shell.map(([keys, what, key]) => [
    keys,
    what,
    key && labelKeys.has(key) ? "a label has this key, and the label wins: use the button" : "",
  ]);
  table.replaceChildren(
    section("This page", shellRows),
    section(
      "Labels",
      labels.filter((l) => l.hotkey).map((l) => [l.hotkey, `label “${l.name}”`]),
    ),
    ...(editor && editor.length ? [section("This editor", editor)] : []),
  );
  dialog.querySelector("[data-close]").addEventListener("click", () => dialog.close());
  return {
    open() {
      openModal(dialog, dialog.querySelector("[data-close]"));
    },
    close() {
      if (dialog.open) dialog.close();
    },
  };
}
