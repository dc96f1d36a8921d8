// The import page's entry (a file, not an inline script: the Content-Security-Policy allows no inline code).
import { mountImportForm } from "./import.js";

const form = document.querySelector("[data-import-form]");
mountImportForm(form, {
  statusEl: document.querySelector("[data-import-status]"),
  doneUrl: form.dataset.doneUrl,
});
