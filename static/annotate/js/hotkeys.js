// One declarative keymap table; keys typed into inputs are ignored.

export function bindHotkeys(root, keymap) {
  const handler = (event) => {
    if (event.defaultPrevented || event.ctrlKey || event.metaKey || event.altKey) return;
    const target = event.target;
    if (target.closest && target.closest("input, textarea, select, [contenteditable=true]")) return;
    const action = keymap.get(event.key.length === 1 ? event.key.toLowerCase() : event.key);
    if (!action) return;
    event.preventDefault();
    action(event);
  };
  root.addEventListener("keydown", handler);
  return () => root.removeEventListener("keydown", handler);
}
