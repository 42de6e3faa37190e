// Console reports: draws the four charts from the JSON the page embeds (no network calls).
(function () {
  "use strict";
  var data = JSON.parse(document.getElementById("report-data").textContent);
  var accent = "#0f766e";
  function chart(id, config) {
    var el = document.getElementById(id);
    if (el && window.Chart) { new window.Chart(el, config); }
  }
  chart("chart-refund-rate", {
    type: "line",
    data: {
      labels: data.refund_rate.map(function (r) { return r.day; }),
      datasets: [{ label: "refund rate %", data: data.refund_rate.map(function (r) { return r.rate_pct; }), borderColor: accent, tension: 0.2 }]
    },
    options: { animation: false, scales: { y: { beginAtZero: true } } }
  });
  chart("chart-outcomes", {
    type: "doughnut",
    data: {
      labels: data.outcomes.map(function (r) { return r.outcome; }),
      datasets: [{ data: data.outcomes.map(function (r) { return r.count; }), backgroundColor: ["#0f766e", "#f59e0b", "#b91c1c", "#6366f1", "#9ca3af"] }]
    },
    options: { animation: false }
  });
  chart("chart-reasons", {
    type: "bar",
    data: {
      labels: data.top_reasons.map(function (r) { return r.sku + " · " + r.reason; }),
      datasets: [{ label: "refunds", data: data.top_reasons.map(function (r) { return r.count; }), backgroundColor: accent }]
    },
    options: { animation: false, indexAxis: "y" }
  });
  chart("chart-channels", {
    type: "bar",
    data: {
      labels: data.channel_failures.map(function (r) { return r.channel; }),
      datasets: [{ label: "failure rate %", data: data.channel_failures.map(function (r) { return r.rate_pct; }), backgroundColor: "#b91c1c" }]
    },
    options: { animation: false, scales: { y: { beginAtZero: true, max: 100 } } }
  });
})();
