"""The browser side of the browser benchmarks: Debian's chromium launched the same way by each, a
logged-in session handed to it as a cookie, and the page script that times, inside the page, a key
press to the next item painted.

The timing (`PAINT_TIMER`, installed once the labeling page is ready): a capturing keydown
listener on the document notes `performance.now()` for Enter (it runs before the page's own
bubbling hotkey listener, so before the submit); a MutationObserver on `[data-canvas]`'s
`data-item-id` sees the swap (the shell sets it as it shows the next item, in the same task as
the editor's show()); the observer then asks for a `requestAnimationFrame` and notes the time in
its callback, the start of the first frame that paints the new item. Two times are kept per
swap: `frame`, that first frame, and `painted`, the first frame once every `<img>` in the canvas
has decoded (for text they are the same; for an image whose file had not arrived they differ),
with what the editor had drawn by then (`data-box-count` of the box editor's stage, or
`data-span-count` of the text). For an image, chromium's Element Timing entry for the new picture
(`elementtiming` is set on the canvas's images) gives a third time, `rendered`: when the
compositor actually showed it; it checks `painted`, which can only be a frame late.
"""

import os

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run",
]  # fmt: skip

PAINT_TIMER = """
() => {
  const canvas = document.querySelector('[data-canvas]');
  window.__keys = [];
  window.__swaps = [];
  window.__rendered = [];
  // Element Timing: when chromium actually rendered each image (renderTime), by its URL.
  for (const img of canvas.querySelectorAll('img')) img.setAttribute('elementtiming', 'item-image');
  new PerformanceObserver((list) => {
    for (const entry of list.getEntries()) {
      window.__rendered.push([entry.url, entry.renderTime || entry.loadTime]);
    }
  }).observe({ type: 'element', buffered: false });
  document.addEventListener('keydown', (event) => {
    if (event.key === 'Enter') window.__keys.push(performance.now());
  }, true);
  new MutationObserver(() => {
    const id = canvas.dataset.itemId;
    const shown = [...canvas.querySelectorAll('img')].find((img) => !img.hidden && img.getAttribute('src'));
    const swap = {
      id, swapped: performance.now(), frame: null, painted: null, images: 0, drawn: null,
      url: shown ? new URL(shown.getAttribute('src'), location.href).href : null,
    };
    window.__swaps.push(swap);
    requestAnimationFrame(() => { swap.frame = performance.now(); });
    const pending = [...canvas.querySelectorAll('img')]
      .filter((img) => !img.hidden && img.getAttribute('src'))
      .map((img) => (img.complete && img.naturalWidth ? null : img.decode().catch(() => {})))
      .filter(Boolean);
    swap.images = pending.length;
    Promise.all(pending).then(() => requestAnimationFrame(() => {
      swap.painted = performance.now();
      // What the editor drew by then: its boxes (the box editor's stage) or spans (the text).
      const drawn = canvas.querySelector('[data-editor-stage]:not([hidden])')?.dataset.boxCount
        ?? canvas.querySelector('[data-item-text]:not([hidden])')?.dataset.spanCount;
      swap.drawn = drawn === undefined ? null : Number(drawn);
    }));
  }).observe(canvas, { attributes: true, attributeFilter: ['data-item-id'] });
}
"""

# What PAINT_TIMER noted: one row per Enter and the swap it caused (the first swap after it).
PAINT_READ = """
() => window.__keys.map((key) => {
  const swap = window.__swaps.find((s) => s.swapped >= key);
  if (!swap) return [key, null, null, null, 0, null, null];
  const rendered = swap.url && window.__rendered.find(([url, t]) => url === swap.url && t >= key);
  return [key, swap.id, swap.frame, swap.painted, swap.images, swap.drawn, rendered ? rendered[1] : null];
})
"""


def chromium_launch(playwright):
    """Debian's chromium, headless, with the flags every browser benchmark uses."""
    return playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)


def session_context(browser, *, base_url: str, cookie: str, viewport=(1280, 900)):
    """A browser context already logged in: `cookie` is "name=value" (bench.harness.api.session_cookie)."""
    name, value = cookie.split("=", 1)
    context = browser.new_context(viewport={"width": viewport[0], "height": viewport[1]})
    context.add_cookies([{"name": name, "value": value, "url": base_url}])
    return context


def browser_pids(procs, *, servers: set[int]) -> set[int]:
    """This process's descendants except the `servers` (gunicorn's master) and theirs: the
    Playwright driver and the chromium it started, the browser part of a CpuMeter. Other people's
    chromium on the machine is not ours."""
    children: dict[int, list[int]] = {}
    for pid, proc in procs.items():
        children.setdefault(proc.ppid, []).append(pid)
    found, todo = set(), [os.getpid()]
    while todo:
        for child in children.get(todo.pop(), ()):
            if child not in found and child not in servers:
                found.add(child)
                todo.append(child)
    return found
