/* Progress pages (track/_live.html): countdown to the expected arrival, and live updates: a message
   about this refund arrives on the WebSocket → the page fetches itself and swaps the [data-live]
   sections in place (no reload; an account form being filled in is left alone). No libraries, no
   CDN, no inline script (Content-Security-Policy): the translated text comes in data-updated-text
   on this script's own tag. */
(function () {
  "use strict";
  var me = document.currentScript;
  var updatedText = (me && me.dataset.updatedText) || "";
  function tick() {
    document.querySelectorAll("[data-countdown]").forEach(function (el) {
      var left = Date.parse(el.dataset.countdown) - Date.now();
      if (isNaN(left)) return;
      if (left <= 0) { el.textContent = el.dataset.tplLate; return; }
      var m = Math.floor(left / 60000), d = Math.floor(m / 1440), h = Math.floor((m % 1440) / 60);
      el.textContent = d > 0 ? el.dataset.tplDh.replace("{d}", d).replace("{h}", h)
                             : el.dataset.tplHm.replace("{h}", h).replace("{m}", m % 60);
    });
  }
  tick();
  setInterval(tick, 30000);

  var root = document.getElementById("live");
  var path = root && root.dataset.ws;
  if (!path || !window.WebSocket) return;
  var state = root.querySelector("[data-testid=live-state]");
  var dirty = false;
  document.addEventListener("input", function (e) { if (e.target.form) dirty = true; });

  function refresh() {
    return fetch(window.location.href, {credentials: "same-origin", headers: {"X-Requested-With": "fetch"}})
      .then(function (r) { return r.text(); })
      .then(function (html) {
        var fresh = new DOMParser().parseFromString(html, "text/html").getElementById("live");
        if (!fresh) return;
        var keep = dirty ? root.querySelector("[data-live=action]") : null;
        var parts = Array.prototype.slice.call(root.children);
        var next = Array.prototype.slice.call(fresh.children).map(function (el) {
          return keep && el.dataset.live === "action" ? keep : document.importNode(el, true);
        });
        parts.forEach(function (el) { if (el !== keep) el.remove(); });
        if (keep) keep.remove();
        next.forEach(function (el) { root.appendChild(el); });
        state = root.querySelector("[data-testid=live-state]");
        if (state) state.textContent = updatedText;
        tick();
      });
  }

  var delay = 1000;
  function connect() {
    var ws = new WebSocket((location.protocol === "https:" ? "wss://" : "ws://") + location.host + path);
    ws.onopen = function () { delay = 1000; root.dataset.socket = "open"; };
    ws.onmessage = function () { refresh(); };
    ws.onclose = function (e) {
      root.dataset.socket = "closed";
      if (e.code === 4404) return;  // link expired or tampered: nothing to follow
      setTimeout(connect, delay);
      delay = Math.min(delay * 2, 30000);
    };
  }
  connect();
})();
