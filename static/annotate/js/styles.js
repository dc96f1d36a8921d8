// Colours and widths that come from data, set through the CSSOM: the Content-Security-Policy
// (config/settings.py CONTENT_SECURITY_POLICY) allows no style attribute in the markup, and the
// CSSOM is not markup. data-label-colour: a label button's colour; data-swatch: a swatch's
// background; data-share: a bar's width in percent.

export function applyDataStyles(root = document) {
  for (const el of root.querySelectorAll("[data-label-colour]")) {
    el.style.setProperty("--label-colour", el.dataset.labelColour);
  }
  for (const el of root.querySelectorAll("[data-swatch]")) {
    el.style.background = el.dataset.swatch;
  }
  for (const el of root.querySelectorAll("[data-share]")) {
    el.style.width = `${Number(el.dataset.share)}%`;
  }
}

applyDataStyles();
// Content that htmx swaps in later gets its styles too.
document.addEventListener("htmx:afterSwap", (event) => applyDataStyles(event.target));
