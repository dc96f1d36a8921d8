// The item browser's selection (templates/annotate/partials/_browser_table.html): the header box
// ticks every row of the page; "select all N matching" acts on the filters, so the rows' own
// boxes are greyed out while it is on. Listeners sit on the document: htmx replaces the table.

function rowBoxes(form) {
  return form.querySelectorAll('input[name="ids"]');
}

document.addEventListener("change", (event) => {
  const box = event.target;
  const form = box.closest("#browser-actions");
  if (!form) return;
  if (box.id === "browser-select-page") {
    for (const row of rowBoxes(form)) row.checked = box.checked;
  } else if (box.id === "browser-all-matching") {
    for (const row of rowBoxes(form)) row.disabled = box.checked;
    const page = form.querySelector("#browser-select-page");
    if (page) page.disabled = box.checked;
  }
});

document.addEventListener("submit", (event) => {
  const form = event.target;
  if (form.id !== "browser-actions") return;
  const action = event.submitter && event.submitter.value;
  const all = form.querySelector("#browser-all-matching");
  const ticked = [...rowBoxes(form)].filter((row) => row.checked).length;
  if (!(all && all.checked) && ticked === 0) {
    event.preventDefault();
    window.alert("Tick some items first, or select all matching.");
    return;
  }
  if (action === "gold" && !window.confirm("Make the selected items gold, with their final labels as the true values?")) {
    event.preventDefault();
  }
});
