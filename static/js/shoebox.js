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
