// Review inbox: keyboard first. The board (#board) is a form of checkboxes; this script moves a
// cursor over it, ticks boxes and presses the form's own buttons, so everything also works without it.
(() => {
  let cursor = 0;

  const board = () => document.getElementById("board");
  const items = () => Array.from(document.querySelectorAll("#board .review-item"));

  function columns(list) {
    if (list.length < 2) return 1;
    const top = list[0].offsetTop;
    const n = list.findIndex((el) => el.offsetTop !== top);
    return n === -1 ? list.length : n;
  }

  function show() {
    const list = items();
    if (!list.length) return;
    cursor = Math.max(0, Math.min(cursor, list.length - 1));
    list.forEach((el, i) => {
      const box = el.querySelector("input[type=checkbox]");
      el.classList.toggle("cursor", i === cursor);
      el.classList.toggle("selected", box.checked);
      const tile = el.querySelector(".tile");
      if (tile) tile.setAttribute("aria-selected", box.checked ? "true" : "false");
    });
    list[cursor].scrollIntoView({ block: "nearest" });
  }

  function press(key) {
    const button = document.querySelector(`#board [data-key="${key}"]`);
    if (button && !button.disabled) button.click();
  }

  function decide(key) {
    const list = items();
    if (!list.length) return;
    if (!list.some((el) => el.querySelector("input[type=checkbox]").checked)) {
      list[cursor].querySelector("input[type=checkbox]").checked = true;  // nothing selected: the photo under the cursor
    }
    press(key);
  }

  document.addEventListener("keydown", (event) => {
    if (!board() || event.altKey || event.ctrlKey || event.metaKey) return;
    const target = event.target;
    if (target && (target.isContentEditable || ["TEXTAREA", "SELECT"].includes(target.tagName) ||
        (target.tagName === "INPUT" && target.type !== "checkbox"))) return;
    const list = items();
    const step = { ArrowLeft: -1, ArrowRight: 1, ArrowUp: -columns(list), ArrowDown: columns(list) }[event.key];
    if (step !== undefined) {
      cursor += step;
    } else if (event.key === " " || event.key === "x") {
      const box = list[cursor] && list[cursor].querySelector("input[type=checkbox]");
      if (box) box.checked = !box.checked;
    } else if (event.key === "a" || event.key === "r") {
      decide(event.key);
    } else if (event.key === "u") {
      press("u");
    } else if (event.key === "n") {
      const next = document.querySelector('#board [data-key="n"]');
      if (next) window.location.assign(next.href);
    } else if (event.key === "Enter") {
      const tile = list[cursor] && list[cursor].querySelector(".tile");
      if (tile) window.location.assign(tile.href);
    } else if (event.key === "?") {
      const legend = document.getElementById("legend");
      if (legend) legend.hidden = !legend.hidden;
    } else {
      return;
    }
    event.preventDefault();
    show();
  });

  // A click selects (the keyboard's space); a double click opens the photo.
  document.addEventListener("click", (event) => {
    const tile = event.target.closest && event.target.closest("#board .review-item .tile");
    if (!tile || event.detail > 1) return;
    event.preventDefault();
    const list = items();
    cursor = list.indexOf(tile.closest(".review-item"));
    const box = list[cursor].querySelector("input[type=checkbox]");
    box.checked = !box.checked;
    show();
  });
  document.addEventListener("dblclick", (event) => {
    const tile = event.target.closest && event.target.closest("#board .review-item .tile");
    if (tile) window.location.assign(tile.href);
  });
  document.addEventListener("change", (event) => {
    if (event.target.closest && event.target.closest("#board .review-item")) show();
  });
  document.addEventListener("htmx:afterSwap", show);
  document.addEventListener("DOMContentLoaded", show);
})();
