(function () {
  "use strict";
  // Clip gallery: sort by a per-clip score (worst first) and show one page at a time.
  // Without this script every clip is listed; with it, nothing is dropped: all pages are reachable.
  var grid = document.getElementById("gallery");
  if (!grid) { return; }
  var cards = Array.prototype.slice.call(grid.querySelectorAll("article.card"));
  var perPage = parseInt(grid.getAttribute("data-page-size"), 10) || 48;
  var sort = document.getElementById("sort");
  var info = document.getElementById("gallery-info");
  var pagers = [document.getElementById("pager-top"), document.getElementById("pager")];
  var order = cards.slice();
  var page = 0;

  function value(card, col, dir) {
    var raw = card.getAttribute("data-v" + col);
    if (raw === null || raw === "") { return null; }
    var v = parseFloat(raw);
    if (!isFinite(v)) { return null; }
    return dir === "abs" ? Math.abs(v) : v;
  }

  function position(card) { return parseInt(card.getAttribute("data-order"), 10); }

  function applySort() {
    var choice = sort ? sort.value : "order";
    order = cards.slice();
    if (choice !== "order") {
      var dir = sort.options[sort.selectedIndex].getAttribute("data-dir");
      order.sort(function (a, b) {
        var x = value(a, choice, dir), y = value(b, choice, dir);
        if (x === null || y === null) {
          if (x === y) { return position(a) - position(b); }
          return x === null ? 1 : -1; // clips without a value go last
        }
        var d = dir === "asc" ? x - y : y - x;
        return d !== 0 ? d : position(a) - position(b);
      });
    }
    order.forEach(function (c) { grid.appendChild(c); });
    page = 0;
    show();
  }

  function button(label, target, current, disabled) {
    var b = document.createElement("button");
    b.type = "button";
    b.textContent = label;
    if (current) { b.setAttribute("aria-current", "page"); }
    if (disabled) { b.disabled = true; }
    b.addEventListener("click", function () { page = target; show(); grid.scrollIntoView({block: "nearest"}); });
    return b;
  }

  function show() {
    var pages = Math.max(1, Math.ceil(order.length / perPage));
    page = Math.min(Math.max(page, 0), pages - 1);
    var first = page * perPage, last = Math.min(order.length, first + perPage);
    order.forEach(function (card, i) {
      var visible = i >= first && i < last;
      card.hidden = !visible;
      var v = card.querySelector("video");
      if (v) {
        if (visible && v.getAttribute("preload") !== "metadata") { v.setAttribute("preload", "metadata"); }
        if (!visible && !v.paused) { v.pause(); }
      }
    });
    if (info) {
      info.textContent = pages > 1
        ? "Showing clips " + (first + 1) + "\u2013" + last + " of " + order.length + " (page " + (page + 1) + " of " + pages + ", " + perPage + " per page)."
        : "All " + order.length + " clips are shown.";
    }
    pagers.forEach(function (nav) {
      if (!nav) { return; }
      while (nav.firstChild) { nav.removeChild(nav.firstChild); }
      nav.hidden = pages < 2;
      if (pages < 2) { return; }
      nav.appendChild(button("\u2039 prev", page - 1, false, page === 0));
      for (var p = 0; p < pages; p++) { nav.appendChild(button(String(p + 1), p, p === page, false)); }
      nav.appendChild(button("next \u203a", page + 1, false, page === pages - 1));
    });
  }

  if (sort) { sort.addEventListener("change", applySort); }
  document.documentElement.setAttribute("data-gallery", "ready");
  applySort();
})();
