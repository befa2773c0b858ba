// Log panels that htmx refreshes in place ([data-log-tail]): the newest line stays in view
// while the reader is at the bottom; a reader who scrolled up keeps their place.
(function () {
  "use strict";

  var kept = new WeakMap();

  function scroller(container) { return container.querySelector("[data-log-scroll]"); }

  document.addEventListener("htmx:beforeSwap", function (event) {
    var container = event.detail.target;
    if (!container || !container.matches("[data-log-tail]")) return;
    var box = scroller(container);
    if (!box) { kept.set(container, null); return; }
    var atBottom = box.scrollHeight - box.scrollTop - box.clientHeight < 24;
    kept.set(container, atBottom ? null : box.scrollTop);
  });

  document.addEventListener("htmx:afterSwap", function (event) {
    var container = event.detail.target;
    if (!container || !container.matches("[data-log-tail]")) return;
    var box = scroller(container);
    if (!box) return;
    var top = kept.get(container);
    box.scrollTop = top === null || top === undefined ? box.scrollHeight : top;
  });
})();
