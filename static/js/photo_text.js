// Text read in the photo: its boxes drawn over the image, "t" or the button toggles them, and a line of
// the list lights its box. The list itself is plain HTML: the page works without this script.
(() => {
  const KEY = "shoebox.textBoxes";

  function layer() { return document.getElementById("text-layer"); }

  function place() {
    const box = layer();
    const img = document.getElementById("photo");
    if (!box || !img) return;
    const figure = img.closest("figure");
    if (figure && box.parentElement !== figure) figure.appendChild(box);
    box.style.left = `${img.offsetLeft}px`;
    box.style.top = `${img.offsetTop}px`;
    box.style.width = `${img.offsetWidth}px`;
    box.style.height = `${img.offsetHeight}px`;
  }

  function show(visible) {
    const box = layer();
    const button = document.getElementById("text-toggle");
    if (!box) return;
    box.hidden = !visible;
    if (button) button.setAttribute("aria-pressed", String(visible));
    try { window.localStorage.setItem(KEY, visible ? "1" : "0"); } catch (e) { /* private mode */ }
    if (visible) place();
  }

  function light(index, on) {
    const polygon = document.querySelector(`#text-layer polygon[data-line="${index}"]`);
    if (polygon) polygon.classList.toggle("lit", on);
  }

  function start() {
    const box = layer();
    if (!box) return;
    const button = document.getElementById("text-toggle");
    let stored = null;
    try { stored = window.localStorage.getItem(KEY); } catch (e) { /* private mode */ }
    if (button) {
      button.hidden = false;
      button.addEventListener("click", () => show(box.hidden));
    }
    document.querySelectorAll(".text-lines li[data-line]").forEach((li) => {
      li.addEventListener("mouseenter", () => light(li.dataset.line, true));
      li.addEventListener("mouseleave", () => light(li.dataset.line, false));
    });
    const img = document.getElementById("photo");
    if (img && !img.complete) img.addEventListener("load", place);
    show(stored !== "0");
  }

  document.addEventListener("keydown", (event) => {
    if (event.key !== "t" || event.altKey || event.ctrlKey || event.metaKey || !layer()) return;
    const target = event.target;
    if (target && (target.isContentEditable || ["INPUT", "TEXTAREA", "SELECT"].includes(target.tagName))) return;
    show(layer().hidden);
    event.preventDefault();
  });
  window.addEventListener("resize", place);
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
