// Small behaviours every page shares. The pages work without this file.
(function () {
  "use strict";

  // Close open menus on outside click and on Escape (a <details> alone does neither).
  document.addEventListener("click", function (event) {
    document.querySelectorAll("details[data-menu][open]").forEach(function (menu) {
      if (!menu.contains(event.target)) menu.removeAttribute("open");
    });
  });
  document.addEventListener("keydown", function (event) {
    if (event.key !== "Escape") return;
    document.querySelectorAll("details[data-menu][open]").forEach(function (menu) {
      menu.removeAttribute("open");
      var summary = menu.querySelector("summary");
      if (summary) summary.focus();
    });
  });

  // Flash messages: a close button on each, and confirmations (success) leave by themselves.
  document.addEventListener("click", function (event) {
    var button = event.target.closest("[data-dismiss-message]");
    if (!button) return;
    var message = button.closest("[data-message]");
    if (message) message.remove();
  });
  document.querySelectorAll("[data-message].success").forEach(function (message) {
    setTimeout(function () { message.remove(); }, 8000);
  });

  // Copy buttons for one-time secrets.
  document.addEventListener("click", function (event) {
    var button = event.target.closest("[data-copy-target]");
    if (!button) return;
    var source = document.getElementById(button.getAttribute("data-copy-target"));
    if (!source || !navigator.clipboard) return;
    navigator.clipboard.writeText(source.textContent.trim()).then(function () {
      var label = button.textContent;
      button.textContent = "Copied";
      setTimeout(function () { button.textContent = label; }, 1500);
    });
  });
})();
