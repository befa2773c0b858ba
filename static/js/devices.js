// Fleet table: select all, a count of the selection, the bulk action's own field, and the
// selection kept across live refreshes (live.js swaps the table's HTML in place).
(function () {
  "use strict";

  var form = document.querySelector("[data-bulk-form]");
  if (!form) return;
  var counter = form.querySelector("[data-selected-count]");
  var actionSelect = form.querySelector("[data-bulk-action]");
  var selected = {};

  function checks() { return document.querySelectorAll("[data-device-check]"); }

  function update() {
    var count = 0;
    checks().forEach(function (box) {
      if (box.checked) count += 1;
    });
    if (counter) {
      counter.textContent = count ? count + " selected" : "Select devices to act on them.";
    }
    var all = document.querySelector("[data-select-all]");
    if (all) {
      var total = checks().length;
      all.checked = total > 0 && count === total;
      all.indeterminate = count > 0 && count < total;
    }
  }

  function showFields() {
    var action = actionSelect ? actionSelect.value : "";
    form.querySelectorAll("[data-bulk-for]").forEach(function (field) {
      var wanted = field.getAttribute("data-bulk-for").split(" ");
      field.hidden = wanted.indexOf(action) === -1;
    });
  }

  document.addEventListener("change", function (event) {
    var target = event.target;
    if (target.matches("[data-select-all]")) {
      checks().forEach(function (box) {
        box.checked = target.checked;
        selected[box.value] = box.checked;
      });
    } else if (target.matches("[data-device-check]")) {
      selected[target.value] = target.checked;
    } else if (target === actionSelect) {
      showFields();
    }
    update();
  });

  document.addEventListener("htmx:afterSwap", function (event) {
    if (!event.target || event.target.id !== "fleet-table") return;
    checks().forEach(function (box) { box.checked = !!selected[box.value]; });
    update();
  });

  showFields();
  update();
})();
