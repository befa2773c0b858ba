// Developer mode's live node status. The live sidebar (device-live.js) announces every status
// item of the device's stream as a "manifold:node-status" event (the device restates all of
// them to each new watcher); the panel's Status column shows each node's latest, as Node-RED's
// editor does under a node: the dot (fill, shape) and the text. The panel is loaded and
// reloaded by htmx, so the latest statuses are kept here and painted again after every swap.
(function () {
  "use strict";

  var FILLS = ["red", "green", "yellow", "blue", "grey"];
  var latest = {};

  function paint(cell, status) {
    cell.textContent = "";
    if (!status) {
      var none = document.createElement("span");
      none.className = "muted";
      none.textContent = "—";
      cell.appendChild(none);
      cell.removeAttribute("data-fill");
      return;
    }
    var fill = FILLS.indexOf(status.fill) === -1 ? "" : status.fill;
    var wrap = document.createElement("span");
    wrap.className = "node-status";
    var dot = document.createElement("span");
    dot.className = "node-dot" + (fill ? " node-dot-" + fill : "") +
      (status.shape === "ring" ? " node-dot-ring" : "");
    dot.setAttribute("aria-hidden", "true");
    wrap.appendChild(dot);
    var text = document.createElement("span");
    text.className = "node-text";
    text.textContent = String(status.text || "") + (fill ? " (" + fill + ")" : "");
    wrap.appendChild(text);
    cell.appendChild(wrap);
    cell.setAttribute("data-fill", fill || "none");
  }

  function cells() {
    return document.querySelectorAll("#developer-panel [data-dev-node-status]");
  }

  function paintAll() {
    cells().forEach(function (cell) {
      paint(cell, latest[cell.getAttribute("data-dev-node-status")]);
    });
  }

  document.addEventListener("manifold:node-status", function (event) {
    var detail = event.detail || {};
    var id = String(detail.node || "");
    var status = detail.status || {};
    if (!status.text && !status.fill) delete latest[id]; else latest[id] = status;
    cells().forEach(function (cell) {
      if (cell.getAttribute("data-dev-node-status") === id) paint(cell, latest[id]);
    });
  });
  document.addEventListener("htmx:afterSwap", paintAll);
  paintAll();
})();
