// Live updates for team pages: listen on /ws/teams/<slug>/events/ and ask htmx to re-fetch
// every region marked data-live-refresh. Events only say *that* something changed; the page
// re-reads the truth from the server, so a lost or duplicated event never shows wrong data.
// Without websockets (or htmx) the page still works; it just needs a reload.
(function () {
  "use strict";

  var root = document.querySelector("[data-live-team]");
  if (!root || !("WebSocket" in window)) return;

  var status = document.querySelector("[data-live-status]");
  if (status) status.hidden = false;
  var slug = root.getAttribute("data-live-team");
  var scheme = window.location.protocol === "https:" ? "wss://" : "ws://";
  var url = scheme + window.location.host + "/ws/teams/" + encodeURIComponent(slug) + "/events/";
  var REFUSED = [4403, 4404];
  var ACCESS_CHANGED = "team.access.changed";
  var delay = 1000;
  var refreshTimer = null;

  function setStatus(state, text) {
    if (!status) return;
    status.setAttribute("data-state", state);
    var label = status.querySelector("[data-live-label]");
    if (label) label.textContent = text;
  }

  function refresh() {
    // Coalesce bursts (one service may write several events) into one re-fetch.
    if (refreshTimer) return;
    refreshTimer = setTimeout(function () {
      refreshTimer = null;
      if (!window.htmx) return;
      document.querySelectorAll("[data-live-refresh]").forEach(function (region) {
        // An empty value means "this page as it is now", filters pushed by htmx included.
        var source = region.getAttribute("data-live-refresh") || window.location.href;
        // Details the reader opened stay open: the fresh HTML comes in closed.
        var open = Array.prototype.map.call(
          region.querySelectorAll("details[open][id]"),
          function (details) { return details.id; }
        );
        var request = window.htmx.ajax("GET", source, { target: region, swap: "innerHTML" });
        if (open.length && request && request.then) {
          request.then(function () {
            open.forEach(function (id) {
              var details = document.getElementById(id);
              if (details) details.open = true;
            });
          });
        }
      });
    }, 150);
  }

  function refreshNavigation() {
    // The user's own role changed: the team navigation shows what they may open, so take it
    // from a fresh copy of this page (a page they may no longer open answers 403: kept as is).
    var nav = document.getElementById("team-nav");
    if (!nav || !window.htmx) return;
    window.htmx.ajax("GET", window.location.href, { target: nav, select: "#team-nav", swap: "outerHTML" });
  }

  function connect() {
    var socket;
    try {
      socket = new WebSocket(url);
    } catch (error) {
      setStatus("offline", "Live updates unavailable");
      return;
    }
    socket.addEventListener("open", function () {
      delay = 1000;
      setStatus("live", "Live");
    });
    socket.addEventListener("message", function (event) {
      var data;
      try { data = JSON.parse(event.data); } catch (error) { return; }
      if (data && data.kind) {
        document.dispatchEvent(new CustomEvent("manifold:team-event", { detail: data }));
        if (data.kind === ACCESS_CHANGED) refreshNavigation();
        refresh();
      }
    });
    socket.addEventListener("close", function (event) {
      // A refusal (4403 no permission, 4404 no such team) completes the handshake so its code
      // reaches us: retrying cannot help. Anything else (1006, 1001, 1011) is a lost socket.
      if (REFUSED.indexOf(event.code) !== -1) {
        setStatus("offline", "Live updates off");
        return;
      }
      setStatus("offline", "Reconnecting…");
      var wait = delay + Math.random() * delay;
      delay = Math.min(delay * 2, 30000);
      setTimeout(function () {
        connect();
        // Catch up on whatever happened while the socket was down.
        refresh();
      }, wait);
    });
  }

  connect();
})();
