// The import page: send the form with upload progress, then follow the import job until it ends.

const POLL_MS = 1000;

export function mountImportForm(form, { statusEl, doneUrl }) {
  const bar = statusEl.querySelector("[data-import-progress]");
  const message = statusEl.querySelector("[data-import-message]");
  const show = (value, text, kind = "") => {
    statusEl.hidden = false;
    bar.value = value;
    message.textContent = text;
    message.className = kind;
  };

  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const button = form.querySelector("button[type=submit]");
    button.disabled = true;
    const request = new XMLHttpRequest();
    request.open("POST", form.action || window.location.href);
    request.setRequestHeader("Accept", "application/json");
    request.upload.addEventListener("progress", (e) => {
      if (e.lengthComputable) {
        show(Math.round((50 * e.loaded) / e.total), `Uploading… ${Math.round((100 * e.loaded) / e.total)}%`);
      }
    });
    request.addEventListener("load", () => {
      let job;
      try {
        job = JSON.parse(request.responseText);
      } catch {
        job = { status: "failed", error: `the server answered ${request.status}` };
      }
      if (request.status >= 400 || job.status === "failed") {
        button.disabled = false;
        show(0, `Nothing was imported: ${job.error}`, "error");
        return;
      }
      follow(job);
    });
    request.addEventListener("error", () => {
      button.disabled = false;
      show(0, "The upload failed: the server could not be reached.", "error");
    });
    show(0, "Uploading…");
    request.send(new FormData(form));
  });

  function follow(job) {
    if (job.status === "succeeded") {
      const updated = job.rows_done - job.items_created;
      const also = updated > 0 ? `, and gave ${updated} existing items their boxes or spans` : "";
      show(100, `Imported ${job.items_created} items${also}.`, "success");
      const link = document.createElement("a");
      link.href = doneUrl;
      link.textContent = " Back to the project";
      message.append(link);
      return;
    }
    if (job.status === "failed") {
      form.querySelector("button[type=submit]").disabled = false;
      show(0, `Nothing was imported: ${job.error}`, "error");
      return;
    }
    const total = job.rows_total ? ` (${job.rows_done} of ${job.rows_total} rows)` : "";
    show(50 + Math.round(job.progress / 2), `Importing in the background… ${job.progress}%${total}`);
    setTimeout(async () => {
      const response = await fetch(job.url, { headers: { Accept: "application/json" } });
      follow(await response.json());
    }, POLL_MS);
  }
}
