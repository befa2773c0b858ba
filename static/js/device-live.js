// The device page's live sidebar: debug messages, node status and log lines streamed from the
// device (ws/teams/<team>/devices/<id>/live/). The DOM keeps the last MAX items; a gap in the
// sequence is shown as "N messages not shown", never skipped silently. After a lost socket it
// reconnects with backoff and asks for what it missed (?since=<last seq>&epoch=<epoch>).
// The page's Logs card ([data-device-logs]) shows the same stream's log items (and its gaps),
// unaffected by the sidebar's pause, clear and filters.
(function () {
  "use strict";

  var root = document.querySelector("[data-device-live]");
  if (!root || !("WebSocket" in window)) return;

  var MAX = 500;
  var REFUSED = [4403, 4404];
  var list = root.querySelector("[data-stream-list]");
  var empty = root.querySelector("[data-stream-empty]");
  var statusBox = root.querySelector("[data-stream-status]");
  var statusLabel = root.querySelector("[data-stream-label]");
  var pauseButton = root.querySelector("[data-stream-pause]");
  var pausedNote = root.querySelector("[data-stream-paused]");
  var pausedCount = root.querySelector("[data-paused-count]");
  var nodeList = root.querySelector("[data-node-status]");
  var nodeCount = root.querySelector("[data-node-count]");
  var path = root.getAttribute("data-device-live");
  var scheme = window.location.protocol === "https:" ? "wss://" : "ws://";
  var lastSeq = null;
  var epoch = "";
  var delay = 1000;
  var paused = false;
  var held = [];
  var nodes = {};
  var logCard = document.querySelector("[data-device-logs]");
  var logList = logCard && logCard.querySelector("[data-log-list]");
  var logEmpty = logCard && logCard.querySelector("[data-log-empty]");

  function setStatus(state, text) {
    statusBox.setAttribute("data-state", state);
    statusLabel.textContent = text;
  }

  function timeText(seconds) {
    var date = typeof seconds === "number" ? new Date(seconds * 1000) : new Date(seconds);
    if (isNaN(date.getTime())) return "";
    return date.toLocaleTimeString([], { hour12: false }) + "." +
      String(date.getMilliseconds()).padStart(3, "0");
  }

  function element(tag, className, text) {
    var node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }

  function pretty(value) {
    if (typeof value !== "string") return JSON.stringify(value, null, 2);
    try { return JSON.stringify(JSON.parse(value), null, 2); } catch (error) { return value; }
  }

  function trim() {
    while (list.children.length > MAX) list.removeChild(list.firstChild);
  }

  function append(node) {
    var atBottom = list.scrollHeight - list.scrollTop - list.clientHeight < 24;
    list.appendChild(node);
    trim();
    if (empty) empty.hidden = true;
    if (atBottom) list.scrollTop = list.scrollHeight;
  }

  function logLine(node) {
    if (!logList) return;
    var atBottom = logList.scrollHeight - logList.scrollTop - logList.clientHeight < 24;
    logList.appendChild(node);
    while (logList.children.length > MAX) logList.removeChild(logList.firstChild);
    if (logEmpty) logEmpty.hidden = true;
    if (atBottom) logList.scrollTop = logList.scrollHeight;
  }

  function renderLogLine(item) {
    var level = String(item.level || "info").toLowerCase();
    var entry = element("li", "log-line live-log-" + level);
    entry.appendChild(element("span", "live-time", timeText(item.time)));
    entry.appendChild(element("span", "live-level", level));
    if (item.node) entry.appendChild(element("span", "live-node", item.node));
    entry.appendChild(element("span", "log-text", item.message || item.msg || ""));
    return entry;
  }

  function logGap(missing) {
    return element("li", "log-line log-gap",
      missing + " message" + (missing === 1 ? "" : "s") + " not shown");
  }

  function renderDebug(item) {
    var entry = element("li", "live-item live-debug");
    entry.setAttribute("data-kind", "debug");
    var meta = element("div", "live-meta");
    meta.appendChild(element("span", "live-time", timeText(item.time)));
    var label = item.name || item.node || "debug";
    var nodeName = element("span", "live-node", label);
    nodeName.title = "node " + (item.node || "?");
    meta.appendChild(nodeName);
    if (item.topic) meta.appendChild(element("span", "live-topic", "topic: " + item.topic));
    entry.appendChild(meta);
    var body = item.truncated ? item.message : item.msg;
    var summary = item.property ? "msg." + item.property : "msg";
    if (item.format) summary += " : " + item.format;
    var details = element("details", "live-payload");
    details.appendChild(element("summary", null, summary));
    details.appendChild(element("pre", null, pretty(body === undefined ? item : body)));
    entry.appendChild(details);
    return entry;
  }

  function renderLog(item) {
    var level = String(item.level || "info").toLowerCase();
    var entry = element("li", "live-item live-log live-log-" + level);
    entry.setAttribute("data-kind", "log");
    var meta = element("div", "live-meta");
    meta.appendChild(element("span", "live-time", timeText(item.time)));
    meta.appendChild(element("span", "live-level", level));
    if (item.node) meta.appendChild(element("span", "live-node", item.node));
    entry.appendChild(meta);
    entry.appendChild(element("div", "live-text", item.message || item.msg || ""));
    return entry;
  }

  function renderStatus(item) {
    var id = String(item.node || "?");
    var status = item.status || {};
    if (!status.text && !status.fill) {
      delete nodes[id];
    } else {
      nodes[id] = status;
    }
    nodeList.textContent = "";
    Object.keys(nodes).sort().forEach(function (key) {
      var row = element("li", "node-status");
      var dot = element("span", "node-dot node-dot-" + (nodes[key].fill || "grey") +
        (nodes[key].shape === "ring" ? " node-dot-ring" : ""));
      dot.setAttribute("aria-hidden", "true");
      row.appendChild(dot);
      row.appendChild(element("code", "node-id", key));
      row.appendChild(element("span", "node-text",
        (nodes[key].text || "") + " (" + (nodes[key].fill || "no colour") + ")"));
      nodeList.appendChild(row);
    });
    nodeCount.textContent = "(" + Object.keys(nodes).length + ")";
  }

  function gapMarker(missing) {
    var entry = element("li", "live-item live-gap",
      missing + " message" + (missing === 1 ? "" : "s") + " not shown");
    entry.setAttribute("data-kind", "gap");
    return entry;
  }

  function show(item) {
    if (item.kind === "status") { renderStatus(item); return; }
    var node = item.kind === "debug" ? renderDebug(item) : renderLog(item);
    applyFilter(node);
    append(node);
  }

  function applyFilter(node) {
    var kind = node.getAttribute("data-kind");
    var box = root.querySelector('[data-show-kind="' + kind + '"]');
    node.hidden = !!(box && !box.checked);
  }

  function receive(frame) {
    if (frame.kind === "stream") {
      if (frame.epoch && epoch && frame.epoch !== epoch) lastSeq = null;
      if (frame.epoch) epoch = frame.epoch;
      (frame.items || []).forEach(function (item) {
        if (typeof item.seq === "number") {
          if (lastSeq !== null && item.seq <= lastSeq) return; // a replayed duplicate
          if (lastSeq !== null && item.seq > lastSeq + 1) {
            queue(gapMarker(item.seq - lastSeq - 1));
            logLine(logGap(item.seq - lastSeq - 1));
          }
          lastSeq = item.seq;
        }
        if (item.kind === "log") logLine(renderLogLine(item));
        if (item.kind === "status") {
          // For the developer-mode panel (device-developer.js), paused sidebar or not.
          document.dispatchEvent(new CustomEvent("manifold:node-status",
            { detail: { node: item.node, status: item.status } }));
        }
        queue(item);
      });
    } else if (frame.kind === "gap") {
      queue(gapMarker(frame.missing));
      logLine(logGap(frame.missing));
      if (typeof frame.to_seq === "number") lastSeq = Math.max(lastSeq || 0, frame.to_seq);
    } else if (frame.kind === "state" && frame.device) {
      document.dispatchEvent(new CustomEvent("manifold:device-state", { detail: frame.device }));
    }
  }

  function queue(itemOrNode) {
    if (paused) {
      held.push(itemOrNode);
      if (held.length > MAX) {
        var dropped = held.length - MAX;
        held = held.slice(dropped);
        held.unshift(gapMarker(dropped));
      }
      pausedCount.textContent = String(held.length);
      return;
    }
    if (itemOrNode instanceof Element) append(itemOrNode); else show(itemOrNode);
  }

  pauseButton.addEventListener("click", function () {
    paused = !paused;
    pauseButton.setAttribute("aria-pressed", paused ? "true" : "false");
    pauseButton.textContent = paused ? "Resume" : "Pause";
    pausedNote.hidden = !paused;
    if (!paused) {
      var backlog = held;
      held = [];
      pausedCount.textContent = "0";
      backlog.forEach(queue);
    }
  });

  root.querySelector("[data-stream-clear]").addEventListener("click", function () {
    list.textContent = "";
    held = [];
    pausedCount.textContent = "0";
    if (empty) empty.hidden = false;
  });

  root.addEventListener("change", function (event) {
    if (!event.target.matches("[data-show-kind]")) return;
    list.querySelectorAll("[data-kind]").forEach(applyFilter);
  });

  function connect() {
    var query = lastSeq === null ? "" :
      "?since=" + lastSeq + "&epoch=" + encodeURIComponent(epoch);
    var socket;
    try {
      socket = new WebSocket(scheme + window.location.host + path + query);
    } catch (error) {
      setStatus("offline", "Live stream unavailable");
      return;
    }
    socket.addEventListener("open", function () {
      delay = 1000;
      setStatus("live", "Live");
    });
    socket.addEventListener("message", function (event) {
      var frame;
      try { frame = JSON.parse(event.data); } catch (error) { return; }
      if (frame && frame.kind) receive(frame);
    });
    socket.addEventListener("close", function (event) {
      if (REFUSED.indexOf(event.code) !== -1) {
        setStatus("offline", "Live stream off");
        return;
      }
      setStatus("offline", "Reconnecting…");
      var wait = delay + Math.random() * delay;
      delay = Math.min(delay * 2, 30000);
      setTimeout(connect, wait);
    });
  }

  connect();
})();
