// People: the "who is this?" queue, keyboard first, and the face boxes on the photo page.
// The queue's board (#who) is plain forms and links; this script only moves a cursor over its faces,
// focuses the name field and presses the board's own buttons, so the page also works without it.
(() => {
  // -- the review queue ------------------------------------------------------------------------
  let cursor = 0;
  const board = () => document.getElementById("who");
  const faces = () => Array.from(document.querySelectorAll("#who .who-face"));
  const field = () => document.getElementById("who-name");

  function show() {
    const list = faces();
    if (!list.length) return;
    cursor = Math.max(0, Math.min(cursor, list.length - 1));
    list.forEach((el, i) => el.classList.toggle("cursor", i === cursor));
  }

  function focusField() {
    const input = field();
    if (input) { input.focus(); input.select(); }
  }

  function press(selector) {
    const el = document.querySelector(selector);
    if (el && !el.disabled) el.click();
  }

  // Tab completes the name typed so far with the first suggestion that starts with it.
  function complete(input) {
    const typed = input.value.trim().toLowerCase();
    if (!typed) return false;
    const options = Array.from(document.querySelectorAll("#people-names option")).map((o) => o.value);
    const match = options.find((name) => name.toLowerCase().startsWith(typed));
    if (!match || match === input.value) return false;
    input.value = match;
    return true;
  }

  document.addEventListener("keydown", (event) => {
    if (event.altKey || event.ctrlKey || event.metaKey) return;
    const target = event.target;
    if (board() && target && target.id === "who-name") {
      if (event.key === "Escape") { target.blur(); event.preventDefault(); show(); }
      else if (event.key === "Tab" && !event.shiftKey && complete(target)) event.preventDefault();
      return;
    }
    if (target && (target.isContentEditable || ["INPUT", "TEXTAREA", "SELECT"].includes(target.tagName))) return;
    if (!board()) {
      if (event.key === "f" && document.getElementById("face-layer")) { toggleBoxes(); event.preventDefault(); }
      return;
    }
    const list = faces();
    if (event.key === "ArrowLeft" || event.key === "ArrowUp") cursor -= 1;
    else if (event.key === "ArrowRight" || event.key === "ArrowDown") cursor += 1;
    else if (event.key === "x" || event.key === "Delete") {
      const face = list[cursor];
      if (face) press(`#who .who-face[data-face="${face.dataset.face}"] button.remove`);
    } else if (event.key === "s") press('#who [data-key="s"]');
    else if (event.key === "h") press('#who [data-key="h"]');
    else if (event.key === "o") {
      const link = list[cursor] && list[cursor].querySelector("a.face");
      if (link) window.location.assign(link.href);
    } else if (event.key === "i" || event.key === "/" || event.key === "Enter") focusField();
    else if (event.key === "?") {
      const legend = document.getElementById("legend");
      if (legend) legend.hidden = !legend.hidden;
    } else return;
    event.preventDefault();
    show();
  });

  // A new board (named, skipped, hidden, a face taken out): the name field again, unless focus is inside it.
  // Not when the names for completion arrive: that request starts when the field takes focus, and its
  // answer must not pull the focus back after Escape left the field.
  document.addEventListener("htmx:afterSettle", (event) => {
    const who = board();
    if (!who || (event.target && event.target.id === "people-names")) return;
    show();
    if (!who.contains(document.activeElement)) focusField();
  });

  // -- face boxes on the photo page ---------------------------------------------------------------
  const KEY = "shoebox.faceBoxes";

  function placeBoxes() {
    const layer = document.getElementById("face-layer");
    const img = document.getElementById("photo");
    if (!layer || !img) return;
    layer.style.left = `${img.offsetLeft}px`;
    layer.style.top = `${img.offsetTop}px`;
    layer.style.width = `${img.offsetWidth}px`;
    layer.style.height = `${img.offsetHeight}px`;
    layer.querySelectorAll(".face-box").forEach((box) => {
      box.style.left = `${parseFloat(box.dataset.x) * 100}%`;
      box.style.top = `${parseFloat(box.dataset.y) * 100}%`;
      box.style.width = `${parseFloat(box.dataset.w) * 100}%`;
      box.style.height = `${parseFloat(box.dataset.h) * 100}%`;
    });
  }

  function setBoxes(visible) {
    const layer = document.getElementById("face-layer");
    if (!layer) return;
    layer.hidden = !visible;
    document.querySelectorAll(".face-toggle").forEach((b) => b.setAttribute("aria-pressed", visible ? "true" : "false"));
    try { localStorage.setItem(KEY, visible ? "on" : "off"); } catch (e) { /* private mode: not remembered */ }
  }

  function toggleBoxes() {
    const layer = document.getElementById("face-layer");
    if (layer) setBoxes(layer.hidden);
  }

  document.addEventListener("click", (event) => {
    if (event.target.closest && event.target.closest(".face-toggle")) toggleBoxes();
  });

  function startBoxes() {
    const layer = document.getElementById("face-layer");
    if (!layer) return;
    let stored = null;
    try { stored = localStorage.getItem(KEY); } catch (e) { stored = null; }
    setBoxes(stored !== "off");
    placeBoxes();
    const img = document.getElementById("photo");
    if (img && !img.complete) img.addEventListener("load", placeBoxes);
    window.addEventListener("resize", placeBoxes);
  }

  function start() {
    show();
    if (board() && !(field() && document.activeElement === field())) focusField();
    startBoxes();
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
