// Console live alerts: listens on /ws/console/ and inserts or updates rows of every
// `table[data-live-alerts]` on the page without a reload. Text goes in with textContent only.
(function () {
  "use strict";
  var LIVE = ["open", "acked"];
  var dot = document.getElementById("live-status");
  var retry = 1000;

  function setState(state) {
    if (dot) { dot.dataset.state = state; dot.title = "live updates: " + state; }
    document.body.dataset.live = state;
  }

  // Same shape and zone as the server-rendered rows ("m-d H:i:s", TIME_ZONE is UTC).
  function stamp() {
    var d = new Date();
    function two(n) { return (n < 10 ? "0" : "") + n; }
    return two(d.getUTCMonth() + 1) + "-" + two(d.getUTCDate()) + " " + two(d.getUTCHours()) + ":" +
      two(d.getUTCMinutes()) + ":" + two(d.getUTCSeconds());
  }

  function cell(row, cls, text) {
    var td = document.createElement("td");
    if (cls) td.className = cls;
    if (text !== undefined) td.textContent = text;
    row.appendChild(td);
    return td;
  }

  function button(label, url, action, cls) {
    var b = document.createElement("button");
    b.className = "small" + (cls ? " " + cls : "");
    b.textContent = label;
    b.setAttribute("hx-post", url);
    b.setAttribute("hx-target", "closest tr");
    b.setAttribute("hx-swap", "outerHTML");
    b.dataset.action = action;
    return b;
  }

  function buildRow(table, msg) {
    var base = table.dataset.urlBase;  // /console/alerts/
    var row = document.createElement("tr");
    row.id = "alert-" + msg.id;
    var tier = cell(row);
    var badge = document.createElement("span");
    badge.className = "badge " + msg.severity;
    badge.textContent = msg.severity;
    tier.appendChild(badge);
    var summary = cell(row, "summary");
    var link = document.createElement("a");
    link.href = base + msg.id + "/";
    link.textContent = msg.summary;
    summary.appendChild(link);
    cell(row, "kind", msg.kind);
    cell(row, "status");
    cell(row, "num count");
    cell(row, "seen", stamp());
    cell(row, "actions");
    return row;
  }

  function refresh(table, row, msg) {
    row.className = "alert-row tier-" + msg.severity + " status-" + msg.status + " fresh";
    row.dataset.status = msg.status;
    row.dataset.tier = msg.severity;
    row.querySelector(".status").textContent = msg.status;
    if (msg.occurrence_count !== null && msg.occurrence_count !== undefined) {
      row.querySelector(".count").textContent = msg.occurrence_count;
    }
    row.querySelector(".seen").textContent = stamp();
    var actions = row.querySelector(".actions");
    actions.textContent = "";
    var base = table.dataset.urlBase + msg.id + "/";
    if (table.dataset.canAck === "1" && msg.status === "open") actions.appendChild(button("Ack", base + "ack", "ack"));
    if (table.dataset.canResolve === "1" && msg.status !== "resolved") actions.appendChild(button("Resolve", base + "resolve", "resolve", "secondary"));
    if (window.htmx) window.htmx.process(row);
  }

  function updateCounts() {
    var counts = {};
    document.querySelectorAll("table[data-live-alerts] tr.alert-row").forEach(function (r) {
      if (LIVE.indexOf(r.dataset.status) >= 0) counts[r.dataset.tier] = (counts[r.dataset.tier] || 0) + 1;
    });
    document.querySelectorAll("[data-tier-count]").forEach(function (el) {
      el.textContent = counts[el.dataset.tierCount] || 0;
    });
  }

  function onAlert(msg) {
    document.querySelectorAll("table[data-live-alerts]").forEach(function (table) {
      var tbody = table.tBodies[0];
      var row = document.getElementById("alert-" + msg.id);
      if (!row) {
        if (LIVE.indexOf(msg.status) < 0) return;  // suppressed or already resolved: not shown
        row = buildRow(table, msg);
        tbody.insertBefore(row, tbody.firstChild);
      }
      refresh(table, row, msg);
      var empty = tbody.querySelector(".empty-row");
      if (empty) empty.hidden = tbody.querySelectorAll("tr.alert-row").length > 0;
    });
    updateCounts();
  }

  function connect() {
    var scheme = location.protocol === "https:" ? "wss://" : "ws://";
    var socket = new WebSocket(scheme + location.host + "/ws/console/");
    socket.onopen = function () { retry = 1000; setState("connected"); };
    socket.onmessage = function (event) {
      var msg;
      try { msg = JSON.parse(event.data); } catch (e) { return; }
      if (msg.type === "alert") onAlert(msg);
    };
    socket.onclose = function () {
      setState("reconnecting");
      setTimeout(connect, retry);
      retry = Math.min(retry * 2, 30000);
    };
  }

  setState("connecting");
  connect();
})();
