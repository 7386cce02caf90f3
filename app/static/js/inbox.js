// Triage inbox keyboard shortcuts: J / K move between items, A acknowledges, S assigns,
// R opens "resolve", / goes to the search box. Keys are ignored while typing in a field.
(function () {
  "use strict";
  function items() { return Array.prototype.slice.call(document.querySelectorAll(".inbox-item")); }
  function current() {
    var active = document.activeElement;
    return active && active.closest ? active.closest(".inbox-item") : null;
  }
  function move(step) {
    var list = items();
    if (!list.length) { return; }
    var index = list.indexOf(current());
    var next = list[Math.min(list.length - 1, Math.max(0, index < 0 ? 0 : index + step))];
    next.focus();
    next.scrollIntoView({ block: "nearest" });
  }
  function act(item, key) {
    if (!item) { return; }
    if (key === "a") {
      var ack = item.querySelector("form[action*='/acknowledge'] button");
      if (ack) { ack.click(); }
    } else if (key === "s") {
      var select = item.querySelector("select[name='assignee']");
      if (select) { select.focus(); }
    } else if (key === "r") {
      var details = item.querySelector("details.resolve");
      if (details) { details.open = true; var action = details.querySelector("select"); if (action) { action.focus(); } }
    }
  }
  document.addEventListener("keydown", function (event) {
    var target = event.target;
    if (event.ctrlKey || event.metaKey || event.altKey) { return; }
    if (target && /^(INPUT|SELECT|TEXTAREA|BUTTON)$/.test(target.tagName) && event.key !== "Escape") { return; }
    var key = (event.key || "").toLowerCase();
    if (key === "j") { move(1); event.preventDefault(); }
    else if (key === "k") { move(-1); event.preventDefault(); }
    else if (key === "/") { var box = document.getElementById("inbox-q"); if (box) { box.focus(); event.preventDefault(); } }
    else if (key === "a" || key === "s" || key === "r") { act(current(), key); }
  });
})();
