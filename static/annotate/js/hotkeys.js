// One declarative keymap table; keys typed into inputs are ignored.
//
// A key's name is its `event.key` (a single character lower-cased, so "s" and "S" are one key),
// with "Ctrl+" (Ctrl or Cmd), "Alt+" and, for named keys only, "Shift+" before it:
// "Enter", "s", "?", "Ctrl+z", "Shift+ArrowRight". An action may return false to let the key
// through (its default is then not prevented).

export function keyName(event) {
  const single = event.key.length === 1;
  let name = single ? event.key.toLowerCase() : event.key;
  if (event.shiftKey && !single) name = `Shift+${name}`;
  if (event.altKey) name = `Alt+${name}`;
  if (event.ctrlKey || event.metaKey) name = `Ctrl+${name}`;
  return name;
}

export function bindHotkeys(root, keymap) {
  const handler = (event) => {
    if (event.defaultPrevented || event.isComposing) return;
    const target = event.target;
    if (target.closest && target.closest("input, textarea, select, [contenteditable=true], dialog[open]")) return;
    const action = keymap.get(keyName(event));
    if (!action) return;
    if (action(event) === false) return;
    event.preventDefault();
  };
  root.addEventListener("keydown", handler);
  return () => root.removeEventListener("keydown", handler);
}
