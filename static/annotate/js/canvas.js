// Shows one item: text as text (never HTML), or an image scaled to fit without blurry upscaling.

export function mountCanvas(rootEl) {
  const textEl = rootEl.querySelector("[data-item-text]");
  const imageEl = rootEl.querySelector("[data-item-image]");
  const metaEl = rootEl.querySelector("[data-item-meta]");

  function fitImage(item) {
    const box = rootEl.getBoundingClientRect();
    const maxW = Math.max(box.width - 16, 64);
    const maxH = Math.max(window.innerHeight * 0.6, 64);
    const w = item.width || imageEl.naturalWidth;
    const h = item.height || imageEl.naturalHeight;
    if (!w || !h) return;
    let scale = Math.min(maxW / w, maxH / h);
    // Small images grow by whole steps with hard pixel edges; large ones only shrink.
    if (scale >= 1) scale = Math.max(1, Math.floor(scale));
    imageEl.style.width = `${Math.round(w * scale)}px`;
    imageEl.style.height = `${Math.round(h * scale)}px`;
    imageEl.classList.toggle("pixelated", scale > 1);
  }

  return {
    show(item) {
      rootEl.dataset.itemId = item.id;
      metaEl.textContent = item.external_id;
      if (item.image_url) {
        textEl.hidden = true;
        textEl.textContent = "";
        imageEl.hidden = false;
        imageEl.alt = `item ${item.external_id}`;
        imageEl.src = item.image_url;
        fitImage(item);
      } else {
        imageEl.hidden = true;
        imageEl.removeAttribute("src");
        textEl.hidden = false;
        textEl.textContent = item.text;
      }
    },
    clear(message) {
      delete rootEl.dataset.itemId;
      imageEl.hidden = true;
      textEl.hidden = false;
      textEl.textContent = message;
      metaEl.textContent = "";
    },
  };
}

export function preloadImage(item) {
  if (item && item.image_url) {
    const img = new Image();
    img.src = item.image_url;
  }
}
