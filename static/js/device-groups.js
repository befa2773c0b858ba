// The device group form's env var editor: "Add a variable" appends an empty row, "Remove"
// drops a row (the last one is emptied instead), and the rows' labels stay numbered in order.
// Without this script the form still works: one empty row is always there, and a row whose
// name and value are both emptied is dropped by the server.
(function () {
  "use strict";

  var editor = document.querySelector("[data-env-editor]");
  if (!editor) return;
  var rows = editor.querySelector("[data-env-rows]");

  function renumber() {
    rows.querySelectorAll("[data-env-row]").forEach(function (row, index) {
      var number = index + 1;
      row.querySelector('[name="env_name"]').setAttribute("aria-label", "Name of variable " + number);
      row.querySelector('[name="env_value"]').setAttribute("aria-label", "Value of variable " + number);
      row.querySelector("[data-env-remove]").setAttribute("aria-label", "Remove variable " + number);
    });
  }

  function emptyRow() {
    var last = rows.querySelector("[data-env-row]:last-child");
    var row = last.cloneNode(true);
    row.querySelectorAll("input").forEach(function (input) { input.value = ""; });
    return row;
  }

  editor.querySelector("[data-env-add]").addEventListener("click", function () {
    var row = emptyRow();
    rows.appendChild(row);
    renumber();
    row.querySelector('[name="env_name"]').focus();
  });

  rows.addEventListener("click", function (event) {
    var button = event.target.closest("[data-env-remove]");
    if (!button) return;
    var row = button.closest("[data-env-row]");
    if (rows.querySelectorAll("[data-env-row]").length > 1) {
      var next = row.nextElementSibling || row.previousElementSibling;
      row.remove();
      renumber();
      next.querySelector('[name="env_name"]').focus();
    } else {
      row.querySelectorAll("input").forEach(function (input) { input.value = ""; });
      row.querySelector('[name="env_name"]').focus();
    }
  });
})();
