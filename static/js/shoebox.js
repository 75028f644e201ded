// Keyboard navigation on the photo page: ← newer, → older, Esc back to the grid.
document.addEventListener("keydown", (event) => {
  if (event.altKey || event.ctrlKey || event.metaKey) return;
  const target = event.target;
  if (target && (target.isContentEditable || ["INPUT", "TEXTAREA", "SELECT"].includes(target.tagName))) return;
  const go = (selector) => {
    const link = document.querySelector(selector);
    if (link) { event.preventDefault(); window.location.assign(link.href); }
  };
  if (event.key === "ArrowLeft") go("a#prev");
  else if (event.key === "ArrowRight") go("a#next");
  else if (event.key === "Escape") go("nav.pager a:not([id])");
});

// A select marked data-autosubmit submits its form when changed (the grid's filters); one with
// data-clears="NAME" empties that field of the form first (a new library: its folders differ).
// Markup carries no inline handlers: the Content-Security-Policy allows scripts from files only.
document.addEventListener("change", (event) => {
  const field = event.target;
  if (!(field instanceof HTMLSelectElement) || !field.hasAttribute("data-autosubmit") || !field.form) return;
  const cleared = field.dataset.clears && field.form.elements.namedItem(field.dataset.clears);
  if (cleared) cleared.value = "";
  field.form.submit();
});
